//! ArcSight Common Event Format lines, with or without a syslog header in front of `CEF:`.
//! Owns CEF's escaping (header `\|`, extension `\=`, `\\`, `\n`) and its field names; every
//! CEF record is an alert.

use super::{content_fingerprint, parse_timestamp, reject, Parsed, Reject};
use crate::engine::alert::{Alert, Severity};
use chrono::{DateTime, Datelike, NaiveDateTime, TimeZone, Utc};
use serde_json::{Map, Value};
use std::net::IpAddr;

/// The seven header fields after `CEF:`, in order.
const HEADER: [&str; 7] = [
    "Version",
    "Device Vendor",
    "Device Product",
    "Device Version",
    "Signature ID",
    "Name",
    "Severity",
];

/// A CEF record cut into its parts, values unescaped.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CefRecord {
    /// The seven header fields in order.
    pub header: Vec<String>,
    /// Extension key=value pairs in the order written (the first of a repeated key wins on
    /// lookup).
    pub extension: Vec<(String, String)>,
    /// Time and host of a syslog header in front of `CEF:`, when there is one.
    pub syslog_time: Option<DateTime<Utc>>,
    pub syslog_host: Option<String>,
}

impl CefRecord {
    fn get(&self, keys: &[&str]) -> Option<(&str, &str)> {
        keys.iter().find_map(|k| {
            self.extension
                .iter()
                .find(|(key, v)| key == k && !v.is_empty())
                .map(|(key, v)| (key.as_str(), v.as_str()))
        })
    }

    /// The record as JSON without the syslog header: the canonical document a fingerprint is
    /// taken from, so the same event relayed through two syslog hops is one alert.
    fn document(&self) -> Value {
        let mut m = Map::new();
        for (name, v) in HEADER.iter().zip(&self.header) {
            m.insert((*name).to_string(), Value::String(v.clone()));
        }
        let mut ext = Map::new();
        for (k, v) in &self.extension {
            ext.entry(k.clone())
                .or_insert_with(|| Value::String(v.clone()));
        }
        m.insert("extension".into(), Value::Object(ext));
        Value::Object(m)
    }
}

/// Cut one line into a `CefRecord`.
///
/// # Errors
/// No `CEF:` marker, or fewer than the seven header fields.
pub(crate) fn parse(line: &str) -> Result<CefRecord, Reject> {
    let Some(at) = line.find("CEF:") else {
        return Err(reject("no `CEF:` marker: not a CEF record"));
    };
    let (syslog_time, syslog_host) = syslog_header(&line[..at]);
    let body = &line[at + 4..];
    let mut header = Vec::with_capacity(7);
    let mut cur = String::new();
    let mut rest_at = None;
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, e @ ('|' | '\\'))) => cur.push(e),
                Some((_, e)) => {
                    cur.push('\\');
                    cur.push(e);
                }
                None => cur.push('\\'),
            },
            '|' => {
                header.push(std::mem::take(&mut cur));
                if header.len() == 7 {
                    rest_at = Some(i + 1);
                    break;
                }
            }
            c => cur.push(c),
        }
    }
    let rest_at = match rest_at {
        Some(at) => at,
        // Severity closes the header without its `|` when there is no extension at all.
        None if header.len() == 6 => {
            header.push(cur);
            body.len()
        }
        None => {
            let seen = header.len() + 1;
            return Err(reject(format!(
                "CEF header has {seen} of its 7 `|`-separated fields (missing `{}`)",
                HEADER[seen.min(6)]
            )));
        }
    };
    Ok(CefRecord {
        header,
        extension: extension(&body[rest_at..]),
        syslog_time,
        syslog_host,
    })
}

fn is_key_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'[' | b']')
}

/// Split `key=value key2=value with spaces` where a value runs until the next ` key=`.
/// An `=` that is escaped, or not preceded by a bare key, belongs to the value.
fn extension(ext: &str) -> Vec<(String, String)> {
    let b = ext.as_bytes();
    // (key start, '=' position) of each real key.
    let mut keys: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'=' => {
                let mut s = i;
                while s > 0 && is_key_char(b[s - 1]) {
                    s -= 1;
                }
                let boundary = s == 0 || b[s - 1].is_ascii_whitespace();
                if s < i && boundary {
                    keys.push((s, i));
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    let mut out = Vec::with_capacity(keys.len());
    for (n, (start, eq)) in keys.iter().enumerate() {
        let end = keys.get(n + 1).map_or(b.len(), |(next, _)| *next);
        let raw = &ext[eq + 1..end];
        let raw = if n + 1 < keys.len() {
            raw.trim_end_matches([' ', '\t'])
        } else {
            raw.trim_end_matches(['\r', '\n'])
        };
        out.push((ext[*start..*eq].to_string(), unescape_value(raw)));
    }
    out
}

fn unescape_value(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(e @ ('=' | '\\' | '|')) => out.push(e),
            Some(e) => {
                out.push('\\');
                out.push(e);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// The time and host of an RFC 3164 or RFC 5424 header, when they can be read.
fn syslog_header(prefix: &str) -> (Option<DateTime<Utc>>, Option<String>) {
    let mut s = prefix.trim();
    if s.starts_with('<') {
        if let Some(end) = s.find('>') {
            s = &s[end + 1..];
        }
    }
    let tokens: Vec<&str> = s.split_whitespace().collect();
    let host_at = |i: usize| {
        tokens
            .get(i)
            .filter(|h| !h.ends_with(':') && !h.contains('['))
            .map(|h| (*h).to_string())
    };
    if tokens.is_empty() {
        return (None, None);
    }
    // RFC 5424 (`1 2024-01-01T00:00:00Z host ...`) or an ISO timestamp first.
    let first = if tokens[0].len() == 1 && tokens.len() > 1 {
        1
    } else {
        0
    };
    if let Some(t) = parse_timestamp(tokens[first]) {
        return (Some(t), host_at(first + 1));
    }
    if tokens.len() >= 4 {
        let with_year = tokens[..4].join(" ");
        if let Some(t) = month_day_time(&with_year) {
            return (Some(t), host_at(4));
        }
    }
    if tokens.len() >= 3 {
        if let Some(t) = month_day_time(&tokens[..3].join(" ")) {
            return (Some(t), host_at(3));
        }
    }
    (None, None)
}

/// `MMM dd [yyyy] HH:mm:ss[.SSS]` in UTC. Without a year (RFC 3164 style) the year is the one
/// that puts the time no more than a day in the future, as syslog daemons do.
fn month_day_time(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(n) = NaiveDateTime::parse_from_str(s, "%b %d %Y %H:%M:%S%.f") {
        return Some(Utc.from_utc_datetime(&n));
    }
    let now = Utc::now();
    let with_year = format!("{} {s}", now.year());
    let n = NaiveDateTime::parse_from_str(&with_year, "%Y %b %d %H:%M:%S%.f").ok()?;
    let t = Utc.from_utc_datetime(&n);
    if t > now + chrono::Duration::days(1) {
        let last = format!("{} {s}", now.year() - 1);
        let n = NaiveDateTime::parse_from_str(&last, "%Y %b %d %H:%M:%S%.f").ok()?;
        return Some(Utc.from_utc_datetime(&n));
    }
    Some(t)
}

/// The CEF field (header field or extension key) holding the first U+FFFD of `lossy`: names
/// the culprit when a line is not UTF-8.
pub(crate) fn field_holding_replacement(lossy: &str) -> Option<String> {
    let r = parse(lossy).ok()?;
    for (name, v) in HEADER.iter().zip(&r.header) {
        if v.contains('\u{FFFD}') {
            return Some((*name).to_string());
        }
    }
    r.extension
        .iter()
        .find(|(_, v)| v.contains('\u{FFFD}'))
        .map(|(k, _)| k.clone())
}

/// CEF's time fields: epoch milliseconds, or `MMM dd [yyyy] HH:mm:ss[.SSS] [zone]` where the
/// zone may be UTC, GMT, Z or a numeric offset (a named local zone is ambiguous and refused).
fn cef_time(key: &str, raw: &str) -> Result<DateTime<Utc>, Reject> {
    let bad = || reject(format!("extension `{key}`: unparsable time {raw:?}"));
    let s = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some(t) = parse_timestamp(&s) {
        return Ok(t);
    }
    let (body, zone) = match s.rsplit_once(' ') {
        Some((b, z)) if z.chars().any(|c| c.is_ascii_alphabetic()) || z.starts_with(['+', '-']) => {
            (b, Some(z))
        }
        _ => (s.as_str(), None),
    };
    let t = month_day_time(body).ok_or_else(bad)?;
    match zone {
        None => Ok(t),
        Some("UTC" | "GMT" | "Z") => Ok(t),
        Some(z) => match offset_seconds(z) {
            Some(secs) => Ok(t - chrono::Duration::seconds(secs)),
            None => Err(reject(format!(
                "extension `{key}`: time zone {z:?} is ambiguous; write UTC or an offset"
            ))),
        },
    }
}

/// `+hhmm` / `-hh:mm` to seconds east of UTC.
fn offset_seconds(z: &str) -> Option<i64> {
    let sign = match z.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = z[1..].chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let h: i64 = digits[..2].parse().ok()?;
    let m: i64 = digits[2..].parse().ok()?;
    Some(sign * (h * 3600 + m * 60))
}

/// CEF severity: 0-3 low, 4-6 medium, 7-8 high, 9-10 very high, or those words.
fn severity(raw: &str) -> Result<Severity, Reject> {
    let t = raw.trim();
    if let Ok(n) = t.parse::<u8>() {
        return match n {
            0..=3 => Ok(Severity::Low),
            4..=6 => Ok(Severity::Medium),
            7..=8 => Ok(Severity::High),
            9..=10 => Ok(Severity::Critical),
            _ => Err(reject(format!(
                "CEF header field `Severity`: {n} is outside 0-10"
            ))),
        };
    }
    match t.to_ascii_lowercase().as_str() {
        "unknown" | "low" => Ok(Severity::Low),
        "medium" => Ok(Severity::Medium),
        "high" => Ok(Severity::High),
        "very-high" | "very high" | "veryhigh" => Ok(Severity::Critical),
        _ => Err(reject(format!(
            "CEF header field `Severity`: expected 0-10 or Low, Medium, High, Very-High, found {t:?}"
        ))),
    }
}

/// One CEF line to an alert.
///
/// # Errors
/// Not CEF, a short header, a bad severity, time, address or port, naming the field.
pub(crate) fn normalize_cef(line: &str) -> Result<Parsed, Reject> {
    let r = parse(line)?;
    let sev = severity(&r.header[6])?;
    let ts = if let Some((k, v)) = r.get(&["rt", "deviceReceiptTime", "end", "start"]) {
        cef_time(k, v)?
    } else if let Some(t) = r.syslog_time {
        t
    } else {
        // CEF makes every time field optional; the moment vigil read the record is then the
        // only time there is (the fingerprint does not depend on it).
        Utc::now()
    };
    let ip = |keys: &[&str]| -> Result<Option<IpAddr>, Reject> {
        match r.get(keys) {
            None => Ok(None),
            Some((k, v)) => v.trim().parse::<IpAddr>().map(Some).map_err(|_| {
                reject(format!(
                    "extension `{k}`: expected an IP address, found {v:?}"
                ))
            }),
        }
    };
    let port = |keys: &[&str]| -> Result<Option<u16>, Reject> {
        match r.get(keys) {
            None => Ok(None),
            Some((k, v)) => v.trim().parse::<u16>().map(Some).map_err(|_| {
                reject(format!(
                    "extension `{k}`: expected a port 0-65535, found {v:?}"
                ))
            }),
        }
    };
    let text = |keys: &[&str]| r.get(keys).map(|(_, v)| v.to_string());
    let non_empty = |s: &String| (!s.trim().is_empty()).then(|| s.clone());
    let alert = Alert {
        timestamp: ts,
        module: "cef".into(),
        severity: sev,
        severity_original: Some(r.header[6].trim().to_string()),
        rule_id: non_empty(&r.header[4]),
        rule_name: non_empty(&r.header[5]),
        rule_category: text(&["cat", "deviceEventCategory"]),
        source_ip: ip(&["src", "sourceAddress", "c6a2"])?,
        source_port: port(&["spt", "sourcePort"])?,
        destination_ip: ip(&["dst", "destinationAddress", "c6a3"])?,
        destination_port: port(&["dpt", "destinationPort"])?,
        transport: text(&["proto", "transportProtocol"]).map(|p| p.to_ascii_lowercase()),
        // The affected host: the destination, else the reporting device, else the syslog
        // sender.
        host_name: text(&["dhost", "destinationHostName", "dvchost", "deviceHostName"])
            .or_else(|| r.syslog_host.clone()),
        user_name: text(&["duser", "destinationUserName", "suser", "sourceUserName"]),
        technique_ids: Vec::new(),
        tactics: Vec::new(),
        message: text(&["msg", "message"]).or_else(|| non_empty(&r.header[5])),
        original: line.to_string(),
    };
    let fp = content_fingerprint(&r.document());
    Ok(Parsed::Alert(Box::new(alert), fp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_values_keep_spaces_and_escapes() {
        let r =
            parse(r"CEF:0|V|P|1|42|a \| b|5|msg=one two\=three act=blocked path=C:\\dir cs1=x\ny")
                .expect("parses");
        assert_eq!(r.header[5], "a | b");
        assert_eq!(
            r.extension,
            vec![
                ("msg".to_string(), "one two=three".to_string()),
                ("act".to_string(), "blocked".to_string()),
                ("path".to_string(), r"C:\dir".to_string()),
                ("cs1".to_string(), "x\ny".to_string()),
            ]
        );
    }

    #[test]
    fn an_unescaped_equals_inside_a_value_stays_in_the_value() {
        let r = parse("CEF:0|V|P|1|42|n|5|request=http://x/?a=1&b=2 src=10.0.0.1").expect("parses");
        assert_eq!(r.extension[0].1, "http://x/?a=1&b=2");
        assert_eq!(r.extension[1], ("src".into(), "10.0.0.1".into()));
    }

    #[test]
    fn short_header_names_the_missing_field() {
        let e = parse("CEF:0|V|P|1").expect_err("short");
        assert_eq!(
            e.0,
            "CEF header has 4 of its 7 `|`-separated fields (missing `Signature ID`)"
        );
    }

    #[test]
    fn a_header_without_extension_needs_no_closing_pipe() {
        let r = parse("CEF:0|V|P|1|42|n|Low").expect("parses");
        assert_eq!(r.header[6], "Low");
        assert!(r.extension.is_empty());
    }

    #[test]
    fn times_in_the_forms_cef_allows() {
        let want = Utc.with_ymd_and_hms(2018, 10, 10, 12, 34, 56).single();
        assert_eq!(cef_time("rt", "1539174896000").ok(), want);
        assert_eq!(cef_time("rt", "Oct 10 2018 12:34:56").ok(), want);
        assert_eq!(cef_time("rt", "Oct 10 2018 12:34:56 UTC").ok(), want);
        assert_eq!(cef_time("rt", "Oct 10 2018 14:34:56 +0200").ok(), want);
        assert!(cef_time("rt", "Oct 10 2018 12:34:56 PST")
            .expect_err("ambiguous")
            .0
            .contains("ambiguous"));
    }
}
