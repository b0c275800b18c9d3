//! The online lookup client: cache first (memory, then SQLite with a TTL per provider and a
//! short one for negative answers), then a per-provider lane with a token-bucket quota, a
//! priority queue (the incident on the analyst's screen first), `Retry-After`, a concurrency
//! limit and timeouts. Identical lookups in flight are merged. Errors, timeouts and 429s are
//! never cached as verdicts. Private and reserved addresses never leave: `lookup` refuses them
//! before anything else. Owns scheduling; request shapes are in `providers`.

use super::providers::{self, Answer, FetchError, ProviderId};
use super::quota::{Limit, Quota};
use super::secrets::Secrets;
use super::{EnrichmentResult, SourceKind};
use crate::engine::ioc::{Ioc, IocKind};
use crate::engine::store::{self, WriteOp};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch, Notify, Semaphore};
use tokio::time::Instant;

/// A provider's configured behaviour.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    pub id: ProviderId,
    pub base_url: url::Url,
    pub limits: Vec<Limit>,
    pub timeout: Duration,
    pub concurrency: usize,
    /// How long a verdict is reused.
    pub ttl: Duration,
    /// How long "never seen" / "clean" is reused: short, the indicator may be reported soon.
    pub negative_ttl: Duration,
    /// Transient failures (5xx, timeouts) retried this many times, with backoff.
    pub retries: u32,
}

/// A request's answer future, as a transport returns it.
pub type FetchFuture = Pin<Box<dyn Future<Output = Result<Answer, FetchError>> + Send>>;

/// How a lookup reaches a provider: HTTP in production, a fake in scheduler tests.
pub trait Transport: Send + Sync {
    fn fetch(&self, provider: ProviderId, ioc: &Ioc) -> FetchFuture;
}

/// The real transport: one reqwest client per provider (its own timeout), keys from
/// `Secrets`, answers read with a size cap and parsed by `providers::parse`.
pub struct HttpTransport {
    clients: HashMap<ProviderId, (reqwest::Client, url::Url)>,
    secrets: Secrets,
}

impl HttpTransport {
    /// # Errors
    /// When the TLS backend cannot start.
    pub fn new(settings: &[ProviderSettings], secrets: Secrets) -> Result<Self, String> {
        let mut clients = HashMap::new();
        for s in settings {
            let c = reqwest::Client::builder()
                .timeout(s.timeout)
                .connect_timeout(s.timeout)
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("vigil/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
            clients.insert(s.id, (c, s.base_url.clone()));
        }
        Ok(HttpTransport { clients, secrets })
    }

    pub fn has_key(&self, p: ProviderId) -> bool {
        !p.needs_key() || self.secrets.get(p.name()).is_some()
    }
}

fn map_reqwest(e: &reqwest::Error) -> FetchError {
    if e.is_timeout() {
        FetchError::Timeout
    } else if e.is_decode() || e.is_body() {
        FetchError::Malformed("the body could not be read".into())
    } else {
        // Without the URL: it carries the indicator, and the message goes to the status bar.
        FetchError::Connect(
            std::error::Error::source(e)
                .map(ToString::to_string)
                .unwrap_or_else(|| "request failed".into()),
        )
    }
}

impl Transport for HttpTransport {
    fn fetch(&self, provider: ProviderId, ioc: &Ioc) -> FetchFuture {
        let Some((client, base)) = self.clients.get(&provider) else {
            return Box::pin(async move {
                Err(FetchError::Request(format!(
                    "{} is not configured",
                    provider.name()
                )))
            });
        };
        let key = self.secrets.get(provider.name());
        let built = providers::request(provider, client, base, key.as_ref(), ioc);
        let kind = ioc.kind;
        Box::pin(async move {
            let mut resp = built?.send().await.map_err(|e| map_reqwest(&e))?;
            let status = resp.status().as_u16();
            if status == 429 {
                let ra = providers::retry_after(
                    resp.headers().get(reqwest::header::RETRY_AFTER),
                    Utc::now(),
                );
                return Err(FetchError::RateLimited(ra));
            }
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(|e| map_reqwest(&e))? {
                if body.len() + chunk.len() > providers::MAX_BODY {
                    return Err(FetchError::Malformed(format!(
                        "answer over {} bytes",
                        providers::MAX_BODY
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            providers::parse(provider, kind, status, &body)
        })
    }
}

/// What became of one lookup.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A verdict; `cached` says whether it came from the cache.
    Answer {
        result: Box<EnrichmentResult>,
        cached: bool,
    },
    /// No verdict this time (never cached).
    Failed(String),
    /// Not asked, and why (offline, private address, unsupported kind, no key).
    Skipped(&'static str),
}

type Key = (IocKind, String);

struct Queued {
    ioc: Ioc,
    incidents: Vec<i64>,
    attempts: u32,
    not_before: Instant,
}

#[derive(Default)]
struct LaneState {
    paused_until: Option<Instant>,
    disabled: Option<String>,
    sent: u64,
    failed: u64,
    rate_limited: u64,
    in_flight: usize,
    last_error: Option<String>,
}

struct Lane {
    settings: ProviderSettings,
    has_key: bool,
    queue: Mutex<VecDeque<Queued>>,
    waiters: Mutex<HashMap<Key, Vec<oneshot::Sender<Outcome>>>>,
    memo: Mutex<HashMap<Key, (EnrichmentResult, Instant)>>,
    quota: Mutex<Quota>,
    state: Mutex<LaneState>,
    notify: Notify,
    permits: Arc<Semaphore>,
}

/// One provider's budget and queue, for `vigil enrich --status` and the status bar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderStatus {
    pub provider: String,
    pub key: bool,
    /// `(limit, used)` per budget, e.g. `("4/min", 3)`.
    pub used: Vec<(String, u32)>,
    pub queue_depth: usize,
    pub in_flight: usize,
    pub sent: u64,
    pub failed: u64,
    pub rate_limited: u64,
    pub paused_seconds: u64,
    pub disabled: Option<String>,
    pub last_error: Option<String>,
}

impl ProviderStatus {
    /// `vt 3/4min 120/500day q7`: what fits in a status bar.
    pub fn short(&self) -> String {
        let mut s = match ProviderId::parse(&self.provider) {
            Some(p) => p.short().to_string(),
            None => self.provider.clone(),
        };
        if self.disabled.is_some() {
            return format!("{s} off");
        }
        if !self.key {
            return format!("{s} nokey");
        }
        for (limit, used) in &self.used {
            let (n, per) = limit.split_once('/').unwrap_or((limit, ""));
            s.push_str(&format!(" {used}/{n}{per}"));
        }
        if self.queue_depth > 0 {
            s.push_str(&format!(" q{}", self.queue_depth));
        }
        if self.paused_seconds > 0 {
            s.push_str(&format!(" wait{}s", self.paused_seconds));
        }
        s
    }
}

/// Cache hits and misses since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
}

struct Inner {
    offline: bool,
    lanes: HashMap<ProviderId, Arc<Lane>>,
    transport: Arc<dyn Transport>,
    reader: Option<Arc<Mutex<rusqlite::Connection>>>,
    writer: Option<mpsc::Sender<WriteOp>>,
    focus: Mutex<Option<i64>>,
    cache: Mutex<CacheStats>,
    /// Never sent on: dropped with the client, which tells requests still in flight that
    /// nobody waits for their answer any more.
    gone: watch::Sender<()>,
}

/// The client. Cheap to clone; dispatchers run as tokio tasks until the last clone is dropped.
#[derive(Clone)]
pub struct Online {
    inner: Arc<Inner>,
}

/// Base of the backoff after a transient failure: 5 s, 10 s, 20 s ...
const BACKOFF: Duration = Duration::from_secs(5);
/// Pause after a 429 that gave no `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);

impl Online {
    /// Start a lane per provider. `reader`/`writer` give the SQLite cache and the usage log
    /// (absent in unit tests); `has_key` says which providers have a key.
    pub fn start(
        offline: bool,
        settings: Vec<ProviderSettings>,
        has_key: impl Fn(ProviderId) -> bool,
        transport: Arc<dyn Transport>,
        reader: Option<Arc<Mutex<rusqlite::Connection>>>,
        writer: Option<mpsc::Sender<WriteOp>>,
    ) -> Online {
        let mut lanes = HashMap::new();
        for s in settings {
            let mut quota = Quota::new(&s.limits);
            // Requests made before a restart still count against today's budget.
            if let Some(r) = &reader {
                let since = Utc::now()
                    - chrono::Duration::seconds(
                        s.limits
                            .iter()
                            .map(|l| l.window.as_secs())
                            .max()
                            .unwrap_or(0) as i64,
                    );
                if let Ok(conn) = r.lock() {
                    let now_i = Instant::now();
                    let now_u = Utc::now();
                    for t in
                        store::provider_usage_since(&conn, s.id.name(), since).unwrap_or_default()
                    {
                        let ago = (now_u - t).to_std().unwrap_or(Duration::ZERO);
                        quota.spend(now_i.checked_sub(ago).unwrap_or(now_i));
                    }
                }
            }
            let lane = Lane {
                has_key: has_key(s.id),
                permits: Arc::new(Semaphore::new(s.concurrency.max(1))),
                settings: s,
                queue: Mutex::new(VecDeque::new()),
                waiters: Mutex::new(HashMap::new()),
                memo: Mutex::new(HashMap::new()),
                quota: Mutex::new(quota),
                state: Mutex::new(LaneState::default()),
                notify: Notify::new(),
            };
            lanes.insert(lane.settings.id, Arc::new(lane));
        }
        let inner = Arc::new(Inner {
            offline,
            lanes,
            transport,
            reader,
            writer,
            focus: Mutex::new(None),
            cache: Mutex::new(CacheStats::default()),
            gone: watch::channel(()).0,
        });
        if !offline {
            for lane in inner.lanes.values() {
                tokio::spawn(dispatch(Arc::downgrade(&inner), lane.clone()));
            }
        }
        Online { inner }
    }

    /// Providers with a lane, in a stable order.
    pub fn providers(&self) -> Vec<ProviderId> {
        let mut v: Vec<ProviderId> = self.inner.lanes.keys().copied().collect();
        v.sort();
        v
    }

    pub fn is_offline(&self) -> bool {
        self.inner.offline
    }

    /// The incident the analyst is looking at: its lookups jump the queue.
    pub fn set_focus(&self, incident: Option<i64>) {
        if let Ok(mut f) = self.inner.focus.lock() {
            *f = incident;
        }
        for lane in self.inner.lanes.values() {
            lane.notify.notify_one();
        }
    }

    pub fn cache_stats(&self) -> CacheStats {
        self.inner.cache.lock().map(|c| *c).unwrap_or_default()
    }

    /// Whether `lookup` would ask `provider` about `ioc` (or answer it from the cache).
    pub fn wants(&self, provider: ProviderId, ioc: &Ioc) -> bool {
        self.precheck(provider, ioc).is_ok()
    }

    fn precheck(&self, provider: ProviderId, ioc: &Ioc) -> Result<Arc<Lane>, &'static str> {
        // Checked first, whatever else is configured: private and reserved space never leaves.
        if !ioc.may_leave_the_machine() {
            return Err("private, reserved or internal: never sent out");
        }
        if self.inner.offline {
            return Err("offline");
        }
        let lane = self
            .inner
            .lanes
            .get(&provider)
            .ok_or("provider not enabled")?;
        if !provider.supports(ioc.kind) {
            return Err("provider does not answer for this kind");
        }
        if !lane.has_key {
            return Err("no API key");
        }
        Ok(lane.clone())
    }

    /// Ask `provider` about `ioc` on behalf of `incident`. Waits (in the provider's queue) for
    /// budget rather than failing; returns when there is an answer or a final failure.
    pub async fn lookup(&self, provider: ProviderId, ioc: &Ioc, incident: Option<i64>) -> Outcome {
        let lane = match self.precheck(provider, ioc) {
            Ok(l) => l,
            Err(why) => return Outcome::Skipped(why),
        };
        let key: Key = (ioc.kind, ioc.value.clone());
        if let Some(r) = self.cached(&lane, &key).await {
            let mut r = r;
            r.fields = ioc.fields.clone();
            self.count(true);
            return Outcome::Answer {
                result: Box::new(r),
                cached: true,
            };
        }
        self.count(false);
        let (tx, rx) = oneshot::channel();
        let first = {
            let Ok(mut w) = lane.waiters.lock() else {
                return Outcome::Failed("internal lock poisoned".into());
            };
            let list = w.entry(key.clone()).or_default();
            list.push(tx);
            list.len() == 1
        };
        if let Ok(mut q) = lane.queue.lock() {
            match (
                first,
                q.iter_mut()
                    .find(|x| x.ioc.kind == key.0 && x.ioc.value == key.1),
            ) {
                (_, Some(existing)) => existing.incidents.extend(incident),
                (true, None) => q.push_back(Queued {
                    ioc: ioc.clone(),
                    incidents: incident.into_iter().collect(),
                    attempts: 0,
                    not_before: Instant::now(),
                }),
                (false, None) => {} // already being fetched
            }
        }
        lane.notify.notify_one();
        match rx.await {
            Ok(Outcome::Answer { result, cached }) => {
                let mut r = *result;
                r.fields = ioc.fields.clone();
                Outcome::Answer {
                    result: Box::new(r),
                    cached,
                }
            }
            Ok(other) => other,
            Err(_) => Outcome::Failed("the lookup was dropped".into()),
        }
    }

    fn count(&self, hit: bool) {
        if let Ok(mut c) = self.inner.cache.lock() {
            if hit {
                c.hits += 1;
            } else {
                c.misses += 1;
            }
        }
    }

    async fn cached(&self, lane: &Lane, key: &Key) -> Option<EnrichmentResult> {
        let now = Instant::now();
        if let Ok(m) = lane.memo.lock() {
            if let Some((r, until)) = m.get(key) {
                if *until > now {
                    return Some(r.clone());
                }
            }
        }
        let reader = self.inner.reader.clone()?;
        let (provider, kind, value) = (lane.settings.id.name(), key.0, key.1.clone());
        let found = tokio::task::spawn_blocking(move || {
            let conn = reader.lock().ok()?;
            store::cache_get(&conn, provider, kind, &value, Utc::now())
                .ok()
                .flatten()
        })
        .await
        .ok()
        .flatten()?;
        Some(found)
    }

    /// Budget and queue of every provider.
    pub fn status(&self) -> Vec<ProviderStatus> {
        let now = Instant::now();
        self.providers()
            .into_iter()
            .filter_map(|p| self.inner.lanes.get(&p))
            .map(|lane| {
                let used = lane
                    .quota
                    .lock()
                    .map(|mut q| {
                        q.used(now)
                            .into_iter()
                            .map(|(l, n)| (l.label(), n))
                            .collect()
                    })
                    .unwrap_or_default();
                let queue_depth = lane.queue.lock().map(|q| q.len()).unwrap_or(0);
                let st = lane.state.lock();
                let (in_flight, sent, failed, rate_limited, paused, disabled, last_error) =
                    match &st {
                        Ok(s) => (
                            s.in_flight,
                            s.sent,
                            s.failed,
                            s.rate_limited,
                            s.paused_until
                                .map_or(0, |u| u.saturating_duration_since(now).as_secs()),
                            s.disabled.clone(),
                            s.last_error.clone(),
                        ),
                        Err(_) => (0, 0, 0, 0, 0, None, None),
                    };
                ProviderStatus {
                    provider: lane.settings.id.name().to_string(),
                    key: lane.has_key,
                    used,
                    queue_depth,
                    in_flight,
                    sent,
                    failed,
                    rate_limited,
                    paused_seconds: paused,
                    disabled: if self.inner.offline {
                        Some("offline".into())
                    } else {
                        disabled
                    },
                    last_error,
                }
            })
            .collect()
    }

    /// Lookups waiting or in flight across providers (for `vigil enrich` to wait on).
    pub fn pending(&self) -> usize {
        self.inner
            .lanes
            .values()
            .map(|l| l.waiters.lock().map(|w| w.len()).unwrap_or(0))
            .sum()
    }
}

fn resolve(lane: &Lane, key: &Key, outcome: Outcome) {
    let waiters = lane
        .waiters
        .lock()
        .ok()
        .and_then(|mut w| w.remove(key))
        .unwrap_or_default();
    for w in waiters {
        let _ = w.send(outcome.clone());
    }
}

/// Pick the next ready lookup: the focused incident's first, then the oldest.
fn pick(q: &mut VecDeque<Queued>, focus: Option<i64>, now: Instant) -> Option<Queued> {
    let ready = |x: &Queued| x.not_before <= now;
    let i = focus
        .and_then(|f| q.iter().position(|x| ready(x) && x.incidents.contains(&f)))
        .or_else(|| q.iter().position(ready))?;
    q.remove(i)
}

/// One provider's dispatcher: waits for work, budget and a free slot, then sends.
async fn dispatch(inner: std::sync::Weak<Inner>, lane: Arc<Lane>) {
    loop {
        let notified = lane.notify.notified();
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let now = Instant::now();
        let (empty, backoff) = match lane.queue.lock() {
            Ok(q) => {
                let ready = q.iter().any(|x| x.not_before <= now);
                let earliest = q.iter().map(|x| x.not_before).min();
                (q.is_empty(), earliest.filter(|_| !ready).map(|e| e - now))
            }
            Err(_) => return,
        };
        if empty {
            drop(inner);
            // Wake on new work, or now and then to notice the client is gone.
            let _ = tokio::time::timeout(Duration::from_secs(3600), notified).await;
            continue;
        }
        if let Some(reason) = lane.state.lock().ok().and_then(|s| s.disabled.clone()) {
            let drained: Vec<Queued> = lane
                .queue
                .lock()
                .map(|mut q| q.drain(..).collect())
                .unwrap_or_default();
            for d in drained {
                resolve(
                    &lane,
                    &(d.ioc.kind, d.ioc.value),
                    Outcome::Failed(reason.clone()),
                );
            }
            continue;
        }
        let paused = lane
            .state
            .lock()
            .ok()
            .and_then(|s| s.paused_until)
            .filter(|u| *u > now);
        let budget = lane
            .quota
            .lock()
            .map(|mut q| q.wait(now))
            .unwrap_or(Duration::ZERO);
        let hard = [
            paused.map(|u| u - now),
            Some(budget).filter(|b| !b.is_zero()),
        ]
        .into_iter()
        .flatten()
        .max();
        if let Some(w) = hard {
            drop(inner);
            // New work or a new focus changes what goes next, never the budget: sleep on.
            tokio::time::sleep(w).await;
            continue;
        }
        if let Some(w) = backoff {
            drop(inner);
            // Only retries are waiting: new work may go first.
            let _ = tokio::time::timeout(w, notified).await;
            continue;
        }
        let Ok(permit) = lane.permits.clone().acquire_owned().await else {
            return;
        };
        // The answer that freed the slot may have paused or stopped the lane: look again.
        let stopped = lane.state.lock().map_or(true, |s| {
            s.disabled.is_some() || s.paused_until.is_some_and(|u| u > Instant::now())
        });
        if stopped {
            drop(permit);
            continue;
        }
        let focus = inner.focus.lock().ok().and_then(|f| *f);
        let now = Instant::now();
        let Some(item) = lane
            .queue
            .lock()
            .ok()
            .and_then(|mut q| pick(&mut q, focus, now))
        else {
            continue;
        };
        if let Ok(mut q) = lane.quota.lock() {
            q.spend(now);
        }
        if let Ok(mut s) = lane.state.lock() {
            s.sent += 1;
            s.in_flight += 1;
        }
        let writer = inner.writer.clone();
        let fut = inner.transport.fetch(lane.settings.id, &item.ioc);
        let mut gone = inner.gone.subscribe();
        drop(inner);
        if let Some(w) = &writer {
            // Awaited, not tried: a lost usage record would let a restart overspend the budget.
            let _ = w
                .send(WriteOp::ProviderUsage {
                    provider: lane.settings.id.name().to_string(),
                    at: Utc::now(),
                })
                .await;
        }
        let lane2 = lane.clone();
        tokio::spawn(async move {
            // Once the client is gone (vigil is stopping) the request is abandoned: its alert
            // is still marked pending in the database and is asked again on the next start.
            let r = tokio::select! {
                r = fut => r,
                _ = gone.changed() => return,
            };
            let cache = finish(&lane2, item, r);
            drop(permit);
            if let (Some(w), Some(op)) = (writer, cache) {
                let _ = w.send(op).await;
            }
        });
    }
}

/// Settle a request: resolve its waiters, requeue, pause or stop the lane. Returns the cache
/// write for an answer (the caller awaits the writer, so no answer is dropped on a full queue).
fn finish(lane: &Lane, mut item: Queued, r: Result<Answer, FetchError>) -> Option<WriteOp> {
    let key: Key = (item.ioc.kind, item.ioc.value.clone());
    let now = Instant::now();
    let mut state = match lane.state.lock() {
        Ok(s) => s,
        Err(_) => return None,
    };
    state.in_flight = state.in_flight.saturating_sub(1);
    match r {
        Ok(answer) => {
            drop(state);
            let mut result = EnrichmentResult::new(
                &item.ioc,
                lane.settings.id.name(),
                SourceKind::Provider,
                answer.verdict,
            );
            result.score = answer.score;
            result.detail = answer.detail;
            let ttl = if answer.verdict.is_negative() {
                lane.settings.negative_ttl
            } else {
                lane.settings.ttl
            };
            if let Ok(mut m) = lane.memo.lock() {
                m.insert(key.clone(), (result.clone(), now + ttl));
            }
            let put = WriteOp::CachePut {
                provider: lane.settings.id.name().to_string(),
                result: Box::new(result.clone()),
                expires_at: result.fetched_at + chrono::Duration::from_std(ttl).unwrap_or_default(),
            };
            resolve(
                lane,
                &key,
                Outcome::Answer {
                    result: Box::new(result),
                    cached: false,
                },
            );
            return Some(put);
        }
        Err(FetchError::RateLimited(after)) => {
            // Not an answer and not lost: back to the front, and the whole lane waits.
            let wait = after.unwrap_or(DEFAULT_RETRY_AFTER);
            state.rate_limited += 1;
            state.last_error = Some(format!("429, waiting {}s", wait.as_secs()));
            state.paused_until = Some(state.paused_until.map_or(now + wait, |u| u.max(now + wait)));
            drop(state);
            if let Ok(mut q) = lane.queue.lock() {
                q.push_front(item);
            }
            lane.notify.notify_one();
        }
        Err(FetchError::Unauthorized(code)) => {
            let why = format!("API key refused ({code}); fix it and restart");
            state.failed += 1;
            state.disabled = Some(why.clone());
            state.last_error = Some(why.clone());
            drop(state);
            tracing::warn!(provider = lane.settings.id.name(), "{why}");
            resolve(lane, &key, Outcome::Failed(why));
            lane.notify.notify_one();
        }
        Err(e) if e.is_transient() && item.attempts < lane.settings.retries => {
            item.attempts += 1;
            item.not_before = now + BACKOFF * 2u32.saturating_pow(item.attempts - 1);
            state.last_error = Some(e.to_string());
            drop(state);
            if let Ok(mut q) = lane.queue.lock() {
                q.push_back(item);
            }
            lane.notify.notify_one();
        }
        Err(e) => {
            state.failed += 1;
            state.last_error = Some(e.to_string());
            drop(state);
            tracing::info!(provider = lane.settings.id.name(), "lookup failed: {e}");
            resolve(lane, &key, Outcome::Failed(e.to_string()));
        }
    }
    None
}

#[cfg(test)]
mod tests;
