//! Every alert format, from fixtures cut from ../shared/data (tests/fixtures/formats): each
//! record read through `FileFormat` exactly as `vigil ingest` and the tailer do, and checked
//! field by field against its source document; then the same files, plain and gzipped,
//! through the real `vigil ingest`, where a second read adds nothing.

mod common;
#[path = "common/db.rs"]
mod db;
use common::vigil;
use serde_json::{json, Value};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use vigil::config::Config;
use vigil::engine::alert::{sha256_hex, Alert, Severity};
use vigil::engine::format::{FileFormat, Format, FormatSettings, IngestConfig};
use vigil::engine::normalize::Parsed;

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(path(name)).expect("read fixture")
}

fn text_lines(name: &str) -> Vec<String> {
    String::from_utf8(read(name))
        .expect("utf-8 fixture")
        .lines()
        .map(str::to_string)
        .collect()
}

fn builtin() -> IngestConfig {
    Config::embedded().expect("embedded config").ingest
}

fn settings(c: &IngestConfig) -> Arc<FormatSettings> {
    Arc::new(c.compile().expect("settings compile"))
}

/// Every record of a file the way ingest reads it: `(line, outcome)`; rejects fail the test.
fn records(bytes: &[u8], f: &FileFormat) -> Vec<(u64, Option<(Alert, String)>)> {
    f.parse_records(bytes)
        .into_iter()
        .map(|r| match r.parsed {
            Ok(Parsed::Alert(a, fp)) => (r.line_no, Some((*a, fp))),
            Ok(Parsed::Skipped) => (r.line_no, None),
            Err(e) => panic!("line {} refused: {e}", r.line_no),
        })
        .collect()
}

fn alerts_with(
    name: &str,
    forced: Format,
    s: &Arc<FormatSettings>,
) -> (Format, Vec<(Alert, String)>) {
    let bytes = read(name);
    let f = FileFormat::detect_with(&bytes, forced, s);
    let out = records(&bytes, &f)
        .into_iter()
        .filter_map(|(_, a)| a)
        .collect();
    (f.format, out)
}

fn alerts(name: &str) -> (Format, Vec<(Alert, String)>) {
    alerts_with(name, Format::Auto, &FormatSettings::builtin())
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().expect("ip literal"))
}

fn ts(s: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(s)
        .expect("rfc3339 literal")
        .with_timezone(&chrono::Utc)
}

fn s(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

fn port(v: &Value) -> Option<u16> {
    match v {
        Value::Number(n) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
        Value::String(t) => t.parse().ok(),
        _ => None,
    }
}

fn fingerprints_distinct(all: &[(Alert, String)]) {
    let mut fps: Vec<&String> = all.iter().map(|(_, f)| f).collect();
    fps.sort();
    fps.dedup();
    assert_eq!(fps.len(), all.len(), "every record has its own fingerprint");
}

// ---------------------------------------------------------------- Suricata and Wazuh

#[test]
fn suricata_lines_and_the_same_alerts_as_a_pretty_array_are_the_same_alerts() {
    let (fmt, lines) = alerts("suricata-alert.json");
    assert_eq!(fmt, Format::JsonLines);
    let (fmt, array) = alerts("formats/suricata-array.json");
    assert_eq!(fmt, Format::JsonDocument);
    assert_eq!(lines.len(), 3);
    for ((a, fp), src) in lines.iter().zip(text_lines("suricata-alert.json")) {
        let d: Value = serde_json::from_str(&src).expect("json");
        assert_eq!(
            a.timestamp,
            vigil::engine::normalize::parse_timestamp(d["timestamp"].as_str().expect("ts"))
                .expect("ts")
        );
        assert_eq!(a.module, "suricata");
        assert_eq!(
            a.severity_original,
            Some(d["alert"]["severity"].to_string())
        );
        assert_eq!(a.rule_id, Some(d["alert"]["signature_id"].to_string()));
        assert_eq!(a.rule_name, s(&d["alert"]["signature"]));
        assert_eq!(a.rule_category, s(&d["alert"]["category"]));
        assert_eq!(
            a.source_ip,
            d["src_ip"].as_str().and_then(|x| x.parse().ok())
        );
        assert_eq!(a.source_port, port(&d["src_port"]));
        assert_eq!(
            a.destination_ip,
            d["dest_ip"].as_str().and_then(|x| x.parse().ok())
        );
        assert_eq!(a.destination_port, port(&d["dest_port"]));
        assert_eq!(a.transport, s(&d["proto"]).map(|p| p.to_lowercase()));
        assert_eq!(a.message, s(&d["alert"]["signature"]));
        assert_eq!(a.original, src);
        assert_eq!(fp.len(), 64);
    }
    assert_eq!(lines[0].0.severity, Severity::High);
    assert_eq!(lines[2].0.severity, Severity::Low);
    // Pretty-printing changes the text, not the alert or its identity.
    for ((a, fa), (b, fb)) in lines.iter().zip(&array) {
        assert_eq!(fa, fb);
        let (mut a, mut b) = (a.clone(), b.clone());
        assert!(
            b.original.contains('\n'),
            "the array element is kept as written"
        );
        a.original.clear();
        b.original.clear();
        assert_eq!(a, b);
    }
    // Each record knows the line it starts on.
    let bytes = read("formats/suricata-array.json");
    let f = FileFormat::detect(&bytes, Format::Auto);
    let lines_at: Vec<u64> = records(&bytes, &f).iter().map(|(l, _)| *l).collect();
    assert_eq!(lines_at[0], 2);
    assert!(lines_at[1] > lines_at[0] && lines_at[2] > lines_at[1]);
}

#[test]
fn wazuh_fields_match_the_source() {
    let (_, all) = alerts("wazuh-alert.json");
    for ((a, _), src) in all.iter().zip(text_lines("wazuh-alert.json")) {
        let d: Value = serde_json::from_str(&src).expect("json");
        assert_eq!(a.module, "wazuh");
        assert_eq!(a.severity_original, Some(d["rule"]["level"].to_string()));
        assert_eq!(a.rule_id, s(&d["rule"]["id"]));
        assert_eq!(a.rule_name, s(&d["rule"]["description"]));
        assert_eq!(a.host_name, s(&d["agent"]["name"]));
        assert_eq!(
            a.source_ip,
            d["data"]["srcip"].as_str().and_then(|x| x.parse().ok())
        );
        assert_eq!(a.source_port, port(&d["data"]["srcport"]));
        assert_eq!(a.message, s(&d["full_log"]));
        let ids: Vec<String> = d["rule"]["mitre"]["id"]
            .as_array()
            .map(|v| v.iter().filter_map(s).collect())
            .unwrap_or_default();
        assert_eq!(a.technique_ids, ids);
        assert_eq!(a.original, src);
    }
}

// ---------------------------------------------------------------- Zeek

#[test]
fn zeek_notice_json_fields_match_the_source() {
    let (fmt, all) = alerts("formats/zeek-notice.json");
    assert_eq!(fmt, Format::JsonLines);
    assert_eq!(all.len(), 3);
    for ((a, fp), src) in all.iter().zip(text_lines("formats/zeek-notice.json")) {
        let d: Value = serde_json::from_str(&src).expect("json");
        assert_eq!(a.timestamp, ts(d["ts"].as_str().expect("ts")));
        assert_eq!(a.module, "zeek");
        assert_eq!(a.rule_id, s(&d["note"]));
        assert_eq!(a.rule_name, s(&d["note"]));
        assert_eq!(a.rule_category.as_deref(), Some("SSL"));
        assert_eq!(a.severity, Severity::Low, "an invalid certificate is low");
        assert_eq!(a.severity_original, None, "Zeek has no severity of its own");
        assert_eq!(a.source_ip, ip(d["id.orig_h"].as_str().expect("orig")));
        assert_eq!(a.source_port, port(&d["id.orig_p"]));
        assert_eq!(a.destination_ip, ip(d["id.resp_h"].as_str().expect("resp")));
        assert_eq!(a.destination_port, port(&d["id.resp_p"]));
        assert_eq!(a.transport.as_deref(), Some("tcp"));
        assert_eq!(a.message, s(&d["msg"]));
        assert_eq!((a.host_name.as_ref(), a.user_name.as_ref()), (None, None));
        assert!(a.technique_ids.is_empty());
        let micros = a.timestamp.timestamp_micros();
        let want = sha256_hex(
            format!(
                "zeek\0{}\0{}\0{micros}",
                d["uid"].as_str().expect("uid"),
                d["note"].as_str().expect("note")
            )
            .as_bytes(),
        );
        assert_eq!(fp, &want, "uid + note + ts");
        assert_eq!(a.original, src);
    }
    assert_eq!(all[0].0.timestamp, ts("2018-03-24T17:15:20.629574Z"));
    assert_eq!(all[2].0.destination_ip, ip("216.58.193.195"));
    fingerprints_distinct(&all);
}

#[test]
fn zeek_notice_tsv_gives_the_same_alerts_as_the_json_writer() {
    let (fmt, tsv) = alerts("formats/zeek-notice.log");
    assert_eq!(fmt, Format::ZeekTsv);
    let (_, json) = alerts("formats/zeek-notice.json");
    assert_eq!(tsv.len(), 3);
    for ((t, tf), (j, jf)) in tsv.iter().zip(&json) {
        assert_eq!(tf, jf, "one notice, one fingerprint, whichever writer");
        assert!(t.original.contains('\t'));
        let (mut t, mut j) = (t.clone(), j.clone());
        t.original.clear();
        j.original.clear();
        assert_eq!(t, j);
    }
    // Header lines are skips; a non-notice log is all skips.
    let bytes = read("formats/zeek-weird.log");
    let f = FileFormat::detect(&bytes, Format::Auto);
    assert_eq!(f.format, Format::ZeekTsv);
    assert!(records(&bytes, &f).iter().all(|(_, a)| a.is_none()));
}

#[test]
fn zeek_tsv_header_is_known_when_reading_resumes_mid_file() {
    let bytes = read("formats/zeek-notice.log");
    let f = FileFormat::detect(&bytes, Format::Auto);
    let last_row = String::from_utf8(bytes.clone())
        .expect("utf-8")
        .lines()
        .rfind(|l| !l.starts_with('#'))
        .expect("a row")
        .to_string();
    match f.parse_line(last_row.as_bytes()) {
        Ok(Parsed::Alert(a, _)) => assert_eq!(a.destination_ip, ip("216.58.193.195")),
        other => panic!("{other:?}"),
    }
    let short = f.parse_line(b"1521911720.1\tCabc").expect_err("short row");
    assert_eq!(short.0, "row has 2 fields, the `#fields` header has 26");
}

// ---------------------------------------------------------------- GuardDuty and Security Hub

fn guardduty_source() -> Vec<Value> {
    serde_json::from_slice(&read("formats/guardduty-findings.json")).expect("json array")
}

#[test]
fn guardduty_findings_fields_match_the_source() {
    let (fmt, all) = alerts("formats/guardduty-findings.json");
    assert_eq!(fmt, Format::JsonDocument);
    let src = guardduty_source();
    assert_eq!(all.len(), src.len());
    for ((a, fp), d) in all.iter().zip(&src) {
        assert_eq!(a.timestamp, ts(d["createdAt"].as_str().expect("createdAt")));
        assert_eq!(a.module, "guardduty");
        assert_eq!(a.severity_original, s(&d["severity"]));
        let score: f64 = d["severity"]
            .as_str()
            .expect("severity")
            .parse()
            .expect("number");
        let band = match score {
            x if x < 4.0 => Severity::Low,
            x if x < 7.0 => Severity::Medium,
            x if x < 9.0 => Severity::High,
            _ => Severity::Critical,
        };
        assert_eq!(
            a.severity, band,
            "GuardDuty's bands: 1-3.9, 4-6.9, 7-8.9, 9-10"
        );
        assert_eq!(a.rule_id, s(&d["type"]));
        assert_eq!(a.rule_name, s(&d["title"]));
        assert_eq!(
            a.rule_category.as_deref(),
            d["type"].as_str().and_then(|t| t.split(':').next())
        );
        assert_eq!(a.message, s(&d["description"]));
        assert_eq!(
            a.host_name,
            s(&d["resource"]["instanceDetails"]["instanceId"])
        );
        assert_eq!(
            a.user_name,
            s(&d["resource"]["accessKeyDetails"]["userName"])
        );
        match d["arn"].as_str() {
            Some(arn) => assert_eq!(fp, &sha256_hex(format!("guardduty\0{arn}").as_bytes())),
            // Wazuh's generator leaves the port-probe sample without arn and id: the content
            // is its identity.
            None => assert_eq!(fp, &vigil::engine::normalize::content_fingerprint(d)),
        }
        let action = &d["service"]["action"];
        match action["actionType"].as_str() {
            Some("AWS_API_CALL") => {
                let remote = &action["awsApiCallAction"]["remoteIpDetails"]["ipAddressV4"];
                assert_eq!(a.source_ip, ip(remote.as_str().expect("ip")));
                assert_eq!(a.user_name.as_deref(), Some("LOCAL Service"));
            }
            Some("NETWORK_CONNECTION") => {
                let n = &action["networkConnectionAction"];
                assert_eq!(n["connectionDirection"], "OUTBOUND");
                assert_eq!(
                    a.source_ip,
                    ip(n["localIpDetails"]["ipAddressV4"].as_str().expect("ip"))
                );
                assert_eq!(a.source_port, port(&n["localPortDetails"]["port"]));
                assert_eq!(
                    a.destination_ip,
                    ip(n["remoteIpDetails"]["ipAddressV4"].as_str().expect("ip"))
                );
                assert_eq!(a.destination_port, port(&n["remotePortDetails"]["port"]));
                assert_eq!(a.transport.as_deref(), Some("tcp"));
            }
            Some("PORT_PROBE") => {
                // A list in GuardDuty's API; Wazuh's generator writes one object.
                let details = &action["portProbeAction"]["portProbeDetails"];
                let p = if details.is_array() {
                    &details[0]
                } else {
                    details
                };
                assert_eq!(
                    a.destination_ip,
                    ip("10.0.0.1"),
                    "the instance's private address"
                );
                assert_eq!(
                    a.source_ip,
                    ip(p["remoteIpDetails"]["ipAddressV4"].as_str().expect("ip"))
                );
                assert_eq!(a.destination_port, port(&p["localPortDetails"]["port"]));
            }
            other => panic!("fixture action {other:?}"),
        }
    }
    fingerprints_distinct(&all);
}

/// The AWS CLI's PascalCase with numeric severities, a `Findings` list, one finding per line
/// and an EventBridge event are the same findings.
#[test]
fn guardduty_wrappings_and_spellings_are_the_same_findings() {
    let (_, base) = alerts("formats/guardduty-findings.json");
    fn pascal(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| {
                        let mut c = k.chars();
                        let key: String = c
                            .next()
                            .map(|f| f.to_uppercase().chain(c).collect())
                            .unwrap_or_default();
                        (key, pascal(v))
                    })
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(pascal).collect()),
            other => other.clone(),
        }
    }
    let mut numeric = guardduty_source();
    for f in &mut numeric {
        let sev: f64 = f["severity"]
            .as_str()
            .expect("string severity")
            .parse()
            .expect("number");
        f["severity"] = json!(sev);
    }
    let cli = json!({"Findings": numeric.iter().map(pascal).collect::<Vec<_>>()});
    let bytes = serde_json::to_vec_pretty(&cli).expect("json");
    let f = FileFormat::detect(&bytes, Format::Auto);
    let from_cli: Vec<(Alert, String)> = records(&bytes, &f)
        .into_iter()
        .filter_map(|(_, a)| a)
        .collect();
    let lines: Vec<u8> = guardduty_source()
        .iter()
        .flat_map(|f| {
            let mut l =
                serde_json::to_vec(&json!({"version": "0", "detail-type": "GuardDuty Finding",
                "source": "aws.guardduty", "detail": f}))
                .expect("json");
            l.push(b'\n');
            l
        })
        .collect();
    let f = FileFormat::detect(&lines, Format::Auto);
    assert_eq!(f.format, Format::JsonLines);
    let from_events: Vec<(Alert, String)> = records(&lines, &f)
        .into_iter()
        .filter_map(|(_, a)| a)
        .collect();
    for other in [&from_cli, &from_events] {
        assert_eq!(other.len(), base.len());
        for ((a, fa), (b, fb)) in base.iter().zip(other.iter()) {
            if a.rule_id.as_deref() != Some("Recon:EC2/PortProbeUnprotectedPort") {
                assert_eq!(fa, fb, "{:?}: the ARN is the identity", a.rule_id);
            }
            assert_eq!(
                (a.timestamp, a.severity, &a.rule_id),
                (b.timestamp, b.severity, &b.rule_id)
            );
            assert_eq!(
                (a.source_ip, a.destination_ip, &a.user_name),
                (b.source_ip, b.destination_ip, &b.user_name)
            );
        }
    }
    assert_eq!(from_cli[0].0.severity_original.as_deref(), Some("5.0"));
}

#[test]
fn security_hub_guardduty_finding_fields_match_the_source() {
    let (fmt, all) = alerts("formats/securityhub-guardduty.json");
    assert_eq!(
        fmt,
        Format::JsonDocument,
        "a pretty-printed object is one document"
    );
    let d: Value =
        serde_json::from_slice(&read("formats/securityhub-guardduty.json")).expect("json");
    let (a, fp) = &all[0];
    assert_eq!(a.timestamp, ts("2023-09-19T15:05:22.487Z"));
    assert_eq!(a.module, "guardduty");
    assert_eq!(
        (a.severity, a.severity_original.as_deref()),
        (Severity::Low, Some("LOW"))
    );
    assert_eq!(
        a.rule_id.as_deref(),
        Some("Stealth:IAMUser-CloudTrailLoggingDisabled")
    );
    assert_eq!(a.rule_name, s(&d["Title"]));
    assert_eq!(a.rule_category.as_deref(), Some("TTPs/Defense Evasion"));
    assert_eq!(a.tactics, vec!["Defense Evasion".to_string()]);
    assert_eq!(a.source_ip, ip("52.94.133.131"));
    assert_eq!(a.user_name.as_deref(), Some("Admin"));
    assert_eq!(a.message, s(&d["Description"]));
    assert_eq!(
        a.original,
        String::from_utf8(read("formats/securityhub-guardduty.json"))
            .expect("utf-8")
            .trim_end()
    );
    // The same GuardDuty finding read raw (its ARN is the ASFF Id) is the same alert.
    let mut raw = guardduty_source()[0].clone();
    raw["arn"] = d["Id"].clone();
    let line = serde_json::to_vec(&raw).expect("json");
    match FileFormat::detect(&line, Format::Auto).parse_line(&line) {
        Ok(Parsed::Alert(_, raw_fp)) => assert_eq!(&raw_fp, fp),
        other => panic!("{other:?}"),
    }

    let (_, all) = alerts("formats/securityhub-control.json");
    let d: Value = serde_json::from_slice(&read("formats/securityhub-control.json")).expect("json");
    let (a, fp) = &all[0];
    assert_eq!(a.module, "securityhub");
    assert_eq!(a.timestamp, ts("2021-10-28T19:33:39.417Z"));
    assert_eq!(
        (a.severity, a.severity_original.as_deref()),
        (Severity::Low, Some("INFORMATIONAL"))
    );
    assert_eq!(a.rule_id, s(&d["GeneratorId"]));
    assert_eq!(a.rule_name, s(&d["Title"]));
    assert_eq!(a.message, s(&d["Description"]));
    assert!(a.tactics.is_empty());
    let want = format!(
        "asff\0{}\0{}",
        d["ProductArn"].as_str().expect("arn"),
        d["Id"].as_str().expect("id")
    );
    assert_eq!(fp, &sha256_hex(want.as_bytes()));
}

// ---------------------------------------------------------------- ECS / Elastic

#[test]
fn elastic_alert_documents_fields_match_the_source() {
    let (fmt, all) = alerts("formats/elastic-alerts.ndjson");
    assert_eq!(fmt, Format::JsonLines);
    assert_eq!(all.len(), 3, "the ECS event of kind `event` is skipped");
    let src: Vec<Value> = text_lines("formats/elastic-alerts.ndjson")
        .iter()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();

    let (a, fp) = &all[0];
    let d = &src[0];
    assert_eq!(
        a.timestamp,
        ts(d["kibana.alert.original_time"].as_str().expect("t"))
    );
    assert_eq!(a.module, "elastic");
    assert_eq!(
        (a.severity, a.severity_original.as_deref()),
        (Severity::High, Some("high"))
    );
    assert_eq!(a.rule_id, s(&d["kibana.alert.rule.rule_id"]));
    assert_eq!(a.rule_name, s(&d["kibana.alert.rule.name"]));
    assert_eq!(a.rule_category, s(&d["kibana.alert.rule.category"]));
    assert_eq!(
        (a.source_ip, a.source_port),
        (ip("203.0.113.45"), Some(51514))
    );
    assert_eq!(
        (a.destination_ip, a.destination_port),
        (ip("10.0.4.21"), Some(22))
    );
    assert_eq!(a.transport.as_deref(), Some("tcp"));
    assert_eq!(a.host_name.as_deref(), Some("web-01"));
    assert_eq!(a.user_name.as_deref(), Some("root"));
    assert_eq!(
        a.technique_ids,
        vec!["T1110".to_string(), "T1110.001".to_string()]
    );
    assert_eq!(a.tactics, vec!["Credential Access".to_string()]);
    assert_eq!(a.message, s(&d["kibana.alert.reason"]));
    assert_eq!(
        fp,
        &sha256_hex(
            format!(
                "elastic\0{}",
                d["kibana.alert.uuid"].as_str().expect("uuid")
            )
            .as_bytes()
        )
    );

    let (a, fp) = &all[1];
    let d = &src[1];
    let sig = &d["_source"]["signal"];
    assert_eq!(a.timestamp, ts(sig["original_time"].as_str().expect("t")));
    assert_eq!(
        (a.severity, a.severity_original.as_deref()),
        (Severity::Medium, Some("medium"))
    );
    assert_eq!(a.rule_id, s(&sig["rule"]["rule_id"]));
    assert_eq!(a.rule_name, s(&sig["rule"]["name"]));
    assert_eq!(
        a.technique_ids,
        vec!["T1218".to_string(), "T1218.011".to_string()]
    );
    assert_eq!(a.tactics, vec!["Defense Evasion".to_string()]);
    assert_eq!(
        (a.source_ip, a.destination_port),
        (ip("10.20.1.7"), Some(443))
    );
    assert_eq!(a.user_name.as_deref(), Some("jdoe"));
    assert_eq!(a.message, s(&sig["reason"]));
    assert_eq!(
        fp,
        &sha256_hex(format!("elastic\0{}", d["_id"].as_str().expect("id")).as_bytes())
    );

    let (a, _) = &all[2];
    let d = &src[2];
    assert_eq!(a.module, "suricata");
    assert_eq!(a.timestamp, ts("2023-11-07T22:15:03.884Z"));
    assert_eq!(
        (a.severity, a.severity_original.as_deref()),
        (Severity::High, Some("1"))
    );
    assert_eq!(a.rule_id, s(&d["rule"]["id"]));
    assert_eq!(a.rule_name, s(&d["rule"]["name"]));
    assert_eq!(a.rule_category, s(&d["rule"]["category"]));
    assert_eq!(a.transport.as_deref(), Some("udp"));
    assert_eq!(a.message, s(&d["message"]));
}

// ---------------------------------------------------------------- CEF

#[test]
fn cef_records_fields_match_the_source() {
    let (fmt, all) = alerts("formats/cef.log");
    assert_eq!(fmt, Format::Cef);
    assert_eq!(all.len(), 6);
    let (a, _) = &all[0];
    assert_eq!(a.module, "cef");
    assert_eq!(
        (a.severity, a.severity_original.as_deref()),
        (Severity::Critical, Some("10"))
    );
    assert_eq!(a.rule_id.as_deref(), Some("100"));
    assert_eq!(a.rule_name.as_deref(), Some("worm successfully stopped"));
    assert_eq!(
        a.message, a.rule_name,
        "no msg: the event name is the message"
    );
    assert_eq!((a.source_ip, a.source_port), (ip("10.0.0.1"), Some(1232)));
    assert_eq!(a.destination_ip, ip("2.1.2.2"));
    assert_eq!(a.host_name.as_deref(), Some("host"), "the syslog sender");
    assert_eq!(
        a.timestamp.format("%m-%d %H:%M:%S").to_string(),
        "09-19 08:26:10"
    );
    assert_eq!(
        all[1].0.rule_name.as_deref(),
        Some("detected a | in message")
    );
    assert_eq!(
        all[1].0.destination_ip,
        ip("1.1.1.1"),
        "an unescaped | in a value is data"
    );
    assert_eq!(
        all[2].0.rule_name.as_deref(),
        Some("detected a \\ in packet")
    );
    assert_eq!(
        all[3].0.destination_ip,
        ip("1.1.1.1"),
        "an escaped = does not start a key"
    );

    let (a, _) = &all[4];
    assert_eq!(
        a.timestamp,
        ts("2024-05-14T03:12:45.120Z"),
        "rt in epoch milliseconds"
    );
    assert_eq!(
        (a.severity, a.severity_original.as_deref()),
        (Severity::High, Some("High"))
    );
    assert_eq!(a.rule_id.as_deref(), Some("0419016384"));
    assert_eq!(
        a.rule_name.as_deref(),
        Some("Intrusion prevention: SSH.Brute.Force")
    );
    assert_eq!(a.rule_category.as_deref(), Some("ips"));
    assert_eq!(
        (a.source_ip, a.source_port),
        (ip("198.51.100.77"), Some(40112))
    );
    assert_eq!(
        (a.destination_ip, a.destination_port),
        (ip("10.1.2.15"), Some(22))
    );
    assert_eq!(a.transport.as_deref(), Some("tcp"));
    assert_eq!(a.host_name.as_deref(), Some("db-02"));
    assert_eq!(a.user_name.as_deref(), Some("admin"));
    assert_eq!(
        a.message.as_deref(),
        Some("SSH brute force attempt from 198.51.100.77\nblocked after 12 tries")
    );

    let (a, _) = &all[5];
    assert_eq!(
        a.timestamp,
        ts("2024-05-14T03:13:01Z"),
        "rt as a date with its zone"
    );
    assert_eq!(
        (a.severity, a.severity_original.as_deref()),
        (Severity::Critical, Some("Very-High"))
    );
    assert_eq!(
        (a.source_ip, a.destination_ip),
        (ip("2001:db8::77"), ip("2001:db8::15"))
    );
    assert_eq!(a.user_name.as_deref(), Some("svc-web"));
    assert_eq!(a.host_name.as_deref(), Some("ids-2"));
    assert_eq!(
        a.message.as_deref(),
        Some("Content-Type header carries an OGNL expression")
    );
    fingerprints_distinct(&all);

    // The same event relayed with another syslog header is the same alert.
    let line = text_lines("formats/cef.log")[4].clone();
    let relayed = line.replace(
        "<134>1 2024-05-14T03:12:45.120Z fw-edge-1 CEF - - - ",
        "May 14 03:12:50 relay-9 ",
    );
    let f = FileFormat::detect(line.as_bytes(), Format::Auto);
    match f.parse_line(relayed.as_bytes()) {
        Ok(Parsed::Alert(_, fp)) => assert_eq!(fp, all[4].1),
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------- CSV

#[test]
fn csv_export_of_suricata_alerts_matches_the_suricata_documents() {
    // Suricata's priority 1 is its most severe: say so in the severity table.
    let mut cfg = builtin();
    cfg.csv.severity.insert("1".into(), 3);
    cfg.csv.severity.insert("3".into(), 1);
    let (fmt, rows) = alerts_with("formats/suricata-alerts.csv", Format::Auto, &settings(&cfg));
    assert_eq!(fmt, Format::Csv);
    let (_, eve) = alerts("suricata-alert.json");
    assert_eq!(rows.len(), 3);
    for ((c, _), (e, _)) in rows.iter().zip(&eve) {
        assert_eq!(c.module, "csv");
        assert!(c.original.contains(','));
        let mut c = c.clone();
        c.module = e.module.clone();
        c.original = e.original.clone();
        c.message = e.message.clone();
        assert_eq!(
            &c, e,
            "every column carries the EVE field it was exported from"
        );
    }
}

#[test]
fn csv_with_a_comment_block_and_user_column_names() {
    let mut cfg = builtin();
    cfg.csv
        .columns
        .insert("first_seen_utc".into(), "@timestamp".into());
    cfg.csv.columns.insert("malware".into(), "rule.name".into());
    let (fmt, rows) = alerts_with("formats/feodo-c2.csv", Format::Auto, &settings(&cfg));
    assert_eq!(fmt, Format::Csv);
    assert_eq!(rows.len(), 5);
    let (a, _) = &rows[0];
    assert_eq!(
        a.timestamp,
        ts("2023-05-23T17:51:44Z"),
        "a time with no zone is UTC"
    );
    assert_eq!(
        (a.destination_ip, a.destination_port),
        (ip("192.9.135.73"), Some(1194))
    );
    assert_eq!(a.rule_name.as_deref(), Some("Pikabot"));
    assert_eq!(
        (a.severity, a.severity_original.as_deref()),
        (Severity::Low, None)
    );
    assert_eq!(a.module, "csv");
    fingerprints_distinct(&rows);

    // Without the mapping the file is not recognised, and every line says what to do.
    let bytes = read("formats/feodo-c2.csv");
    let f = FileFormat::detect(&bytes, Format::Auto);
    let e = f
        .parse_line(text_lines("formats/feodo-c2.csv")[9].as_bytes())
        .expect_err("unmapped");
    assert!(
        e.0.contains("looks like a CSV header (first_seen_utc, dst_ip, dst_port"),
        "{e}"
    );
    assert!(e.0.contains("[ingest.csv.columns]"), "{e}");
}

// ---------------------------------------------------------------- configured JSON mappings

#[test]
fn falco_through_the_shipped_mapping() {
    let (fmt, all) = alerts("formats/falco.json");
    assert_eq!(fmt, Format::JsonDocument);
    let d: Value = serde_json::from_slice(&read("formats/falco.json")).expect("json");
    let (a, fp) = &all[0];
    assert_eq!(a.timestamp, ts("2023-01-03T15:11:39.558068644Z"));
    assert_eq!(a.module, "falco");
    assert_eq!(
        (a.severity, a.severity_original.as_deref()),
        (Severity::Medium, Some("Warning"))
    );
    assert_eq!(a.rule_name, s(&d["rule"]));
    assert_eq!(a.rule_category, s(&d["source"]));
    assert_eq!(a.host_name, s(&d["hostname"]));
    assert_eq!(a.user_name, s(&d["output_fields"]["user.name"]));
    assert_eq!(a.message, s(&d["output"]));
    assert_eq!(
        fp,
        &sha256_hex(format!("mapping\0falco\0{}", d["uuid"].as_str().expect("uuid")).as_bytes())
    );
}

#[test]
fn a_user_mapping_reads_another_producer_and_unmatched_json_stays_quarantined() {
    let okta = br#"{"published":"2024-08-13T15:58:20.353Z","eventType":"security.threat.detected","severity":"WARN","displayMessage":"Request from suspicious actor","client":{"ipAddress":"10.0.0.1"},"uuid":"dc9fd3c0-598c-11ef-8478-2b7584bf8d5a"}"#;
    let before = FileFormat::detect(okta, Format::Auto)
        .parse_line(okta)
        .expect_err("unknown");
    assert!(
        before
            .0
            .starts_with("unrecognised document (keys: published, eventType, severity"),
        "{before}"
    );
    let mut cfg = builtin();
    let mapping: vigil::engine::format::MappingConfig = toml::from_str(
        r#"module = "okta"
        when = ["eventType", "published"]
        fingerprint = ["uuid"]
        [fields]
        published = "@timestamp"
        eventType = "rule.id"
        displayMessage = "rule.name"
        severity = "event.severity"
        "client.ipAddress" = "source.ip"
        [severity]
        info = 1
        warn = 2
        error = 3"#,
    )
    .expect("mapping toml");
    cfg.mappings.insert("okta".into(), mapping);
    let f = FileFormat::detect_with(okta, Format::Auto, &settings(&cfg));
    match f.parse_line(okta) {
        Ok(Parsed::Alert(a, _)) => {
            assert_eq!(a.module, "okta");
            assert_eq!(a.timestamp, ts("2024-08-13T15:58:20.353Z"));
            assert_eq!(
                (a.severity, a.severity_original.as_deref()),
                (Severity::Medium, Some("WARN"))
            );
            assert_eq!(a.rule_id.as_deref(), Some("security.threat.detected"));
            assert_eq!(a.source_ip, ip("10.0.0.1"));
        }
        other => panic!("{other:?}"),
    }
    let odd = br#"{"published":"2024-08-13T15:58:20Z","eventType":"x","severity":"LOUD"}"#;
    let e = f.parse_line(odd).expect_err("unknown severity");
    assert_eq!(e.0, "field `severity`: severity a string \"LOUD\" is not in the severity table of mapping `okta`");
}

// ---------------------------------------------------------------- one JSON-lines file, every producer

#[test]
fn mixed_json_lines_are_recognised_line_by_line() {
    let (fmt, all) = alerts("formats/mixed.ndjson");
    assert_eq!(fmt, Format::JsonLines);
    let modules: Vec<&str> = all.iter().map(|(a, _)| a.module.as_str()).collect();
    assert_eq!(
        modules,
        [
            "suricata",
            "wazuh",
            "zeek",
            "guardduty",
            "guardduty",
            "falco",
            "elastic"
        ]
    );
}

// ---------------------------------------------------------------- bad input

#[test]
fn invalid_utf8_names_the_field_in_every_framing() {
    let mut json =
        br#"{"event_type":"alert","timestamp":"2020-01-01T00:00:00Z","alert":{"signature":"ab"#
            .to_vec();
    json.extend_from_slice(b"\xff\"}}");
    let f = FileFormat::detect(b"", Format::JsonLines);
    assert_eq!(
        f.parse_line(&json).expect_err("bad").0,
        "field `alert.signature`: invalid UTF-8 (byte 81 of the line)"
    );

    let cef = b"CEF:0|V|P|1|9|name|5|src=10.0.0.1 msg=caf\xe9 dst=10.0.0.2";
    let f = FileFormat::detect(cef, Format::Auto);
    assert_eq!(
        f.parse_line(cef).expect_err("bad").0,
        "field `msg`: invalid UTF-8 (byte 41 of the line)"
    );

    let csv = read("formats/suricata-alerts.csv");
    let f = FileFormat::detect(&csv, Format::Auto);
    let row = b"2022-02-16T14:33:19Z,1.2.3.4,1,5.6.7.8,2,TCP,9,sig\xfe,cat,1,";
    assert_eq!(
        f.parse_line(row).expect_err("bad").0,
        "field `signature`: invalid UTF-8 (byte 50 of the line)"
    );

    let tsv = read("formats/zeek-notice.log");
    let f = FileFormat::detect(&tsv, Format::Auto);
    let mut row =
        b"1521911720.1\tCx\t10.0.0.1\t1\t10.0.0.2\t2\t-\t-\t-\ttcp\tSSL::X\tmsg \xc3".to_vec();
    row.extend_from_slice(&b"\t-".repeat(14));
    assert_eq!(
        f.parse_line(&row).expect_err("bad").0,
        "field `msg`: invalid UTF-8 (byte 59 of the line)"
    );
}

#[test]
fn limits_come_from_the_config_and_refuse_with_a_reason() {
    let mut cfg = builtin();
    cfg.max_record_bytes = 2048;
    cfg.max_depth = 8;
    let s = settings(&cfg);
    let f = FileFormat::detect_with(b"", Format::JsonLines, &s);
    let long = format!("{{\"a\":\"{}\"}}", "x".repeat(3000));
    assert_eq!(
        f.parse_line(long.as_bytes()).expect_err("long").0,
        "line is 3008 bytes, over the 2048 byte limit ([ingest] max_record_bytes)"
    );
    let deep = format!("{{\"a\":{}1{}}}", "[".repeat(8), "]".repeat(8));
    assert_eq!(
        f.parse_line(deep.as_bytes()).expect_err("deep").0,
        "nested deeper than 8 levels at byte 12 ([ingest] max_depth)"
    );
    // Brackets inside strings are not nesting.
    let quoted = format!("{{\"a\":\"{}\"}}", "[".repeat(50));
    assert!(f
        .parse_line(quoted.as_bytes())
        .expect_err("unrecognised")
        .0
        .starts_with("unrecognised document"));
}

#[test]
fn one_bad_record_in_a_document_spoils_only_itself() {
    let mut doc = b"[\n  {\"event_type\":\"alert\",\"timestamp\":\"2020-01-01T00:00:00Z\",\"alert\":{\"signature\":\"a\"}},\n  {\"event_type\":\"alert\",\"timestamp\":\"2020-01-01T00:00:01Z\",\"alert\":{\"signature\":\"b".to_vec();
    doc.extend_from_slice(
        b"\xff\"}},\n  {\"event_type\":\"alert\",\"timestamp\":\"nope\",\"alert\":{}}\n]\n",
    );
    let f = FileFormat::detect(&doc, Format::Auto);
    assert!(!f.is_line_oriented());
    let recs = f.parse_records(&doc);
    assert_eq!(recs.len(), 3);
    assert!(matches!(recs[0].parsed, Ok(Parsed::Alert(..))));
    assert_eq!(recs[1].line_no, 3);
    assert!(recs[1]
        .parsed
        .as_ref()
        .expect_err("bad utf-8")
        .0
        .starts_with("field `alert.signature`: invalid UTF-8"));
    assert_eq!(
        recs[2].parsed.as_ref().expect_err("bad time").0,
        "field `timestamp`: unparsable timestamp a string \"nope\""
    );
    assert_eq!(&doc[recs[2].span.clone()][..14], b"{\"event_type\":");
}

// ---------------------------------------------------------------- the real binary

fn summary(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("summary JSON")
}

fn gzip(src: &Path, dir: &Path) -> PathBuf {
    let dst = dir.join(format!(
        "{}.gz",
        src.file_name().expect("name").to_string_lossy()
    ));
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&dst).expect("create gz"),
        flate2::Compression::default(),
    );
    enc.write_all(&std::fs::read(src).expect("read"))
        .expect("gzip");
    enc.finish().expect("finish gz");
    dst
}

/// Each fixture through `vigil ingest`, then gzipped, then again: the first read stores every
/// alert, the other two add none.
#[test]
fn every_format_plain_and_gzipped_through_vigil_ingest_exactly_once() {
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(home.path().join("config")).expect("config dir");
    std::fs::write(
        home.path().join("config/config.toml"),
        "[ingest.csv.columns]\nfirst_seen_utc = \"@timestamp\"\nmalware = \"rule.name\"\n",
    )
    .expect("config");
    let cases: [(&str, u64, u64); 14] = [
        ("suricata-alert.json", 3, 0),
        ("wazuh-alert.json", 3, 0),
        ("formats/zeek-notice.json", 3, 0),
        ("formats/zeek-weird.log", 0, 11),
        ("formats/guardduty-findings.json", 3, 0),
        ("formats/securityhub-guardduty.json", 1, 0),
        ("formats/securityhub-control.json", 1, 0),
        ("formats/elastic-alerts.ndjson", 3, 1),
        ("formats/cef.log", 6, 0),
        ("formats/suricata-alerts.csv", 3, 1),
        ("formats/feodo-c2.csv", 5, 9),
        ("formats/falco.json", 1, 0),
        // Already stored through other fixtures: the same alerts in other framings.
        ("formats/zeek-notice.log", 0, 9),
        ("formats/suricata-array.json", 0, 0),
    ];
    for (name, want, skipped) in cases {
        let file = path(name);
        let first = summary(&vigil(
            home.path(),
            &["ingest", &file.display().to_string()],
        ));
        assert_eq!(first["quarantined"], 0, "{name}: {first}");
        assert_eq!(first["alerts"], want, "{name}: {first}");
        assert_eq!(first["skipped"], skipped, "{name}: {first}");
        let gz = gzip(&file, home.path());
        let again = summary(&vigil(home.path(), &["ingest", &gz.display().to_string()]));
        assert_eq!(again["alerts"], 0, "{name}.gz adds nothing: {again}");
        assert_eq!(again["quarantined"], 0, "{name}.gz: {again}");
        assert_eq!(
            again["read"], first["read"],
            "{name}.gz reads the same records: {again}"
        );
        let third = summary(&vigil(
            home.path(),
            &["ingest", &file.display().to_string()],
        ));
        assert_eq!(third["alerts"], 0, "{name} twice adds nothing: {third}");
    }
    let mixed = summary(&vigil(
        home.path(),
        &[
            "ingest",
            &path("formats/mixed.ndjson").display().to_string(),
        ],
    ));
    assert_eq!(
        mixed["alerts"], 0,
        "every line of mixed.ndjson was already stored: {mixed}"
    );
    assert_eq!(mixed["duplicates"], 7, "{mixed}");

    // Export carries the raw document whole.
    let export = vigil(home.path(), &["export"]);
    assert!(export.status.success());
    let docs: Vec<Value> = String::from_utf8_lossy(&export.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("export line"))
        .collect();
    let falco = docs
        .iter()
        .find(|d| d["event"]["module"] == "falco")
        .expect("falco alert exported");
    assert_eq!(
        falco["event"]["original"].as_str(),
        Some(
            String::from_utf8(read("formats/falco.json"))
                .expect("utf-8")
                .trim_end()
        )
    );
    assert_eq!(falco["vigil"]["severity_original"], "Warning");
}

#[test]
fn forced_format_and_config_limits_through_vigil_ingest() {
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(home.path().join("config")).expect("config dir");
    std::fs::write(
        home.path().join("config/config.toml"),
        "[ingest]\nmax_record_bytes = 2048\nmax_depth = 8\n",
    )
    .expect("config");
    let f = home.path().join("alerts.json");
    let deep = format!("{{\"a\":{}1{}}}", "[".repeat(9), "]".repeat(9));
    let long = format!("{{\"a\":\"{}\"}}", "x".repeat(3000));
    std::fs::write(&f, format!("{deep}\n{long}\n")).expect("write");
    let s = summary(&vigil(home.path(), &["ingest", &f.display().to_string()]));
    assert_eq!(s["quarantined"], 2, "{s}");
    let reasons = db::texts(
        &home.path().join("data/vigil.db"),
        "SELECT reason FROM quarantine ORDER BY line_no",
    );
    let file = f.display().to_string();
    assert_eq!(
        reasons,
        vec![
            format!("{file}:1: nested deeper than 8 levels at byte 12 ([ingest] max_depth)"),
            format!("{file}:2: line is 3008 bytes, over the 2048 byte limit ([ingest] max_record_bytes)"),
        ]
    );

    // --format zeek-tsv on a file without the header refuses every line, saying why.
    let out = vigil(
        home.path(),
        &[
            "ingest",
            "--format",
            "zeek-tsv",
            &path("formats/zeek-notice.json").display().to_string(),
        ],
    );
    let s = summary(&out);
    assert_eq!(
        (s["alerts"].as_u64(), s["quarantined"].as_u64()),
        (Some(0), Some(3)),
        "{s}"
    );

    // A bad [ingest] value is a usage error naming the file and the key.
    std::fs::write(
        home.path().join("config/config.toml"),
        "[ingest]\nmax_depth = 500\n",
    )
    .expect("config");
    let out = vigil(home.path(), &["ingest", &file]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("config.toml: [ingest] max_depth: must be 1 to 128, found 500"),
        "{err}"
    );
}
