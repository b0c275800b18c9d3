//! Carrying out response actions: decisions, edits, runs and rollbacks, each recorded through
//! the writer before the next step starts. Owns the order of events (decision → intent → call →
//! outcome) and retries/timeouts; the database rules live in `store::actions`, the calls in
//! `connector`.

use super::connector::{Connectors, Reach, Resolved};
use super::lease::{Lease, LeaseError, Leases};
use super::store::{self, actions as act, ActionRow, DecisionError, Ending, WriteOp};
use crate::identity::Actor;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Points where the crash tests make the process die (`VIGIL_FAULT=after_intent` or
/// `after_call`), to prove that an interrupted action ends up "outcome unknown" and is never
/// run twice. Unset in normal use.
fn fault(point: &str) {
    if std::env::var("VIGIL_FAULT").is_ok_and(|f| f == point) {
        eprintln!("vigil: VIGIL_FAULT={point}: aborting as asked");
        std::process::abort();
    }
}

/// `name@host:pid` of this process: who holds an action's execution lease, as others are told.
pub fn runner_id(actor: &Actor) -> String {
    format!("{}@{}:{}", actor.name, actor.host, std::process::id())
}

/// The host a runner id names (`name@host:pid`, or `host:pid` from earlier versions).
fn runner_host(runner: &str) -> &str {
    let before_pid = runner.rsplit_once(':').map_or(runner, |(h, _)| h);
    before_pid.rsplit_once('@').map_or(before_pid, |(_, h)| h)
}

/// The connectors' `resolve`, in the shape the approval rules take it.
fn resolver(
    connectors: &Connectors,
) -> impl Fn(&str, &Map<String, Value>) -> Result<Resolved, String> + Sync + '_ {
    |kind, params| connectors.resolve(kind, params).map_err(|e| e.to_string())
}

/// Runs and records response actions for one process.
#[derive(Clone)]
pub struct Responder {
    pub writer: mpsc::Sender<WriteOp>,
    pub connectors: Arc<Connectors>,
    pub actor: Actor,
    /// Actions some path of this process is handling, so the executor leaves them alone.
    pub busy: Arc<std::sync::Mutex<std::collections::HashSet<i64>>>,
    /// The execution leases of this database: held while an action's call is in progress.
    pub leases: Leases,
}

/// Marks an action as handled by this process while it lives.
struct Busy(Arc<std::sync::Mutex<std::collections::HashSet<i64>>>, i64);

impl Drop for Busy {
    fn drop(&mut self) {
        if let Ok(mut b) = self.0.lock() {
            b.remove(&self.1);
        }
    }
}

impl Responder {
    /// A responder for one process's writer.
    pub fn new(
        writer: mpsc::Sender<WriteOp>,
        connectors: Arc<Connectors>,
        actor: Actor,
        leases: Leases,
    ) -> Self {
        Responder {
            writer,
            connectors,
            actor,
            busy: Arc::default(),
            leases,
        }
    }

    /// Take action `id`'s execution lease for this process, held until the returned guard is
    /// dropped or the process dies.
    fn lease(&self, id: i64) -> Result<Lease, DecisionError> {
        self.leases
            .take(id, &runner_id(&self.actor))
            .map_err(|e| match e {
                LeaseError::Held { holder } => DecisionError::Leased { id, holder },
                LeaseError::Io { .. } => DecisionError::Refused {
                    id,
                    why: format!("cannot take its execution lease: {e}"),
                },
            })
    }

    /// Claim `id` for this path; `None` when another path of this process has it.
    fn claim(&self, id: i64) -> Option<Busy> {
        let mut b = self.busy.lock().ok()?;
        b.insert(id).then(|| Busy(self.busy.clone(), id))
    }
}

impl Responder {
    async fn change(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> Result<ActionRow, DecisionError> + Send + 'static,
    ) -> Result<ActionRow, DecisionError> {
        let (reply, rx) = oneshot::channel();
        let stopped = || DecisionError::Db("the database writer has stopped".into());
        self.writer
            .send(WriteOp::Action {
                apply: Box::new(f),
                reply,
            })
            .await
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// One action as it is now, read through the writer so it follows every change made so far.
    ///
    /// # Errors
    /// No such action, or the writer stopped.
    pub async fn action(&self, id: i64) -> Result<ActionRow, DecisionError> {
        self.change(move |c| act::action(c, id)?.ok_or(DecisionError::NoSuchAction(id)))
            .await
    }

    /// Append a record (or other write) that is not about one action.
    ///
    /// # Errors
    /// The write failed or the writer stopped.
    pub async fn record(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> Result<Value, String> + Send + 'static,
    ) -> Result<Value, String> {
        let (reply, rx) = oneshot::channel();
        self.writer
            .send(WriteOp::Record {
                apply: Box::new(f),
                reply: Some(reply),
            })
            .await
            .map_err(|_| "the database writer has stopped".to_string())?;
        rx.await
            .map_err(|_| "the database writer has stopped".to_string())?
    }

    /// Approve or reject; when the approval completes the policy, run the action.
    ///
    /// # Errors
    /// A refused decision or run.
    pub async fn decide(
        &self,
        id: i64,
        approve: bool,
        reason: String,
        progress: &(dyn Fn(&ActionRow) + Sync),
    ) -> Result<ActionRow, DecisionError> {
        let _busy = self.claim(id);
        let actor = self.actor.clone();
        let row = self
            .change(move |c| act::decide(c, id, approve, &reason, &actor))
            .await?;
        progress(&row);
        fault("after_decision");
        if row.status == "approved" {
            return match self.run(id, progress).await {
                // Another process ran it between the approval and this run: it is done there.
                Err(DecisionError::NotPending { .. }) => self.action(id).await,
                // Another process holds the lease (`Leased`): the approval stands and it runs
                // there; the caller is told who holds it.
                other => other,
            };
        }
        Ok(row)
    }

    /// Replace a pending action's params; the connector renders the new call first, so an
    /// invalid edit is refused before anything changes.
    ///
    /// # Errors
    /// Invalid params for the connector, or a refused edit.
    pub async fn edit(
        &self,
        id: i64,
        params: Map<String, Value>,
        reason: String,
    ) -> Result<ActionRow, DecisionError> {
        let connectors = self.connectors.clone();
        let actor = self.actor.clone();
        self.change(move |c| {
            let row = act::action(c, id)?.ok_or(DecisionError::NoSuchAction(id))?;
            let resolved = connectors.resolve(&row.connector, &params).map_err(|e| {
                DecisionError::Refused {
                    id,
                    why: format!("edited params: {e}"),
                }
            })?;
            act::edit(c, id, &params, &resolved, &reason, &actor)
        })
        .await
    }

    /// Run an approved action: take the lease (recording the intent), call the connector with
    /// the step's retries and timeout, record the outcome.
    ///
    /// # Errors
    /// The lease was refused (not approved, lapsed, changed, taken by another process).
    pub async fn run(
        &self,
        id: i64,
        progress: &(dyn Fn(&ActionRow) + Sync),
    ) -> Result<ActionRow, DecisionError> {
        // The lease first: a process that sees this action running also finds its lease held
        // for as long as this process lives.
        let _lease = self.lease(id)?;
        let (actor, runner) = (self.actor.clone(), runner_id(&self.actor));
        let connectors = self.connectors.clone();
        let row = self
            .change(move |c| act::begin(c, id, &actor, &runner, &resolver(&connectors)))
            .await?;
        progress(&row);
        fault("after_intent");
        let key = store::idempotency_key(&row);
        let (ending, detail) = self
            .call(&row, &row.connector, &row.params, &row.rendered, &key)
            .await;
        fault("after_call");
        let actor = self.actor.clone();
        let done = self
            .change(move |c| act::finish(c, id, ending, &detail, &actor))
            .await?;
        progress(&done);
        Ok(done)
    }

    /// Undo a succeeded action with the rollback call shown at proposal.
    ///
    /// # Errors
    /// No rollback, wrong state, or no reason.
    pub async fn rollback(
        &self,
        id: i64,
        reason: String,
        progress: &(dyn Fn(&ActionRow) + Sync),
    ) -> Result<ActionRow, DecisionError> {
        let _lease = self.lease(id)?;
        let (actor, runner) = (self.actor.clone(), runner_id(&self.actor));
        let connectors = self.connectors.clone();
        let row = self
            .change(move |c| {
                act::begin_rollback(c, id, &reason, &actor, &runner, &resolver(&connectors))
            })
            .await?;
        progress(&row);
        let Some(rb) = row.rollback.clone() else {
            return Err(DecisionError::Refused {
                id,
                why: "no rollback call".into(),
            });
        };
        let key = format!("{}-rollback", store::idempotency_key(&row));
        let (ending, detail) = self
            .call(&row, &rb.connector, &rb.params, &rb.rendered, &key)
            .await;
        let actor = self.actor.clone();
        let done = self
            .change(move |c| act::finish_rollback(c, id, ending, &detail, &actor))
            .await?;
        progress(&done);
        Ok(done)
    }

    /// One call with retries. Only a call that certainly never arrived (a refused connection,
    /// a name that did not resolve) is tried again, with the same idempotency key. A timeout,
    /// or any failure after the request may have left, has an unknown outcome and is never
    /// retried automatically: it may have taken effect, and a second send could do it twice.
    async fn call(
        &self,
        row: &ActionRow,
        connector: &str,
        params: &Map<String, Value>,
        approved: &str,
        key: &str,
    ) -> (Ending, String) {
        let attempts = row.retry.attempts.max(1);
        let limit = Duration::from_secs(row.timeout_seconds.max(1));
        let mut last = String::new();
        for attempt in 1..=attempts {
            let sent = self
                .connectors
                .execute_approved(connector, params, key, approved);
            let out = match tokio::time::timeout(limit, sent).await {
                Err(_) => {
                    return (
                        Ending::Unknown,
                        format!(
                            "outcome unknown: timed out after {}s; the call may have taken effect, so it is not retried",
                            limit.as_secs()
                        ),
                    )
                }
                Ok(out) => out,
            };
            if out.ok {
                return (Ending::Succeeded, out.detail);
            }
            match out.reach {
                Reach::Known => return (Ending::Failed, out.detail),
                Reach::Unknown => {
                    return (
                        Ending::Unknown,
                        format!(
                        "outcome unknown: {}; the call may have taken effect, so it is not retried",
                        out.detail
                    ),
                    )
                }
                Reach::NotSent => {
                    last = format!("not sent: {}", out.detail);
                    if attempt < attempts {
                        let (id, actor, detail) = (row.id, self.actor.clone(), last.clone());
                        let _ = self
                            .change(move |c| act::attempt_failed(c, id, attempt, &detail, &actor))
                            .await;
                        let pause = row.retry.backoff_seconds * 2f64.powi(attempt as i32 - 1);
                        tokio::time::sleep(Duration::from_secs_f64(pause.min(3600.0))).await;
                    }
                }
            }
        }
        (Ending::Failed, last)
    }

    /// Mark actions whose runner died mid-call as "outcome unknown" (at start-up).
    ///
    /// # Errors
    /// The write failed.
    pub async fn recover(&self) -> Result<Value, String> {
        let (actor, leases) = (self.actor.clone(), self.leases.clone());
        self.record(move |c| {
            let host = actor.host.clone();
            // A runner on another host holds a lease this host may not see (a local lock on a
            // shared disk): not ours to judge. Here, the lease says; when it cannot be read,
            // the action is left alone rather than declared dead.
            let alive = |id: i64, runner: &str| {
                (!runner.is_empty() && runner_host(runner) != host)
                    || leases.is_held(id).unwrap_or(true)
            };
            act::recover(c, &actor, &alive)
                .map(|ids| serde_json::json!(ids))
                .map_err(|e| e.to_string())
        })
        .await
    }

    /// Lapse old approvals, then run what is approved and revert what is due. Called by the
    /// executor loop of a long-running process (TUI or daemon).
    pub async fn tick(
        &self,
        reader: &std::sync::Mutex<rusqlite::Connection>,
        notify: &(dyn Fn(&ActionRow) + Sync),
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        let actor = self.actor.clone();
        let _ = self
            .record(move |c| {
                act::sweep(c, &actor)
                    .map(|n| serde_json::json!(n))
                    .map_err(|e| e.to_string())
            })
            .await;
        let due = match reader.lock() {
            Ok(c) => act::due(&c).unwrap_or_default(),
            Err(_) => return None,
        };
        let (approved, reverts) = due;
        let mut runs = Vec::new();
        for id in approved {
            let Some(busy) = self.claim(id) else { continue };
            let me = self.clone();
            runs.push(async move {
                let _busy = busy;
                me.run(id, notify).await
            });
        }
        // Actions approved together run together; each holds its own lease.
        for r in futures_util::future::join_all(runs).await {
            if let Err(e) = r {
                tracing::debug!("executor: {e}");
            }
        }
        for id in reverts {
            if let Err(e) = self
                .rollback(
                    id,
                    "automatic revert: the step's revert_after elapsed".into(),
                    notify,
                )
                .await
            {
                tracing::warn!("automatic revert of action {id}: {e}");
            }
        }
        reader
            .lock()
            .ok()
            .and_then(|c| act::next_revert(&c).ok().flatten())
    }
}
