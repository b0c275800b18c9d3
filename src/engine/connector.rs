//! Where approved actions take effect: a blocklist file, a JSON webhook, a Slack incoming
//! webhook, HTTP APIs (EDR, IAM, ticketing), allowlisted commands and e-mail. Owns turning a
//! step's rendered params into one exact call (shown to the approver, then sent unchanged) and
//! sending it; never decides whether a call may run (the approval flow does), never renders a
//! template and never passes anything through a shell.
//!
//! Every connector works in two stages that share one code path: `prepare` validates the params
//! and places each typed value into its slot (an argv element, a percent-encoded URL path segment
//! or query component, a JSON value, a header value), producing a [`Call`]; `send` performs that
//! `Call` and nothing else. `describe` and `dry_run` print the `Call`, `execute` sends it, so what
//! the approver saw is what runs.

pub mod blocklist;
pub mod command;
pub mod email;
pub mod http;
pub mod slack;
pub mod webhook;

use super::alert::{canonical_json, sha256_hex};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The hash an approval binds to: the connector, the params and the call they resolve to
/// (`resolved`, from [`Connectors::resolve`], names the destination), so the same params sent
/// somewhere else are another call.
pub fn call_hash(connector: &str, params: &Map<String, Value>, resolved: &str) -> String {
    let doc = serde_json::json!({"connector": connector, "params": params, "call": resolved});
    sha256_hex(canonical_json(&doc).as_bytes())
}

/// The hash earlier versions bound approvals to: connector and params only, not where the
/// call goes. Recognised so such an approval is asked for again instead of being run.
pub fn unbound_call_hash(connector: &str, params: &Map<String, Value>) -> String {
    let doc = serde_json::json!({"connector": connector, "params": params});
    sha256_hex(canonical_json(&doc).as_bytes())
}

/// Every connector's settings, `[connectors.NAME]` in the config file. Empty strings mean "not
/// configured": such a connector refuses to describe a call, so a playbook step using it is
/// never proposed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorConfig {
    pub blocklist: blocklist::Config,
    pub webhook: webhook::Config,
    #[serde(default)]
    pub slack: slack::Config,
    #[serde(default)]
    pub http: http::Config,
    #[serde(default)]
    pub command: command::Config,
    #[serde(default)]
    pub email: email::Config,
}

/// The configured connectors, validated once at start-up.
#[derive(Debug, Clone)]
pub struct Connectors {
    blocklist: blocklist::Blocklist,
    webhook: Option<webhook::Webhook>,
    slack: Option<slack::Slack>,
    http: http::HttpApis,
    command: command::Commands,
    email: Option<email::Mailer>,
}

/// Why a call cannot be described or made, or a connector configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectorError {
    #[error("unknown connector `{0}`")]
    Unknown(String),
    #[error("{0} connector is not configured ({1})")]
    NotConfigured(&'static str, &'static str),
    #[error("param `{0}` is required")]
    MissingParam(String),
    #[error("param `{param}`: {why}")]
    BadParam { param: String, why: String },
    #[error("param `{param}` has no place in a {connector} call (expected {expected})")]
    UnknownParam {
        connector: &'static str,
        param: String,
        expected: &'static str,
    },
    #[error("[connectors.{section}] {why}")]
    Config { section: String, why: String },
}

impl ConnectorError {
    fn bad(param: &str, why: impl Into<String>) -> Self {
        ConnectorError::BadParam {
            param: param.to_string(),
            why: why.into(),
        }
    }

    fn config(section: &str, why: impl Into<String>) -> Self {
        ConnectorError::Config {
            section: section.to_string(),
            why: why.into(),
        }
    }
}

/// What happened when an action ran. `detail` holds untrusted text (a response body, a
/// command's output): sanitise it before a terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub ok: bool,
    /// For a call that did not succeed: whether it may have taken effect anyway.
    pub reach: Reach,
    pub detail: String,
}

/// Whether a call that did not succeed may have reached its destination: what decides whether
/// it may be tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// What happened is known: the destination answered (success or a refusal), or vigil
    /// refused to make the call. Trying again would change nothing.
    Known,
    /// It certainly never arrived (connection refused, name not resolved, nothing sent yet):
    /// safe to try again.
    NotSent,
    /// It may have arrived and taken effect (a timeout, a connection lost mid-request): never
    /// tried again automatically, because that could do it twice.
    Unknown,
}

/// A call that did not succeed, and whether it may have arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Undone {
    pub reach: Reach,
    pub detail: String,
}

impl Undone {
    /// The destination answered with a failure.
    pub(crate) fn answered(detail: String) -> Self {
        Undone {
            reach: Reach::Known,
            detail,
        }
    }

    /// It may have arrived.
    pub(crate) fn unknown(detail: String) -> Self {
        Undone {
            reach: Reach::Unknown,
            detail,
        }
    }
}

/// A failure before anything left this process (building a request, reading a token, starting
/// a program): the `?` on a plain message. Anything later says its reach explicitly.
impl From<String> for Undone {
    fn from(detail: String) -> Self {
        Undone {
            reach: Reach::NotSent,
            detail,
        }
    }
}

/// Whether an error, or any error under it, is a refused connection: nothing was sent.
pub(crate) fn refused_connection(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
        {
            return true;
        }
        cur = err.source();
    }
    false
}

/// An error with its causes, on one line.
pub(crate) fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(err) = cur {
        let more = err.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cur = err.source();
    }
    text
}

/// One exact call, fully rendered: what `dry_run` shows and what `execute` sends.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    /// Add one validated entry to the blocklist file.
    Blocklist(blocklist::BlocklistCall),
    /// One HTTP request (webhook, Slack and HTTP API connectors).
    Http(http::HttpCall),
    /// One process started from an allowlisted absolute path, without a shell.
    Command(command::CommandCall),
    /// One plain-text e-mail through the configured relay.
    Email(email::EmailCall),
}

impl fmt::Display for Call {
    /// One line, every untrusted value JSON-quoted or percent-encoded so its boundaries show.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Call::Blocklist(c) => c.fmt(f),
            Call::Http(c) => c.fmt(f),
            Call::Command(c) => c.fmt(f),
            Call::Email(c) => c.fmt(f),
        }
    }
}

impl Call {
    /// Where the call takes effect, as the approver is shown it: the blocklist file, the URL
    /// (a secret path masked), the program, or the mail relay.
    pub fn destination(&self) -> String {
        match self {
            Call::Blocklist(c) => c.path.display().to_string(),
            Call::Http(c) => c.shown_url(),
            Call::Command(c) => c.program.display().to_string(),
            Call::Email(c) => c.relay.clone(),
        }
    }

    /// Everything that decides what the call does and where: its one-line description, plus a
    /// fingerprint of a secret URL path (a Slack webhook) the description masks, so a changed
    /// secret destination changes the binding without the secret being stored or shown.
    fn binding(&self) -> String {
        let mut text = self.to_string();
        if let Call::Http(c) = self {
            if c.secret_path {
                text.push_str(" url-sha256 ");
                text.push_str(&hex::encode(Sha256::digest(c.url.as_str().as_bytes())));
            }
        }
        text
    }
}

/// A call resolved against this process's configuration: what the approver is shown, where
/// it goes, and the hash an approval binds to (connector, params and the resolved call).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub rendered: String,
    pub destination: String,
    pub call_hash: String,
}

/// What `describe` shows where the idempotency key will go: the key names the stored action,
/// which does not exist yet when a proposal is described.
pub const KEY_PLACEHOLDER: &str = "<idempotency key>";

/// Longest text value placed anywhere (argv element, JSON string, mail body). Longer values are
/// refused rather than cut, so nothing is silently lost.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

impl Connectors {
    pub const KINDS: &'static [&'static str] =
        &["blocklist", "webhook", "slack", "http", "command", "email"];

    /// Only the blocklist connector, writing to `blocklist_path`: the configuration with
    /// nothing else set (tests and first runs).
    pub fn new(blocklist_path: PathBuf) -> Self {
        Connectors {
            blocklist: blocklist::Blocklist::new(blocklist_path),
            webhook: None,
            slack: None,
            http: http::HttpApis::default(),
            command: command::Commands::default(),
            email: None,
        }
    }

    /// Add a webhook connector posting to `url`.
    ///
    /// # Errors
    /// `url` is not an absolute http(s) URL.
    pub fn with_webhook(mut self, url: &str, timeout: Duration) -> Result<Self, ConnectorError> {
        self.webhook = Some(webhook::Webhook::new(url, timeout)?);
        Ok(self)
    }

    /// Build every connector from the config. `default_blocklist` is used when
    /// `[connectors.blocklist] path` is empty.
    ///
    /// # Errors
    /// A malformed URL, a relative executable path, an unknown TLS mode, a bad address: one
    /// line naming the `[connectors.NAME]` section.
    pub fn from_config(
        c: &ConnectorConfig,
        default_blocklist: PathBuf,
    ) -> Result<Self, ConnectorError> {
        Ok(Connectors {
            blocklist: blocklist::Blocklist::from_config(&c.blocklist, default_blocklist),
            webhook: webhook::Webhook::from_config(&c.webhook)?,
            slack: slack::Slack::from_config(&c.slack)?,
            http: http::HttpApis::from_config(&c.http)?,
            command: command::Commands::from_config(&c.command)?,
            email: email::Mailer::from_config(&c.email)?,
        })
    }

    pub fn knows(&self, kind: &str) -> bool {
        Self::KINDS.contains(&kind)
    }

    /// Check a step's param names before any alert arrives (for `playbook check`): every
    /// required name is there and every name has a place. Values are checked when the step is
    /// rendered for an alert.
    ///
    /// # Errors
    /// Unknown connector, a missing required param, or a name the connector does not place.
    pub fn check_params<'a>(
        kind: &str,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), ConnectorError> {
        let schema = Schema::of(kind).ok_or_else(|| ConnectorError::Unknown(kind.into()))?;
        let names: Vec<&str> = names.into_iter().collect();
        if let Some(missing) = schema.required.iter().find(|r| !names.contains(r)) {
            return Err(ConnectorError::MissingParam(missing.to_string()));
        }
        match names.iter().find(|n| !schema.places(n)) {
            Some(n) => Err(schema.unplaced(n)),
            None => Ok(()),
        }
    }

    /// Validate `params` and place every value: the exact call `execute` would make with
    /// `idempotency_key`, without making it. Secrets (bearer tokens, the Slack webhook path,
    /// SMTP passwords) are masked in what this prints; they are read only when sending.
    ///
    /// # Errors
    /// Unknown or unconfigured connector, a missing, unknown or invalid param.
    pub fn dry_run(
        &self,
        kind: &str,
        params: &Map<String, Value>,
        idempotency_key: &str,
    ) -> Result<Call, ConnectorError> {
        let mut p = Params::new(params);
        let call = match kind {
            "blocklist" => Call::Blocklist(self.blocklist.prepare(&mut p)?),
            "webhook" => Call::Http(
                configured(&self.webhook, "webhook", "[connectors.webhook] url")?
                    .prepare(&mut p, idempotency_key)?,
            ),
            "slack" => Call::Http(
                configured(&self.slack, "slack", "[connectors.slack] url")?
                    .prepare(&mut p, idempotency_key)?,
            ),
            "http" => Call::Http(self.http.prepare(&mut p, idempotency_key)?),
            "command" => Call::Command(self.command.prepare(&mut p, idempotency_key)?),
            "email" => Call::Email(
                configured(&self.email, "email", "[connectors.email] relay and from")?
                    .prepare(&mut p, idempotency_key)?,
            ),
            other => return Err(ConnectorError::Unknown(other.to_string())),
        };
        p.finish(kind)?;
        Ok(call)
    }

    /// The exact call, on one line, as the approver will see it: `dry_run` with the key shown as
    /// [`KEY_PLACEHOLDER`]. Also validates the params, so a proposal that could never run is
    /// never shown.
    ///
    /// # Errors
    /// As [`Connectors::dry_run`].
    pub fn describe(
        &self,
        kind: &str,
        params: &Map<String, Value>,
    ) -> Result<String, ConnectorError> {
        Ok(self.dry_run(kind, params, KEY_PLACEHOLDER)?.to_string())
    }

    /// The call as this process would make it, and the hash that binds an approval to it. Two
    /// processes with different configurations (another blocklist path, base URL, relay or
    /// program) resolve the same params to different hashes.
    ///
    /// # Errors
    /// As [`Connectors::dry_run`].
    pub fn resolve(
        &self,
        kind: &str,
        params: &Map<String, Value>,
    ) -> Result<Resolved, ConnectorError> {
        let call = self.dry_run(kind, params, KEY_PLACEHOLDER)?;
        Ok(Resolved {
            rendered: call.to_string(),
            destination: call.destination(),
            call_hash: call_hash(kind, params, &call.binding()),
        })
    }

    /// Run one approved call. Never panics; every failure is an `Outcome` with `ok: false`.
    pub async fn execute(
        &self,
        kind: &str,
        params: &Map<String, Value>,
        idempotency_key: &str,
    ) -> Outcome {
        match self.dry_run(kind, params, idempotency_key) {
            Ok(call) => self.send(&call).await,
            Err(e) => Outcome {
                ok: false,
                reach: Reach::Known,
                detail: format!("not run: {e}"),
            },
        }
    }

    /// Run one approved call only if it still renders exactly as `approved` (the `describe`
    /// text the analyst approved). Params are covered by the call hash; this also catches a
    /// configuration change (another base URL, relay or allowlist) between approval and run.
    pub async fn execute_approved(
        &self,
        kind: &str,
        params: &Map<String, Value>,
        idempotency_key: &str,
        approved: &str,
    ) -> Outcome {
        match self.describe(kind, params) {
            Ok(now) if now == approved => self.execute(kind, params, idempotency_key).await,
            Ok(now) => Outcome {
                ok: false,
                reach: Reach::Known,
                detail: format!(
                    "not run: the call changed since it was approved (configuration changed?); it would now be: {now}"
                ),
            },
            Err(e) => Outcome {
                ok: false,
                reach: Reach::Known,
                detail: format!("not run: {e}"),
            },
        }
    }

    /// Send a prepared call exactly as it is.
    pub async fn send(&self, call: &Call) -> Outcome {
        let result = match call {
            // The list is replaced by a rename or not at all: a failure left it as it was.
            Call::Blocklist(c) => self.blocklist.add(c).await.map_err(Undone::from),
            Call::Http(c) => http::send(c).await,
            Call::Command(c) => command::run(c).await,
            Call::Email(c) => match &self.email {
                Some(m) => m.send(c).await,
                None => Err(Undone::from(
                    "email connector is not configured".to_string(),
                )),
            },
        };
        match result {
            Ok(detail) => Outcome {
                ok: true,
                reach: Reach::Known,
                detail,
            },
            Err(u) => Outcome {
                ok: false,
                reach: u.reach,
                detail: u.detail,
            },
        }
    }
}

/// The connector if it is configured, else which setting is missing.
fn configured<'a, T>(
    c: &'a Option<T>,
    kind: &'static str,
    setting: &'static str,
) -> Result<&'a T, ConnectorError> {
    c.as_ref()
        .ok_or(ConnectorError::NotConfigured(kind, setting))
}

/// A step's rendered params as one connector reads them: each read marks the param as placed,
/// and `finish` refuses any param left over, so a misspelt name is an error rather than a
/// silently dropped value.
pub(crate) struct Params<'a> {
    map: &'a Map<String, Value>,
    placed: BTreeSet<&'a str>,
}

impl<'a> Params<'a> {
    fn new(map: &'a Map<String, Value>) -> Self {
        Params {
            map,
            placed: BTreeSet::new(),
        }
    }

    fn get(&mut self, name: &str) -> Option<&'a Value> {
        let (k, v) = self.map.get_key_value(name)?;
        self.placed.insert(k.as_str());
        Some(v)
    }

    /// A required param as text (see [`scalar_text`]).
    fn text(&mut self, name: &str) -> Result<String, ConnectorError> {
        let v = self
            .get(name)
            .ok_or_else(|| ConnectorError::MissingParam(name.to_string()))?;
        scalar_text(name, v)
    }

    /// An optional param as text.
    fn optional_text(&mut self, name: &str) -> Result<Option<String>, ConnectorError> {
        match self.get(name) {
            Some(v) => scalar_text(name, v).map(Some),
            None => Ok(None),
        }
    }

    /// `PREFIX.1`, `PREFIX.2`, ... in numeric order; the numbers must run from 1 without gaps
    /// so a missing value can never shift the others into different positions.
    fn numbered(&mut self, prefix: &str) -> Result<Vec<(String, &'a Value)>, ConnectorError> {
        let mut found: Vec<(usize, &'a str, &'a Value)> = Vec::new();
        for (k, v) in self.map {
            let Some(rest) = k.strip_prefix(prefix).and_then(|r| r.strip_prefix('.')) else {
                continue;
            };
            let n: usize = rest
                .parse()
                .ok()
                .filter(|n| *n >= 1 && !rest.starts_with('0'))
                .ok_or_else(|| {
                    ConnectorError::bad(k, format!("`{prefix}.` must be followed by 1, 2, 3, ..."))
                })?;
            found.push((n, k.as_str(), v));
        }
        found.sort_by_key(|(n, _, _)| *n);
        for (i, (n, k, _)) in found.iter().enumerate() {
            if *n != i + 1 {
                return Err(ConnectorError::bad(
                    k,
                    format!(
                        "`{prefix}.{}` is missing: positions must run 1, 2, 3, ... without gaps",
                        i + 1
                    ),
                ));
            }
        }
        Ok(found
            .into_iter()
            .map(|(_, k, v)| {
                self.placed.insert(k);
                (k.to_string(), v)
            })
            .collect())
    }

    /// Every `PREFIX.NAME` param as (NAME, full param name, value), in the map's order.
    fn prefixed(&mut self, prefix: &str) -> Vec<(&'a str, &'a str, &'a Value)> {
        let mut out = Vec::new();
        for (k, v) in self.map {
            if let Some(rest) = k.strip_prefix(prefix).and_then(|r| r.strip_prefix('.')) {
                self.placed.insert(k.as_str());
                out.push((rest, k.as_str(), v));
            }
        }
        out
    }

    /// Every param not yet placed.
    fn rest(&mut self) -> Vec<(&'a str, &'a Value)> {
        let out: Vec<_> = self
            .map
            .iter()
            .filter(|(k, _)| !self.placed.contains(k.as_str()))
            .map(|(k, v)| (k.as_str(), v))
            .collect();
        self.placed.extend(out.iter().map(|(k, _)| *k));
        out
    }

    fn finish(self, kind: &str) -> Result<(), ConnectorError> {
        let Some(left) = self.map.keys().find(|k| !self.placed.contains(k.as_str())) else {
            return Ok(());
        };
        let schema = Schema::of(kind).ok_or_else(|| ConnectorError::Unknown(kind.into()))?;
        Err(schema.unplaced(left))
    }
}

/// The param names a connector places: what `playbook check` can verify before any alert
/// arrives, and what an unplaced param's error lists.
struct Schema {
    kind: &'static str,
    required: &'static [&'static str],
    /// Exact names, and `PREFIX.` families (`path.` takes `path.1`, `path.2`, ...).
    names: &'static [&'static str],
    numbered: &'static [&'static str],
    named: &'static [&'static str],
    expected: &'static str,
}

impl Schema {
    fn of(kind: &str) -> Option<Schema> {
        let s = |kind, required, names, numbered, named, expected| Schema {
            kind,
            required,
            names,
            numbered,
            named,
            expected,
        };
        Some(match kind {
            "blocklist" => s("blocklist", &["entry"], &["entry"], &[], &[], "entry"),
            "webhook" => s("webhook", &[], &[], &[], &[], "any name"),
            "slack" => s("slack", &["text"], &["text"], &[], &[], "text"),
            "http" => s(
                "http",
                &["api", "method"],
                &["api", "method"],
                &["path"],
                &["query", "header", "body"],
                "api, method, path.N, query.NAME, header.NAME, body.FIELD",
            ),
            "command" => s(
                "command",
                &["program"],
                &["program"],
                &["arg", "operand"],
                &[],
                "program, arg.N, operand.N",
            ),
            "email" => s(
                "email",
                &["to", "subject", "body"],
                &["to", "subject", "body"],
                &[],
                &[],
                "to, subject, body",
            ),
            _ => return None,
        })
    }

    fn places(&self, name: &str) -> bool {
        let family = |prefixes: &[&str], ok: &dyn Fn(&str) -> bool| {
            prefixes.iter().any(|p| {
                name.strip_prefix(p)
                    .and_then(|r| r.strip_prefix('.'))
                    .is_some_and(ok)
            })
        };
        self.kind == "webhook"
            || self.names.contains(&name)
            || family(self.numbered, &|r| {
                r.parse::<usize>().is_ok_and(|n| n >= 1) && !r.starts_with('0')
            })
            || family(self.named, &|r| !r.is_empty())
    }

    fn unplaced(&self, param: &str) -> ConnectorError {
        ConnectorError::UnknownParam {
            connector: self.kind,
            param: param.to_string(),
            expected: self.expected,
        }
    }
}

/// A param as the text placed into an argv element, URL component, header or mail field: a
/// string as it is, a number or boolean in its JSON spelling. Lists, objects and null have no
/// single text and are refused.
///
/// # Errors
/// A null, list or object value.
pub fn scalar_text(param: &str, v: &Value) -> Result<String, ConnectorError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Err(ConnectorError::bad(param, "is null, not a value")),
        Value::Array(_) => Err(ConnectorError::bad(
            param,
            "is a list; this place takes one text, number or true/false value",
        )),
        Value::Object(_) => Err(ConnectorError::bad(
            param,
            "is an object; this place takes one text, number or true/false value",
        )),
    }
}

/// Refuse a value over `max` bytes, naming its length.
fn check_len(param: &str, s: &str, max: usize) -> Result<(), ConnectorError> {
    if s.len() > max {
        return Err(ConnectorError::bad(
            param,
            format!("is {} bytes, over the {max} byte limit", s.len()),
        ));
    }
    Ok(())
}

/// Refuse the characters that end a line or a C string in any protocol vigil speaks.
fn no_line_breaks(param: &str, s: &str) -> Result<(), ConnectorError> {
    if let Some(c) = s.chars().find(|c| matches!(c, '\r' | '\n' | '\0')) {
        return Err(ConnectorError::bad(
            param,
            format!(
                "contains {} (would end a header or line)",
                match c {
                    '\r' => "CR",
                    '\n' => "LF",
                    _ => "NUL",
                }
            ),
        ));
    }
    Ok(())
}

/// A JSON string literal: how untrusted text is printed inside a one-line call description, so
/// quotes, spaces and control characters cannot blur where a value starts and ends.
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// An untrusted value inside an error message: JSON-quoted and cut to 80 characters, so a
/// 100 KB alert field cannot flood a log line or the proposal list.
fn shown(s: &str) -> String {
    const KEEP: usize = 80;
    match s.char_indices().nth(KEEP) {
        None => quoted(s),
        Some((cut, _)) => format!("{}... ({} bytes)", quoted(&s[..cut]), s.len()),
    }
}

/// Untrusted output (a response body, a command's stdout) for an outcome: at most `limit`
/// bytes, JSON-quoted, with the full length when cut.
fn excerpt(bytes: &[u8], limit: usize) -> String {
    let kept = &bytes[..bytes.len().min(limit)];
    let text = String::from_utf8_lossy(kept);
    if bytes.len() > limit {
        format!(
            "{} ({} bytes, first {limit} shown)",
            quoted(&text),
            bytes.len()
        )
    } else {
        quoted(&text)
    }
}

/// Treat `""` (or blanks) in the config as "not set".
fn non_empty(s: &str) -> Option<&str> {
    let t = s.trim();
    (!t.is_empty()).then_some(t)
}

fn timeout_from(seconds: u64) -> Duration {
    Duration::from_secs(seconds.max(1))
}

/// Parse a configured http(s) base URL; credentials in it are refused (they would be shown to
/// every approver and stored in the audit trail).
fn config_url(section: &str, key: &str, raw: &str) -> Result<url::Url, ConnectorError> {
    let u = url::Url::parse(raw.trim())
        .map_err(|e| ConnectorError::config(section, format!("{key} {raw:?}: {e}")))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(ConnectorError::config(
            section,
            format!("{key} {raw:?}: must be an http:// or https:// URL with a host"),
        ));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(ConnectorError::config(
            section,
            format!("{key}: put no credentials in the URL (use token_env)"),
        ));
    }
    Ok(u)
}

/// A JSON object literal as a params map, for tests.
#[cfg(test)]
pub(crate) fn params(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbered_params_must_run_without_gaps() {
        let m = params(json!({"arg.1": "a", "arg.3": "c"}));
        let e = Params::new(&m).numbered("arg").expect_err("gap");
        assert_eq!(
            e.to_string(),
            "param `arg.3`: `arg.2` is missing: positions must run 1, 2, 3, ... without gaps"
        );
        let m = params(
            json!({"arg.2": "b", "arg.10": "j", "arg.1": "a", "arg.3": "c", "arg.4": 4, "arg.5": 5, "arg.6": 6, "arg.7": 7, "arg.8": 8, "arg.9": 9}),
        );
        let got = Params::new(&m).numbered("arg").expect("numbered");
        let names: Vec<_> = got.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names[..3], ["arg.1", "arg.2", "arg.3"]);
        assert_eq!(names[9], "arg.10", "numeric, not text, order");
        let m = params(json!({"arg.01": "a"}));
        assert!(Params::new(&m).numbered("arg").is_err());
    }

    #[test]
    fn unplaced_params_are_refused() {
        let c = Connectors::new(PathBuf::from("/tmp/bl.txt"));
        let e = c
            .describe(
                "blocklist",
                &params(json!({"entry": "192.0.2.1", "entyr": "x"})),
            )
            .expect_err("typo");
        assert_eq!(
            e.to_string(),
            "param `entyr` has no place in a blocklist call (expected entry)"
        );
    }

    #[test]
    fn param_names_are_checked_without_values() {
        assert_eq!(
            Connectors::check_params(
                "http",
                [
                    "api",
                    "method",
                    "path.1",
                    "path.2",
                    "query.q",
                    "header.X-A",
                    "body.a.b"
                ]
            ),
            Ok(())
        );
        assert_eq!(
            Connectors::check_params("command", ["program", "arg.1", "operand.1"]),
            Ok(())
        );
        assert_eq!(
            Connectors::check_params("command", ["program", "arg.0"]).map_err(|e| e.to_string()),
            Err(
                "param `arg.0` has no place in a command call (expected program, arg.N, operand.N)"
                    .into()
            )
        );
        assert_eq!(
            Connectors::check_params("email", ["to", "subject"]),
            Err(ConnectorError::MissingParam("body".into()))
        );
        assert!(Connectors::check_params("blocklist", ["entry", "entyr"]).is_err());
        assert!(Connectors::check_params("http", ["api", "method", "header."]).is_err());
        assert_eq!(Connectors::check_params("webhook", ["anything"]), Ok(()));
        assert_eq!(
            Connectors::check_params("ssh", ["x"]),
            Err(ConnectorError::Unknown("ssh".into()))
        );
    }

    #[test]
    fn scalars_become_text_and_containers_are_refused() {
        assert_eq!(scalar_text("p", &json!(443)), Ok("443".into()));
        assert_eq!(scalar_text("p", &json!(true)), Ok("true".into()));
        assert!(scalar_text("p", &json!(["a"])).is_err());
        assert!(scalar_text("p", &json!({"a": 1})).is_err());
        assert!(scalar_text("p", &Value::Null).is_err());
    }

    #[test]
    fn unconfigured_connectors_say_which_key_to_set() {
        let c = Connectors::new(PathBuf::from("/tmp/bl.txt"));
        for (kind, key) in [
            ("webhook", "[connectors.webhook] url"),
            ("slack", "[connectors.slack] url"),
            ("email", "[connectors.email] relay and from"),
        ] {
            let e = c.describe(kind, &Map::new()).expect_err("unconfigured");
            assert!(e.to_string().contains(key), "{e}");
        }
        assert_eq!(
            c.describe("ssh", &Map::new()),
            Err(ConnectorError::Unknown("ssh".into()))
        );
    }

    #[tokio::test]
    async fn execute_approved_refuses_a_call_that_changed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let old = Connectors::new(dir.path().join("old.txt"));
        let new = Connectors::new(dir.path().join("new.txt"));
        let p = params(json!({"entry": "192.0.2.9"}));
        let approved = old.describe("blocklist", &p).expect("describe");
        let out = new.execute_approved("blocklist", &p, "k", &approved).await;
        assert!(!out.ok);
        assert!(
            out.detail.contains("changed since it was approved"),
            "{}",
            out.detail
        );
        assert!(!dir.path().join("new.txt").exists());
        let out = old.execute_approved("blocklist", &p, "k", &approved).await;
        assert!(out.ok, "{}", out.detail);
    }
}
