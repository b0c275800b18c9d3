//! Enrichment: what threat feeds, GeoIP, ATT&CK and online providers say about an alert's
//! indicators, with provenance (who said it, when, how old it is). Owns the result model, the
//! offline sources, the online client with its cache and quotas, and the engine task that
//! enriches stored alerts after ingestion. Never writes SQL itself (store.rs does) and never
//! blocks ingestion or the UI.

pub mod attack;
pub mod export;
pub mod feeds;
pub mod geoip;
pub mod online;
pub mod providers;
pub mod quota;
pub mod secrets;
pub mod settings;
pub mod task;

use super::alert::Alert;
use super::features::EnrichmentSignals;
use super::ioc::{Ioc, IocKind};
use super::score::{Score, Scorer};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// What a source concluded about an indicator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Malicious,
    Suspicious,
    /// The source knows the indicator and has nothing against it.
    Clean,
    /// The source has never seen the indicator (a negative answer).
    Unknown,
    /// Context, not a judgement (GeoIP, domain registration).
    Info,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Malicious => "malicious",
            Verdict::Suspicious => "suspicious",
            Verdict::Clean => "clean",
            Verdict::Unknown => "unknown",
            Verdict::Info => "info",
        }
    }

    /// A negative answer is cached briefly: the indicator may be reported tomorrow.
    pub fn is_negative(self) -> bool {
        matches!(self, Verdict::Clean | Verdict::Unknown)
    }
}

/// Where a result came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Feed,
    Provider,
    Geoip,
}

impl SourceKind {
    pub fn label(self) -> &'static str {
        match self {
            SourceKind::Feed => "feed",
            SourceKind::Provider => "provider",
            SourceKind::Geoip => "geoip",
        }
    }
}

/// One source's answer about one indicator of one alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrichmentResult {
    pub indicator: String,
    pub kind: IocKind,
    /// Alert fields the indicator was found in (first one is the ECS `matched.field`).
    pub fields: Vec<String>,
    /// Feed file name or provider name.
    pub source: String,
    pub source_kind: SourceKind,
    pub verdict: Verdict,
    /// 0 (clean) to 100 (known bad), when the source gives one.
    pub score: Option<u8>,
    /// A short summary in the source's own terms (never a key, never a request URL).
    pub detail: Value,
    /// When the source answered (for feeds: when the file was read).
    pub fetched_at: DateTime<Utc>,
    /// For feeds: the date the feed file says it was published (or its modification date).
    pub feed_date: Option<String>,
}

impl EnrichmentResult {
    /// A result for `ioc` from `source`.
    pub fn new(ioc: &Ioc, source: &str, source_kind: SourceKind, verdict: Verdict) -> Self {
        EnrichmentResult {
            indicator: ioc.value.clone(),
            kind: ioc.kind,
            fields: ioc.fields.clone(),
            source: source.to_string(),
            source_kind,
            verdict,
            score: None,
            detail: Value::Null,
            fetched_at: Utc::now(),
            feed_date: None,
        }
    }

    /// How old the answer is.
    pub fn age(&self, now: DateTime<Utc>) -> chrono::Duration {
        now - self.fetched_at
    }

    /// The age as an analyst reads it: `42s`, `5m`, `3h`, `2d`.
    pub fn age_label(&self, now: DateTime<Utc>) -> String {
        let s = self.age(now).num_seconds().max(0);
        match s {
            0..=59 => format!("{s}s"),
            60..=3599 => format!("{}m", s / 60),
            3600..=86_399 => format!("{}h", s / 3600),
            _ => format!("{}d", s / 86_400),
        }
    }

    /// This result as one ECS `threat.enrichments` entry.
    /// <https://www.elastic.co/guide/en/ecs/current/ecs-threat.html#field-threat-enrichments>
    pub fn to_ecs(&self, now: DateTime<Utc>) -> Value {
        let mut indicator = serde_json::Map::new();
        indicator.insert("type".into(), json!(self.kind.ecs_type()));
        indicator.insert("provider".into(), json!(self.source));
        let v = &self.indicator;
        let mut put = |path: &str, value: Value| {
            super::alert::put_path(&mut indicator, path, value);
        };
        match self.kind {
            IocKind::Ipv4 | IocKind::Ipv6 => put("ip", json!(v)),
            IocKind::Domain | IocKind::HostName => put("url.domain", json!(v)),
            IocKind::Url => put("url.full", json!(v)),
            IocKind::Email => put("email.address", json!(v)),
            IocKind::Md5 => put("file.hash.md5", json!(v)),
            IocKind::Sha1 => put("file.hash.sha1", json!(v)),
            IocKind::Sha256 => put("file.hash.sha256", json!(v)),
            IocKind::UserName => put("user.name", json!(v)),
            IocKind::Cve => put("vulnerability.id", json!(v)),
        }
        let confidence = match (self.verdict, self.score) {
            (Verdict::Malicious, _) => "High",
            (Verdict::Suspicious, _) => "Medium",
            (Verdict::Clean | Verdict::Unknown, _) => "Low",
            (Verdict::Info, _) => "None",
        };
        put("confidence", json!(confidence));
        put(
            "description",
            json!(format!(
                "{} says {}{}",
                self.source,
                self.verdict.label(),
                self.score
                    .map(|s| format!(" (score {s})"))
                    .unwrap_or_default()
            )),
        );
        put(
            "modified_at",
            json!(self.fetched_at.to_rfc3339_opts(SecondsFormat::Secs, true)),
        );
        json!({
            "indicator": indicator,
            "matched": {
                "atomic": self.indicator,
                "field": self.fields.first(),
                "type": match self.source_kind {
                    SourceKind::Feed => "indicator_match_rule",
                    _ => "enrichment",
                },
                "occurred": self.fetched_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            },
            "vigil": {
                "source_kind": self.source_kind.label(),
                "verdict": self.verdict.label(),
                "score": self.score,
                "fetched_at": self.fetched_at.to_rfc3339_opts(SecondsFormat::Secs, true),
                "age_seconds": self.age(now).num_seconds().max(0),
                "feed_date": self.feed_date,
                "detail": self.detail,
            },
        })
    }
}

/// Reduce results to what the risk model reads.
pub fn signals(results: &[EnrichmentResult]) -> EnrichmentSignals {
    let judged: Vec<&EnrichmentResult> = results
        .iter()
        .filter(|r| r.verdict != Verdict::Info)
        .collect();
    let reputation = judged
        .iter()
        .filter_map(|r| r.score)
        .max()
        .map(f64::from)
        .or_else(|| {
            judged.iter().map(|r| r.verdict).min().map(|v| match v {
                Verdict::Malicious => 100.0,
                Verdict::Suspicious => 50.0,
                _ => 0.0,
            })
        });
    EnrichmentSignals {
        reputation,
        feed_hits: Some(
            results
                .iter()
                .filter(|r| r.source_kind == SourceKind::Feed)
                .count() as u32,
        ),
        malicious_verdicts: Some(
            results
                .iter()
                .filter(|r| {
                    r.source_kind == SourceKind::Provider && r.verdict == Verdict::Malicious
                })
                .count() as u32,
        ),
    }
}

/// Re-score an alert once enrichment has arrived. Kept in one small function on purpose: the
/// scorer is moving to a context struct that carries `signals`, and this is the one call site
/// to adapt. Today's scorer reads only the alert, so the risk changes only when a new model
/// reads the signals.
pub fn rescore(scorer: &Scorer, alert: &Alert, signals: &EnrichmentSignals) -> Option<Score> {
    // Nothing learned: the score the alert was stored with (incident figures included) stands.
    if *signals == EnrichmentSignals::default() {
        return None;
    }
    // The incident figures of the first scoring are not kept, so they are missing here.
    let ctx = super::features::FeatureContext {
        enrichment: signals.clone(),
        ..Default::default()
    };
    Some(scorer.score(alert, &ctx))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(kind: SourceKind, verdict: Verdict, score: Option<u8>) -> EnrichmentResult {
        let ioc = Ioc::new(IocKind::Ipv4, "198.51.100.7".into(), "destination.ip");
        let mut r = EnrichmentResult::new(&ioc, "x", kind, verdict);
        r.score = score;
        r
    }

    #[test]
    fn signals_take_the_worst_and_count_sources() {
        let s = signals(&[
            r(SourceKind::Feed, Verdict::Malicious, Some(90)),
            r(SourceKind::Provider, Verdict::Malicious, Some(97)),
            r(SourceKind::Provider, Verdict::Clean, Some(0)),
            r(SourceKind::Geoip, Verdict::Info, None),
        ]);
        assert_eq!(s.reputation, Some(97.0));
        assert_eq!(s.feed_hits, Some(1));
        assert_eq!(s.malicious_verdicts, Some(1));
        let none = signals(&[r(SourceKind::Geoip, Verdict::Info, None)]);
        assert_eq!(none.reputation, None, "context alone is not a reputation");
        assert_eq!(none.feed_hits, Some(0));
    }

    #[test]
    fn ecs_entry_names_indicator_field_and_provider() {
        let mut x = r(SourceKind::Feed, Verdict::Malicious, Some(90));
        x.feed_date = Some("2024-04-04".into());
        let e = x.to_ecs(x.fetched_at + chrono::Duration::seconds(90));
        assert_eq!(e["indicator"]["ip"], "198.51.100.7");
        assert_eq!(e["indicator"]["type"], "ipv4-addr");
        assert_eq!(e["indicator"]["provider"], "x");
        assert_eq!(e["matched"]["field"], "destination.ip");
        assert_eq!(e["matched"]["atomic"], "198.51.100.7");
        assert_eq!(e["vigil"]["age_seconds"], 90);
        assert_eq!(e["vigil"]["feed_date"], "2024-04-04");
    }
}
