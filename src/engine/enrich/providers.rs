//! The online providers: how each one is asked about an indicator (URL built from the
//! configured base with the indicator only in percent-encoded path segments or query pairs)
//! and how each documented answer becomes a verdict. Owns request shapes and response parsing;
//! quotas, caching and retries belong to `online`.

use super::secrets::Secret;
use super::Verdict;
use crate::engine::ioc::{Ioc, IocKind};
use base64::Engine as _;
use serde_json::{json, Value};
use std::time::Duration;

/// The providers vigil knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProviderId {
    AbuseIpDb,
    VirusTotal,
    Otx,
    UrlHaus,
    Rdap,
}

impl ProviderId {
    pub const ALL: &'static [ProviderId] = &[
        ProviderId::AbuseIpDb,
        ProviderId::VirusTotal,
        ProviderId::Otx,
        ProviderId::UrlHaus,
        ProviderId::Rdap,
    ];

    /// The name used in config, secrets, the cache and the status bar.
    pub fn name(self) -> &'static str {
        match self {
            ProviderId::AbuseIpDb => "abuseipdb",
            ProviderId::VirusTotal => "virustotal",
            ProviderId::Otx => "otx",
            ProviderId::UrlHaus => "urlhaus",
            ProviderId::Rdap => "rdap",
        }
    }

    /// A short label for the status bar.
    pub fn short(self) -> &'static str {
        match self {
            ProviderId::AbuseIpDb => "abuse",
            ProviderId::VirusTotal => "vt",
            ProviderId::Otx => "otx",
            ProviderId::UrlHaus => "uh",
            ProviderId::Rdap => "rdap",
        }
    }

    pub fn parse(name: &str) -> Option<ProviderId> {
        ProviderId::ALL.iter().copied().find(|p| p.name() == name)
    }

    /// Whether the provider needs an API key at all (RDAP does not).
    pub fn needs_key(self) -> bool {
        !matches!(self, ProviderId::Rdap)
    }

    /// Which indicator kinds the provider answers for.
    pub fn supports(self, kind: IocKind) -> bool {
        use IocKind::*;
        match self {
            ProviderId::AbuseIpDb => matches!(kind, Ipv4 | Ipv6),
            ProviderId::VirusTotal | ProviderId::Otx => {
                matches!(kind, Ipv4 | Ipv6 | Domain | Url | Md5 | Sha1 | Sha256)
            }
            ProviderId::UrlHaus => matches!(kind, Ipv4 | Ipv6 | Domain | Url),
            ProviderId::Rdap => matches!(kind, Domain),
        }
    }
}

/// Why a lookup has no verdict. None of these is ever cached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("rate limited (429); retry after {0:?}")]
    RateLimited(Option<Duration>),
    #[error("API key refused ({0})")]
    Unauthorized(u16),
    #[error("server error ({0})")]
    Server(u16),
    #[error("unexpected HTTP status {0}")]
    Status(u16),
    #[error("timed out")]
    Timeout,
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("malformed response: {0}")]
    Malformed(String),
    #[error("no API key (set {0} or add it to the secrets file)")]
    NoKey(String),
    #[error("cannot build the request: {0}")]
    Request(String),
}

impl FetchError {
    /// Whether trying again later could succeed with the same request.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            FetchError::RateLimited(_)
                | FetchError::Server(_)
                | FetchError::Timeout
                | FetchError::Connect(_)
        )
    }
}

/// A provider's verdict on one indicator.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub verdict: Verdict,
    pub score: Option<u8>,
    pub detail: Value,
}

/// Largest response body read: the documented answers are a few kilobytes.
pub const MAX_BODY: usize = 2 * 1024 * 1024;

/// The URL for a lookup: the configured base plus percent-encoded path segments, and query
/// pairs through the encoder. Never string concatenation of alert data.
fn endpoint(
    base: &url::Url,
    segments: &[&str],
    query: &[(&str, &str)],
) -> Result<url::Url, FetchError> {
    let mut u = base.clone();
    {
        let mut path = u
            .path_segments_mut()
            .map_err(|()| FetchError::Request(format!("base URL {base} cannot take a path")))?;
        path.pop_if_empty();
        path.extend(segments);
    }
    if !query.is_empty() {
        u.query_pairs_mut().extend_pairs(query);
    }
    Ok(u)
}

/// The request for `ioc`, ready to send. The key goes in a header marked sensitive so it is
/// never printed by a `Debug` of the request.
///
/// # Errors
/// A missing key or an unusable base URL.
pub fn request(
    provider: ProviderId,
    http: &reqwest::Client,
    base: &url::Url,
    key: Option<&Secret>,
    ioc: &Ioc,
) -> Result<reqwest::RequestBuilder, FetchError> {
    let key = match (provider.needs_key(), key) {
        (true, None) => return Err(FetchError::NoKey(super::secrets::env_var(provider.name()))),
        (_, k) => k,
    };
    let header = |name: &'static str,
                  rb: reqwest::RequestBuilder|
     -> Result<reqwest::RequestBuilder, FetchError> {
        match key {
            Some(k) => {
                let mut v = reqwest::header::HeaderValue::from_str(k.expose()).map_err(|_| {
                    FetchError::Request("the API key is not a valid header value".into())
                })?;
                v.set_sensitive(true);
                Ok(rb.header(name, v))
            }
            None => Ok(rb),
        }
    };
    let v = ioc.value.as_str();
    let rb = match provider {
        ProviderId::AbuseIpDb => header(
            "Key",
            http.get(endpoint(
                base,
                &["api", "v2", "check"],
                &[("ipAddress", v), ("maxAgeInDays", "90")],
            )?),
        )?,
        ProviderId::VirusTotal => {
            let url_id;
            let (collection, id) = match ioc.kind {
                IocKind::Ipv4 | IocKind::Ipv6 => ("ip_addresses", v),
                IocKind::Domain => ("domains", v),
                IocKind::Url => {
                    // VirusTotal's URL identifier: unpadded URL-safe base64 of the URL.
                    url_id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
                    ("urls", url_id.as_str())
                }
                _ => ("files", v),
            };
            header(
                "x-apikey",
                http.get(endpoint(base, &["api", "v3", collection, id], &[])?),
            )?
        }
        ProviderId::Otx => {
            let section = match ioc.kind {
                IocKind::Ipv4 => "IPv4",
                IocKind::Ipv6 => "IPv6",
                IocKind::Domain => "domain",
                IocKind::Url => "url",
                _ => "file",
            };
            header(
                "X-OTX-API-KEY",
                http.get(endpoint(
                    base,
                    &["api", "v1", "indicators", section, v, "general"],
                    &[],
                )?),
            )?
        }
        ProviderId::UrlHaus => {
            // URLhaus takes POST forms; the indicator is form-encoded in the body.
            let (path, field) = match ioc.kind {
                IocKind::Url => ("url", "url"),
                _ => ("host", "host"),
            };
            let u = endpoint(base, &["v1", path, ""], &[])?;
            header("Auth-Key", http.post(u).form(&[(field, v)]))?
        }
        ProviderId::Rdap => http.get(endpoint(base, &["domain", v], &[])?),
    };
    Ok(rb.header(reqwest::header::ACCEPT, "application/json"))
}

/// Seconds or an HTTP date, as `Retry-After` allows.
pub fn retry_after(
    h: Option<&reqwest::header::HeaderValue>,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Duration> {
    let s = h?.to_str().ok()?.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(s).ok()?;
    Some(
        (when.with_timezone(&chrono::Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// Turn an HTTP answer into a verdict, or say why there is none.
///
/// # Errors
/// Rate limiting, refused keys, server errors and bodies that are not the documented shape.
pub fn parse(
    provider: ProviderId,
    kind: IocKind,
    status: u16,
    body: &[u8],
) -> Result<Answer, FetchError> {
    match status {
        429 => return Err(FetchError::RateLimited(None)),
        401 | 403 => return Err(FetchError::Unauthorized(status)),
        500..=599 => return Err(FetchError::Server(status)),
        // Not found is an answer: the provider has never seen this indicator.
        404 if matches!(
            provider,
            ProviderId::VirusTotal | ProviderId::Otx | ProviderId::Rdap
        ) =>
        {
            return Ok(Answer {
                verdict: Verdict::Unknown,
                score: None,
                detail: json!({"not_found": true}),
            })
        }
        200..=299 => {}
        other => return Err(FetchError::Status(other)),
    }
    let v: Value =
        serde_json::from_slice(body).map_err(|e| FetchError::Malformed(e.to_string()))?;
    let missing = |what: &str| FetchError::Malformed(format!("no `{what}` in the answer"));
    match provider {
        ProviderId::AbuseIpDb => {
            let d = v.get("data").ok_or_else(|| missing("data"))?;
            let score = d
                .get("abuseConfidenceScore")
                .and_then(Value::as_u64)
                .ok_or_else(|| missing("data.abuseConfidenceScore"))?
                .min(100) as u8;
            let reports = d.get("totalReports").and_then(Value::as_u64).unwrap_or(0);
            let verdict = match score {
                75.. => Verdict::Malicious,
                25.. => Verdict::Suspicious,
                _ if reports == 0 => Verdict::Unknown,
                _ => Verdict::Clean,
            };
            Ok(Answer {
                verdict,
                score: Some(score),
                detail: json!({
                    "total_reports": reports, "distinct_users": d.get("numDistinctUsers"),
                    "last_reported_at": d.get("lastReportedAt"), "country": d.get("countryCode"),
                    "isp": d.get("isp"), "usage_type": d.get("usageType"), "is_tor": d.get("isTor"),
                    "whitelisted": d.get("isWhitelisted"),
                }),
            })
        }
        ProviderId::VirusTotal => {
            let a = v
                .get("data")
                .and_then(|d| d.get("attributes"))
                .ok_or_else(|| missing("data.attributes"))?;
            let stats = a
                .get("last_analysis_stats")
                .ok_or_else(|| missing("data.attributes.last_analysis_stats"))?;
            let n = |k: &str| stats.get(k).and_then(Value::as_u64).unwrap_or(0);
            let (m, s) = (n("malicious"), n("suspicious"));
            let total = m + s + n("harmless") + n("undetected");
            let verdict = if m >= 3 {
                Verdict::Malicious
            } else if m >= 1 || s >= 2 {
                Verdict::Suspicious
            } else if total == 0 {
                Verdict::Unknown
            } else {
                Verdict::Clean
            };
            let score = if total == 0 {
                None
            } else {
                Some(
                    (((m as f64 + s as f64 / 2.0) / total as f64) * 100.0)
                        .round()
                        .min(100.0) as u8,
                )
            };
            Ok(Answer {
                verdict,
                score,
                detail: json!({"malicious": m, "suspicious": s, "engines": total,
                               "reputation": a.get("reputation"), "last_analysis_date": a.get("last_analysis_date")}),
            })
        }
        ProviderId::Otx => {
            let count = v
                .get("pulse_info")
                .and_then(|p| p.get("count"))
                .and_then(Value::as_u64)
                .ok_or_else(|| missing("pulse_info.count"))?;
            let verdict = match count {
                0 => Verdict::Unknown,
                1..=4 => Verdict::Suspicious,
                _ => Verdict::Malicious,
            };
            let names: Vec<&str> = v["pulse_info"]["pulses"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|p| p.get("name").and_then(Value::as_str))
                        .take(5)
                        .collect()
                })
                .unwrap_or_default();
            Ok(Answer {
                verdict,
                score: Some((count * 10).min(100) as u8),
                detail: json!({"pulses": count, "pulse_names": names, "reputation": v.get("reputation")}),
            })
        }
        ProviderId::UrlHaus => {
            let q = v
                .get("query_status")
                .and_then(Value::as_str)
                .ok_or_else(|| missing("query_status"))?;
            match q {
                "ok" => {
                    let online = match kind {
                        IocKind::Url => {
                            v.get("url_status").and_then(Value::as_str) == Some("online")
                        }
                        _ => v["urls"].as_array().is_some_and(|u| {
                            u.iter().any(|x| {
                                x.get("url_status").and_then(Value::as_str) == Some("online")
                            })
                        }),
                    };
                    Ok(Answer {
                        verdict: Verdict::Malicious,
                        score: Some(if online { 100 } else { 80 }),
                        detail: json!({"url_count": v.get("url_count"), "threat": v.get("threat"),
                                       "url_status": v.get("url_status"), "online": online,
                                       "reference": v.get("urlhaus_reference")}),
                    })
                }
                "no_results" => Ok(Answer {
                    verdict: Verdict::Unknown,
                    score: None,
                    detail: json!({"query_status": q}),
                }),
                other => Err(FetchError::Malformed(format!("query_status `{other}`"))),
            }
        }
        ProviderId::Rdap => {
            let registered = v["events"].as_array().and_then(|evs| {
                evs.iter()
                    .find(|e| e.get("eventAction").and_then(Value::as_str) == Some("registration"))
                    .and_then(|e| e.get("eventDate").and_then(Value::as_str))
            });
            let registrar = v["entities"].as_array().and_then(|ents| {
                ents.iter()
                    .find(|e| {
                        e["roles"]
                            .as_array()
                            .is_some_and(|r| r.iter().any(|x| x == "registrar"))
                    })
                    .and_then(|e| {
                        e["vcardArray"][1].as_array().and_then(|props| {
                            props
                                .iter()
                                .find(|p| p[0] == "fn")
                                .and_then(|p| p[3].as_str())
                        })
                    })
            });
            if v.get("objectClassName").and_then(Value::as_str) != Some("domain")
                && registered.is_none()
            {
                return Err(missing("objectClassName or events"));
            }
            let age_days = registered
                .and_then(|d| chrono::DateTime::parse_from_rfc3339(d).ok())
                .map(|d| (chrono::Utc::now() - d.with_timezone(&chrono::Utc)).num_days());
            // A domain registered in the last month is a classic phishing/C2 tell.
            let (verdict, score) = match age_days {
                Some(d) if d < 30 => (Verdict::Suspicious, Some(50)),
                _ => (Verdict::Info, None),
            };
            Ok(Answer {
                verdict,
                score,
                detail: json!({"registered": registered, "age_days": age_days, "registrar": registrar}),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ioc(kind: IocKind, v: &str) -> Ioc {
        Ioc::new(kind, v.to_string(), "f")
    }

    #[test]
    fn alert_data_only_in_encoded_path_and_query() {
        let http = reqwest::Client::new();
        let base = url::Url::parse("http://127.0.0.1:9/prefix/").expect("url");
        let key = Secret::new("k");
        let hostile = ioc(IocKind::Url, "http://a.example.com/x?y=1&z=../../admin#f");
        for p in [ProviderId::VirusTotal, ProviderId::Otx] {
            let r = request(p, &http, &base, Some(&key), &hostile)
                .expect("builds")
                .build()
                .expect("request");
            let u = r.url().as_str();
            assert!(u.starts_with("http://127.0.0.1:9/prefix/api/"), "{u}");
            assert!(!u.contains("../"), "{u}");
            assert!(r.url().fragment().is_none() && !u.contains('#'), "{u}");
        }
        let r = request(
            ProviderId::AbuseIpDb,
            &http,
            &base,
            Some(&key),
            &ioc(IocKind::Ipv4, "1.2.3.4&x=1"),
        )
        .expect("builds")
        .build()
        .expect("request");
        assert_eq!(
            r.url().query(),
            Some("ipAddress=1.2.3.4%26x%3D1&maxAgeInDays=90")
        );
        assert!(
            format!("{:?}", r.headers()).contains("Sensitive"),
            "the key header is sensitive"
        );
        let r = request(
            ProviderId::Rdap,
            &http,
            &base,
            None,
            &ioc(IocKind::Domain, "a/b.example.com"),
        )
        .expect("builds")
        .build()
        .expect("request");
        assert_eq!(r.url().path(), "/prefix/domain/a%2Fb.example.com");
        assert!(matches!(
            request(ProviderId::VirusTotal, &http, &base, None, &hostile),
            Err(FetchError::NoKey(_))
        ));
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = chrono::DateTime::parse_from_rfc3339("2024-04-04T07:00:00Z")
            .expect("t")
            .with_timezone(&chrono::Utc);
        let h = |s: &str| reqwest::header::HeaderValue::from_str(s).expect("hv");
        assert_eq!(
            retry_after(Some(&h("30")), now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after(Some(&h("Thu, 04 Apr 2024 07:02:00 GMT")), now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(retry_after(Some(&h("soon")), now), None);
        assert_eq!(retry_after(None, now), None);
    }
}
