//! Where approved actions take effect: a blocklist file (an EDL firewalls consume) and a JSON
//! webhook. Owns describing a call to the approver and executing it; never decides whether it
//! may run (the approval flow does) and never passes alert text through a shell.

use serde_json::{json, Map, Value};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Connector settings from the config.
#[derive(Debug, Clone)]
pub struct Connectors {
    pub blocklist_path: PathBuf,
    pub webhook_url: Option<String>,
    pub webhook_timeout: Duration,
}

/// Why a call cannot be described or made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectorError {
    #[error("unknown connector `{0}`")]
    Unknown(String),
    #[error("param `{0}` is required")]
    MissingParam(&'static str),
    #[error("param `{param}`: {why}")]
    BadParam { param: &'static str, why: String },
    #[error("webhook connector has no url configured ([connectors.webhook] url)")]
    NoWebhook,
}

/// What happened when an action ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub ok: bool,
    pub detail: String,
}

/// A blocklist entry: an IP, a CIDR or a host name, validated so nothing else (no spaces, no
/// newlines, no comments) can enter a file firewalls parse.
fn blocklist_entry(params: &Map<String, Value>) -> Result<String, ConnectorError> {
    let v = params
        .get("entry")
        .ok_or(ConnectorError::MissingParam("entry"))?;
    let Value::String(s) = v else {
        return Err(ConnectorError::BadParam {
            param: "entry",
            why: "must be a string".into(),
        });
    };
    let bad = |why: &str| ConnectorError::BadParam {
        param: "entry",
        why: format!("{why}: {:?}", crate::sanitize::sanitize(s)),
    };
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(ip.to_string());
    }
    if let Some((ip, len)) = s.split_once('/') {
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| bad("not an IP, CIDR or host name"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let len: u8 = len
            .parse()
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| bad("prefix length out of range"))?;
        return Ok(format!("{ip}/{len}"));
    }
    let host_ok = !s.is_empty()
        && s.len() <= 253
        && !s.starts_with(['-', '.'])
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if host_ok {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(bad("not an IP, CIDR or host name"))
    }
}

impl Connectors {
    pub const KINDS: &'static [&'static str] = &["blocklist", "webhook"];

    pub fn knows(&self, kind: &str) -> bool {
        Self::KINDS.contains(&kind)
    }

    /// The exact call, in words, as the approver will see it. Also validates the params, so a
    /// proposal that could never run is never shown.
    ///
    /// # Errors
    /// Unknown connector, missing or invalid params, unconfigured webhook.
    pub fn describe(
        &self,
        kind: &str,
        params: &Map<String, Value>,
    ) -> Result<String, ConnectorError> {
        match kind {
            "blocklist" => Ok(format!(
                "add {} to blocklist {}",
                blocklist_entry(params)?,
                self.blocklist_path.display()
            )),
            "webhook" => {
                let url = self.webhook_url.as_ref().ok_or(ConnectorError::NoWebhook)?;
                Ok(format!(
                    "POST {url} {}",
                    serde_json::to_string(params).unwrap_or_default()
                ))
            }
            other => Err(ConnectorError::Unknown(other.to_string())),
        }
    }

    /// Run one approved call. Never panics; every failure is an `Outcome` with `ok: false`.
    pub async fn execute(
        &self,
        kind: &str,
        params: &Map<String, Value>,
        idempotency_key: &str,
    ) -> Outcome {
        let result = match kind {
            "blocklist" => match blocklist_entry(params) {
                Ok(entry) => {
                    let path = self.blocklist_path.clone();
                    tokio::task::spawn_blocking(move || add_to_blocklist(&path, &entry))
                        .await
                        .unwrap_or_else(|e| Err(format!("blocklist task failed: {e}")))
                }
                Err(e) => Err(e.to_string()),
            },
            "webhook" => self.post_webhook(params, idempotency_key).await,
            other => Err(ConnectorError::Unknown(other.to_string()).to_string()),
        };
        match result {
            Ok(detail) => Outcome { ok: true, detail },
            Err(detail) => Outcome { ok: false, detail },
        }
    }

    async fn post_webhook(&self, params: &Map<String, Value>, key: &str) -> Result<String, String> {
        let url = self
            .webhook_url
            .as_ref()
            .ok_or(ConnectorError::NoWebhook.to_string())?;
        let client = reqwest::Client::builder()
            .timeout(self.webhook_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("http client: {e}"))?;
        let body = json!({"source": "vigil", "idempotency_key": key, "params": params});
        let resp = client
            .post(url)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("POST {url}: {e}"))?;
        let status = resp.status();
        if status.is_success() {
            Ok(format!("POST {url}: HTTP {}", status.as_u16()))
        } else {
            Err(format!("POST {url}: HTTP {}", status.as_u16()))
        }
    }
}

/// Add `entry` to the list at `path` by writing a new file beside it and renaming it over the
/// old one, so a firewall polling the list never reads half a file.
fn add_to_blocklist(path: &Path, entry: &str) -> Result<String, String> {
    let existing = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("{}: cannot read: {e}", path.display())),
    };
    if existing.lines().any(|l| l.trim() == entry) {
        return Ok(format!("{entry} already in {}", path.display()));
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut tmp =
        tempfile::NamedTempFile::new_in(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut text = existing;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(entry);
    text.push('\n');
    tmp.write_all(text.as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| format!("{}: {}", path.display(), e.error))?;
    let n = text.lines().filter(|l| !l.trim().is_empty()).count();
    Ok(format!("added {entry} to {} ({n} entries)", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(entry: &str) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("entry".into(), json!(entry));
        m
    }

    #[test]
    fn entries_are_validated_and_canonical() {
        assert_eq!(blocklist_entry(&p("10.0.0.1")), Ok("10.0.0.1".into()));
        assert_eq!(
            blocklist_entry(&p("2001:0db8:0000::1")),
            Ok("2001:db8::1".into())
        );
        assert_eq!(blocklist_entry(&p("10.0.0.0/8")), Ok("10.0.0.0/8".into()));
        assert_eq!(
            blocklist_entry(&p("Evil.Example.com")),
            Ok("evil.example.com".into())
        );
        for bad in [
            "1.2.3.4\n5.6.7.8",
            "a b",
            "$(reboot)",
            "-rf",
            "10.0.0.0/33",
            "",
            "x;y",
            "../etc/passwd",
        ] {
            assert!(blocklist_entry(&p(bad)).is_err(), "{bad:?} accepted");
        }
    }

    #[tokio::test]
    async fn blocklist_appends_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = Connectors {
            blocklist_path: dir.path().join("bl.txt"),
            webhook_url: None,
            webhook_timeout: Duration::from_secs(1),
        };
        let first = c.execute("blocklist", &p("192.0.2.7"), "k1").await;
        assert!(first.ok, "{}", first.detail);
        let again = c.execute("blocklist", &p("192.0.2.7"), "k2").await;
        assert!(again.ok);
        assert!(again.detail.contains("already"));
        let text = std::fs::read_to_string(dir.path().join("bl.txt")).expect("list");
        assert_eq!(text, "192.0.2.7\n");
    }
}
