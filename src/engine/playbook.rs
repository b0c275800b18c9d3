//! YAML playbooks: when an alert matches, which response steps to propose. Owns loading,
//! checking, matching and rendering a proposal; running it is the connectors' job, deciding it
//! the analyst's.

use super::alert::{get_path, sha256_hex};
use super::connector::Connectors;
use super::template::{self, render};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Playbook {
    pub name: String,
    pub description: String,
    /// ATT&CK technique ids this playbook responds to.
    #[serde(default)]
    pub attack: Vec<String>,
    #[serde(rename = "match")]
    pub matcher: Match,
    pub steps: Vec<Step>,
    /// Which file it came from, for errors and the audit trail.
    #[serde(skip)]
    pub source: String,
    /// SHA-256 of the file's text, recorded when a session loads it.
    #[serde(skip)]
    pub sha256: String,
}

/// All of `all` and at least one of `any` (when given) must hold.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    #[serde(default)]
    pub all: Vec<Condition>,
    #[serde(default)]
    pub any: Vec<Condition>,
}

/// One test on a field of the alert's ECS document (`vigil.risk` and `vigil.band` included).
/// Exactly one operator is set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub field: String,
    pub equals: Option<String>,
    pub one_of: Option<Vec<String>>,
    /// Case-insensitive substring.
    pub contains: Option<String>,
    pub contains_any: Option<Vec<String>>,
    pub gte: Option<f64>,
    pub lte: Option<f64>,
    pub exists: Option<bool>,
}

/// Who must approve a step before it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalPolicy {
    /// Runs without a human: only for harmless steps such as notifications.
    Auto,
    #[default]
    OneAnalyst,
    TwoAnalysts,
}

impl ApprovalPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalPolicy::Auto => "auto",
            ApprovalPolicy::OneAnalyst => "one_analyst",
            ApprovalPolicy::TwoAnalysts => "two_analysts",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub id: String,
    pub title: String,
    pub connector: String,
    /// Conditions (all must hold) for this step to be proposed for a matching alert.
    #[serde(default)]
    pub when: Vec<Condition>,
    /// Propose the step once per indicator of a kind (`ioc.ip_public`, `ioc.domain`, ...), with
    /// `${ioc.value}` bound to each.
    #[serde(default)]
    pub for_each: Option<String>,
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    #[serde(default)]
    pub approval: ApprovalPolicy,
    /// How long an approval stays valid before the action runs (`30m`, `1h`, `2d`).
    #[serde(default)]
    pub approval_expires: Option<String>,
    /// Attempts and the pause between them when the call fails outright.
    #[serde(default)]
    pub retry: Retry,
    /// Longest the call may take; a call that times out has an unknown outcome.
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub on_error: OnError,
    /// The call that undoes this one, proposed with it so its approver sees it too.
    #[serde(default)]
    pub rollback: Option<RollbackStep>,
}

/// Retries of a failed call. The same idempotency key is sent every time, so a receiver that
/// got an earlier attempt can drop the repeat.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    pub attempts: u32,
    pub backoff_seconds: f64,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 1,
            backoff_seconds: 2.0,
        }
    }
}

/// What a failed step does to the rest of its playbook's proposals for the same alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Cancel the playbook's later steps that have not run.
    #[default]
    Stop,
    Continue,
    /// Like stop, and flag the alert for a senior analyst.
    Escalate,
}

impl OnError {
    pub fn as_str(self) -> &'static str {
        match self {
            OnError::Stop => "stop",
            OnError::Continue => "continue",
            OnError::Escalate => "escalate",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackStep {
    pub connector: String,
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Undo automatically this long after the action succeeded (`4h`); absent: only by hand.
    #[serde(default)]
    pub revert_after: Option<String>,
}

/// A call rendered and hashed: what runs, and what an approval binds to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderedCall {
    pub connector: String,
    pub params: Map<String, Value>,
    pub rendered: String,
    pub call_hash: String,
    /// Where the call takes effect (empty in rollbacks stored by earlier versions).
    #[serde(default)]
    pub destination: String,
}

/// Default life of an approval.
pub const DEFAULT_APPROVAL_EXPIRY_SECONDS: u64 = 3600;
/// Default limit on one call.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 30;

/// Parse `90s`, `15m`, `1h`, `2d` (or a bare number of seconds).
///
/// # Errors
/// Anything else, with the text.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 90s, 15m, 1h or 2d"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("`{s}` is not a duration like 90s, 15m, 1h or 2d")),
    };
    n.checked_mul(mult)
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("`{s}` is out of range"))
}

/// A rendered step waiting for a decision. `call_hash` covers connector and params, so an
/// approval binds to exactly this call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProposedAction {
    pub playbook: String,
    pub step: String,
    pub title: String,
    pub connector: String,
    pub params: Map<String, Value>,
    /// What will run, in words, shown to the approver.
    pub rendered: String,
    /// Where it takes effect (blocklist file, URL, program, relay), shown to the approver.
    pub destination: String,
    pub call_hash: String,
    pub approval: ApprovalPolicy,
    /// Position of the step in its playbook (later steps are cancelled by `on_error: stop`).
    pub step_index: u32,
    pub approval_expires_seconds: u64,
    pub retry: Retry,
    pub timeout_seconds: u64,
    pub on_error: OnError,
    pub rollback: Option<RenderedCall>,
    pub revert_after_seconds: Option<u64>,
}

/// Where match conditions read fields. A document answers from itself; the pipeline answers
/// common fields straight from the alert and builds the full document only when asked for
/// anything else (most alerts fail the first condition, so most never need it).
pub trait Fields {
    fn field(&self, path: &str) -> Option<Value>;

    /// True when reading `path` costs no more than a lookup, whatever has been read before.
    /// Matching tries these conditions first, so an alert that fails on a cheap field never
    /// builds its full document.
    fn cheap(&self, _path: &str) -> bool {
        true
    }
}

/// `all` over conditions, cheap fields first (the result is the same in any order).
fn all_cheap_first(
    conds: &[Condition],
    doc: &dyn Fields,
    holds: impl Fn(&Condition) -> bool,
) -> bool {
    let cheap = |c: &&Condition| doc.cheap(&c.field);
    conds.iter().filter(cheap).all(&holds) && conds.iter().filter(|c| !cheap(c)).all(&holds)
}

/// `any` over conditions, cheap fields first.
fn any_cheap_first(
    conds: &[Condition],
    doc: &dyn Fields,
    holds: impl Fn(&Condition) -> bool,
) -> bool {
    let cheap = |c: &&Condition| doc.cheap(&c.field);
    conds.iter().filter(cheap).any(&holds) || conds.iter().filter(|c| !cheap(c)).any(&holds)
}

impl Fields for Value {
    fn field(&self, path: &str) -> Option<Value> {
        get_path(self, path).filter(|v| !v.is_null()).cloned()
    }
}

/// A playbook problem: `file:line:column: message` when the YAML parser knows the place,
/// `file: playbook NAME, step ID: message` otherwise.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct PlaybookError(pub String);

impl Condition {
    fn operator_count(&self) -> usize {
        [
            self.equals.is_some(),
            self.one_of.is_some(),
            self.contains.is_some(),
            self.contains_any.is_some(),
            self.gte.is_some(),
            self.lte.is_some(),
            self.exists.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count()
    }

    fn holds(&self, doc: &dyn Fields) -> bool {
        let v = doc.field(&self.field);
        if let Some(want) = self.exists {
            return v.is_some() == want;
        }
        let Some(v) = v else { return false };
        // A list field (threat.technique.id) holds when any element does.
        if let Value::Array(items) = &v {
            return items.iter().any(|i| self.holds_scalar(i));
        }
        self.holds_scalar(&v)
    }

    fn holds_scalar(&self, v: &Value) -> bool {
        let text = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let lower = text.to_lowercase();
        if let Some(e) = &self.equals {
            return &text == e;
        }
        if let Some(set) = &self.one_of {
            return set.iter().any(|s| s == &text);
        }
        if let Some(c) = &self.contains {
            return lower.contains(&c.to_lowercase());
        }
        if let Some(cs) = &self.contains_any {
            return cs.iter().any(|c| lower.contains(&c.to_lowercase()));
        }
        let num = v.as_f64().or_else(|| text.parse::<f64>().ok());
        if let Some(min) = self.gte {
            return num.is_some_and(|n| n >= min);
        }
        if let Some(max) = self.lte {
            return num.is_some_and(|n| n <= max);
        }
        false
    }
}

impl Playbook {
    pub fn matches(&self, doc: &dyn Fields) -> bool {
        let holds = |c: &Condition| c.holds(doc);
        all_cheap_first(&self.matcher.all, doc, holds)
            && (self.matcher.any.is_empty() || any_cheap_first(&self.matcher.any, doc, holds))
    }

    /// True when the playbook reads the alert's incident (`incident.*` in a condition or a
    /// template): it can only be decided once the writer has put the alert in its incident.
    pub fn needs_incident(&self) -> bool {
        let cond = |c: &Condition| c.field.starts_with("incident.");
        let tmpl = |t: &String| t.contains("${incident.");
        self.matcher.all.iter().chain(&self.matcher.any).any(cond)
            || self.steps.iter().any(|s| {
                s.when.iter().any(cond)
                    || s.params.values().any(tmpl)
                    || s.rollback
                        .as_ref()
                        .is_some_and(|r| r.params.values().any(tmpl))
            })
    }

    /// Everything but the incident conditions (which count as holding): the cheap first pass
    /// before the writer knows the incident.
    pub fn matches_before_incident(&self, doc: &dyn Fields) -> bool {
        let holds = |c: &Condition| c.field.starts_with("incident.") || c.holds(doc);
        all_cheap_first(&self.matcher.all, doc, holds)
            && (self.matcher.any.is_empty() || any_cheap_first(&self.matcher.any, doc, holds))
    }

    /// Render every step for an alert document. A step whose placeholders cannot be filled is
    /// left out (it cannot run) and its reason returned beside the proposals.
    pub fn propose(
        &self,
        alert_doc: &Value,
        connectors: &Connectors,
    ) -> (Vec<ProposedAction>, Vec<String>) {
        let ctx = serde_json::json!({
            "alert": alert_doc,
            "vigil": alert_doc.get("vigil"),
            "incident": alert_doc.get("incident"),
            "ioc": alert_doc.get("ioc"),
        });
        let mut out = Vec::new();
        let mut skipped = Vec::new();
        for (index, step) in self.steps.iter().enumerate() {
            if !step.when.iter().all(|c| c.holds(alert_doc)) {
                continue;
            }
            // One context per indicator for a `for_each` step; the alert's own otherwise.
            let contexts: Vec<Value> = match &step.for_each {
                None => vec![ctx.clone()],
                Some(list) => get_path(&ctx, list)
                    .and_then(Value::as_array)
                    .map(|values| {
                        values
                            .iter()
                            .map(|v| {
                                let mut c = ctx.clone();
                                if let Some(Value::Object(ioc)) = c.get_mut("ioc") {
                                    ioc.insert("value".into(), v.clone());
                                }
                                c
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            };
            for ctx in &contexts {
                let call = match render_call(&step.connector, &step.params, ctx, connectors) {
                    Ok(c) => c,
                    Err(e) => {
                        skipped.push(format!("{}/{}: {e}", self.name, step.id));
                        continue;
                    }
                };
                let rollback = match &step.rollback {
                    Some(r) => match render_call(&r.connector, &r.params, ctx, connectors) {
                        Ok(c) => Some(c),
                        Err(e) => {
                            // An action that could not be undone as written is not proposed.
                            skipped.push(format!("{}/{} rollback: {e}", self.name, step.id));
                            continue;
                        }
                    },
                    None => None,
                };
                let secs = |d: &Option<String>, default: u64| {
                    d.as_deref()
                        .and_then(|d| parse_duration(d).ok())
                        .unwrap_or(default)
                };
                out.push(ProposedAction {
                    playbook: self.name.clone(),
                    step: step.id.clone(),
                    title: step.title.clone(),
                    connector: call.connector,
                    call_hash: call.call_hash,
                    params: call.params,
                    rendered: call.rendered,
                    destination: call.destination,
                    approval: step.approval,
                    step_index: index as u32,
                    approval_expires_seconds: secs(
                        &step.approval_expires,
                        DEFAULT_APPROVAL_EXPIRY_SECONDS,
                    ),
                    retry: step.retry,
                    timeout_seconds: secs(&step.timeout, DEFAULT_TIMEOUT_SECONDS),
                    on_error: step.on_error,
                    revert_after_seconds: step
                        .rollback
                        .as_ref()
                        .and_then(|r| r.revert_after.as_deref())
                        .and_then(|d| parse_duration(d).ok()),
                    rollback,
                });
            }
        }
        (out, skipped)
    }

    /// Check what the YAML parser cannot: operators, connectors, placeholders, unique ids,
    /// durations and retry limits. Each problem names the place it is at, which `parse` turns
    /// into a line and column.
    fn check(&self, connectors: &Connectors) -> Result<(), (Place, String)> {
        if self.steps.is_empty() {
            return Err((Place::Steps, "has no steps".into()));
        }
        let lists = [("all", &self.matcher.all), ("any", &self.matcher.any)];
        for (list, conds) in lists {
            for (i, c) in conds.iter().enumerate() {
                if c.operator_count() != 1 {
                    return Err((
                        Place::Condition(list, i),
                        format!("match on `{}`: {ONE_OPERATOR}", c.field),
                    ));
                }
            }
        }
        let mut ids = std::collections::HashSet::new();
        for (n, s) in self.steps.iter().enumerate() {
            let at = |field: &'static str, msg: String| {
                (Place::Step(n, field), format!("step {}: {msg}", s.id))
            };
            if !ids.insert(&s.id) {
                return Err(at("id", "duplicate step id".into()));
            }
            if let Some(list) = &s.for_each {
                let kind = list.strip_prefix("ioc.").unwrap_or("");
                if !super::ioc::LIST_KEYS.contains(&kind) {
                    return Err(at(
                        "for_each",
                        format!(
                            "for_each `{list}`: give one of ioc.{}",
                            super::ioc::LIST_KEYS.join(", ioc.")
                        ),
                    ));
                }
            }
            for (i, c) in s.when.iter().enumerate() {
                if c.operator_count() != 1 {
                    return Err((
                        Place::When(n, i),
                        format!("step {}: when `{}`: {ONE_OPERATOR}", s.id, c.field),
                    ));
                }
            }
            if !connectors.knows(&s.connector) {
                return Err(at(
                    "connector",
                    format!(
                        "unknown connector `{}` (known: {})",
                        s.connector,
                        Connectors::KINDS.join(", ")
                    ),
                ));
            }
            for (k, t) in &s.params {
                template::placeholders(t).map_err(|e| {
                    (
                        Place::Param(n, k.clone()),
                        format!("step {}: param `{k}`: {e}", s.id),
                    )
                })?;
            }
            if let Some(d) = &s.approval_expires {
                parse_duration(d).map_err(|e| at("approval_expires", e))?;
            }
            if let Some(d) = &s.timeout {
                parse_duration(d).map_err(|e| at("timeout", e))?;
            }
            if !(1..=10).contains(&s.retry.attempts)
                || !(0.0..=3600.0).contains(&s.retry.backoff_seconds)
            {
                return Err(at(
                    "retry",
                    "retry attempts must be 1-10 and backoff_seconds 0-3600".into(),
                ));
            }
            if let Some(r) = &s.rollback {
                if !connectors.knows(&r.connector) {
                    return Err(at(
                        "rollback",
                        format!("rollback: unknown connector `{}`", r.connector),
                    ));
                }
                for (k, t) in &r.params {
                    template::placeholders(t)
                        .map_err(|e| at("rollback", format!("rollback param `{k}`: {e}")))?;
                }
                if let Some(d) = &r.revert_after {
                    parse_duration(d).map_err(|e| at("rollback", format!("rollback: {e}")))?;
                }
            }
        }
        Ok(())
    }
}

const ONE_OPERATOR: &str =
    "give exactly one of equals, one_of, contains, contains_any, gte, lte, exists";

/// Where in a playbook a problem is.
#[derive(Debug, Clone)]
enum Place {
    Steps,
    Condition(&'static str, usize),
    Step(usize, &'static str),
    When(usize, usize),
    Param(usize, String),
}

/// The same file read again for locations only: every field a check can complain about,
/// wrapped in `Spanned`.
#[derive(Deserialize)]
struct Located {
    #[serde(default)]
    steps: Option<serde_saphyr::Spanned<Vec<LocatedStep>>>,
    #[serde(rename = "match", default)]
    matcher: Option<LocatedMatch>,
}

#[derive(Deserialize)]
struct LocatedMatch {
    #[serde(default)]
    all: Vec<LocatedCondition>,
    #[serde(default)]
    any: Vec<LocatedCondition>,
}

#[derive(Deserialize)]
struct LocatedCondition {
    field: serde_saphyr::Spanned<String>,
}

#[derive(Deserialize)]
struct LocatedStep {
    id: serde_saphyr::Spanned<String>,
    connector: Option<serde_saphyr::Spanned<String>>,
    #[serde(default)]
    when: Vec<LocatedCondition>,
    #[serde(default)]
    params: BTreeMap<String, serde_saphyr::Spanned<String>>,
    approval_expires: Option<serde_saphyr::Spanned<String>>,
    timeout: Option<serde_saphyr::Spanned<String>>,
    retry: Option<serde_saphyr::Spanned<Retry>>,
    rollback: Option<serde_saphyr::Spanned<LocatedRollback>>,
    for_each: Option<serde_saphyr::Spanned<String>>,
}

#[derive(Deserialize)]
struct LocatedRollback {
    #[serde(default)]
    #[allow(dead_code)]
    connector: Option<String>,
}

impl Located {
    /// `(line, column)` of a place, when the file says.
    fn find(&self, place: &Place) -> Option<(u64, u64)> {
        let loc = |l: &serde_saphyr::Location| (l.line(), l.column());
        let step = |n: usize| self.steps.as_ref().and_then(|s| s.value.get(n));
        match place {
            Place::Steps => self.steps.as_ref().map(|s| loc(&s.referenced)),
            Place::Condition(list, i) => {
                let m = self.matcher.as_ref()?;
                let conds = if *list == "all" { &m.all } else { &m.any };
                conds.get(*i).map(|c| loc(&c.field.referenced))
            }
            Place::When(n, i) => step(*n)?.when.get(*i).map(|c| loc(&c.field.referenced)),
            Place::Param(n, k) => step(*n)?.params.get(k).map(|p| loc(&p.referenced)),
            Place::Step(n, field) => {
                let s = step(*n)?;
                let at = match *field {
                    "connector" => s.connector.as_ref().map(|c| loc(&c.referenced)),
                    "approval_expires" => s.approval_expires.as_ref().map(|c| loc(&c.referenced)),
                    "timeout" => s.timeout.as_ref().map(|c| loc(&c.referenced)),
                    "retry" => s.retry.as_ref().map(|c| loc(&c.referenced)),
                    "rollback" => s.rollback.as_ref().map(|c| loc(&c.referenced)),
                    "for_each" => s.for_each.as_ref().map(|c| loc(&c.referenced)),
                    _ => None,
                };
                at.or_else(|| Some(loc(&s.id.referenced)))
            }
        }
    }
}

/// Render one call's params against `ctx` and have the connector describe it.
fn render_call(
    connector: &str,
    templates: &BTreeMap<String, String>,
    ctx: &Value,
    connectors: &Connectors,
) -> Result<RenderedCall, String> {
    let mut params = Map::new();
    for (k, t) in templates {
        params.insert(k.clone(), render(t, ctx).map_err(|e| e.to_string())?);
    }
    let resolved = connectors
        .resolve(connector, &params)
        .map_err(|e| e.to_string())?;
    Ok(RenderedCall {
        connector: connector.to_string(),
        call_hash: resolved.call_hash,
        params,
        rendered: resolved.rendered,
        destination: resolved.destination,
    })
}

/// Parse one playbook file's text.
///
/// # Errors
/// YAML errors with line and column, then semantic errors naming playbook and step.
pub fn parse(text: &str, source: &str, connectors: &Connectors) -> Result<Playbook, PlaybookError> {
    let mut pb: Playbook = serde_saphyr::from_str(text).map_err(|e| {
        let msg = e.to_string();
        let mut one_line = msg.lines().next().unwrap_or("invalid YAML").trim();
        // The parser repeats the place that is printed in front.
        one_line = one_line.strip_prefix("error: ").unwrap_or(one_line);
        if one_line.starts_with("line ") {
            one_line = one_line.split_once(": ").map_or(one_line, |(_, rest)| rest);
        }
        let one_line = one_line.to_string();
        match e.location() {
            Some(loc) => PlaybookError(format!(
                "{source}:{}:{}: {one_line}",
                loc.line(),
                loc.column()
            )),
            None => PlaybookError(format!("{source}: {one_line}")),
        }
    })?;
    pb.source = source.to_string();
    pb.sha256 = sha256_hex(text.as_bytes());
    if let Err((place, msg)) = pb.check(connectors) {
        let located: Option<Located> = serde_saphyr::from_str(text).ok();
        let at = located.and_then(|l| l.find(&place)).filter(|(l, _)| *l > 0);
        return Err(PlaybookError(match at {
            Some((line, col)) => format!("{source}:{line}:{col}: playbook {}: {msg}", pb.name),
            None => format!("{source}: playbook {}: {msg}", pb.name),
        }));
    }
    Ok(pb)
}

/// The playbooks shipped in `playbooks/`, compiled in so vigil proposes actions with no setup.
pub const EMBEDDED: &[(&str, &str)] = &[
    (
        "playbooks/c2-contain.yaml",
        include_str!("../../playbooks/c2-contain.yaml"),
    ),
    (
        "playbooks/brute-force.yaml",
        include_str!("../../playbooks/brute-force.yaml"),
    ),
    (
        "playbooks/lateral-movement.yaml",
        include_str!("../../playbooks/lateral-movement.yaml"),
    ),
    (
        "playbooks/phishing.yaml",
        include_str!("../../playbooks/phishing.yaml"),
    ),
    (
        "playbooks/data-exfiltration.yaml",
        include_str!("../../playbooks/data-exfiltration.yaml"),
    ),
    (
        "playbooks/malware-on-host.yaml",
        include_str!("../../playbooks/malware-on-host.yaml"),
    ),
    (
        "playbooks/malicious-powershell.yaml",
        include_str!("../../playbooks/malicious-powershell.yaml"),
    ),
];

/// Load the embedded playbooks, or every `*.yaml`/`*.yml` file in `dir`.
///
/// # Errors
/// Every broken file, one line each.
pub fn load(
    dir: Option<&Path>,
    connectors: &Connectors,
) -> Result<Vec<Playbook>, Vec<PlaybookError>> {
    let mut files: Vec<(String, String)> = Vec::new();
    let mut errors = Vec::new();
    match dir {
        None => files.extend(EMBEDDED.iter().map(|(n, t)| (n.to_string(), t.to_string()))),
        Some(dir) => {
            let mut paths: Vec<PathBuf> = match std::fs::read_dir(dir) {
                Ok(rd) => rd
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                    .collect(),
                Err(e) => {
                    return Err(vec![PlaybookError(format!(
                        "{}: cannot read playbook directory: {e}",
                        dir.display()
                    ))])
                }
            };
            paths.sort();
            for p in paths {
                match std::fs::read_to_string(&p) {
                    Ok(t) => files.push((p.display().to_string(), t)),
                    Err(e) => {
                        errors.push(PlaybookError(format!("{}: cannot read: {e}", p.display())))
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    for (name, text) in files {
        match parse(&text, &name, connectors) {
            Ok(p) => out.push(p),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}
