//! Zeek logs: `notice` records become alerts; a record of any other Zeek log (weird, conn,
//! ssh, ...) is skipped. Reads one record as a JSON object with Zeek's flat field names
//! (`id.orig_h`): a JSON log line as is, a TSV row as `format` turns it into one.

use super::{
    content_fingerprint, first, lookup, opt_ip, opt_port, opt_str, timestamp, Parsed, Reject, Value,
};
use crate::engine::alert::{sha256_hex, Alert, Severity};

/// A Zeek record: a `ts` beside one of the fields every Zeek log carries.
pub(super) fn recognises(doc: &Value) -> bool {
    let Value::Object(o) = doc else {
        return false;
    };
    o.contains_key("ts")
        && (o.contains_key("uid")
            || o.contains_key("_path")
            || o.contains_key("note")
            || lookup(doc, "id.orig_h").is_some())
}

/// Zeek has no severity: vigil ranks the notice types of Zeek's own scripts, so a scan or a
/// password guesser stands above a self-signed certificate. Unlisted notes are medium.
fn note_severity(note: &str) -> Severity {
    match note {
        "SSH::Login_By_Password_Guesser"
        | "Heartbleed::SSL_Heartbeat_Attack_Success"
        | "FTP::Site_Exec_Success" => Severity::Critical,
        "Scan::Port_Scan"
        | "Scan::Address_Scan"
        | "SSH::Password_Guessing"
        | "HTTP::SQL_Injection_Attacker"
        | "HTTP::SQL_Injection_Victim"
        | "FTP::Bruteforcing"
        | "Heartbleed::SSL_Heartbeat_Attack"
        | "TeamCymruMalwareHashRegistry::Match"
        | "Intel::Notice"
        | "Signatures::Sensitive_Signature"
        | "Signatures::Multiple_Sig_Responders"
        | "Signatures::Multiple_Signatures" => Severity::High,
        n if n.starts_with("SSL::")
            || n.starts_with("Weird::")
            || n.starts_with("CaptureLoss::")
            || n.starts_with("PacketFilter::")
            || n.starts_with("ProtocolDetector::")
            || n.starts_with("Traceroute::")
            || n.starts_with("Conn::") =>
        {
            Severity::Low
        }
        _ => Severity::Medium,
    }
}

/// One Zeek record (`text` as read) to an alert, or a skip when it is not a notice.
pub(crate) fn normalize(doc: &Value, text: &str) -> Result<Parsed, Reject> {
    let Some(note) = opt_str(doc, "note")? else {
        return Ok(Parsed::Skipped);
    };
    let ts = timestamp(doc, "ts")?;
    let src = first(doc, &["id.orig_h", "src"], opt_ip)?;
    let dst = first(doc, &["id.resp_h", "dst"], opt_ip)?;
    let dst_port = first(doc, &["id.resp_p", "p"], opt_port)?;
    let uid = opt_str(doc, "uid")?;
    let alert = Alert {
        timestamp: ts,
        module: "zeek".into(),
        severity: note_severity(&note),
        severity_original: None,
        rule_id: Some(note.clone()),
        rule_category: note.split_once("::").map(|(m, _)| m.to_string()),
        rule_name: Some(note.clone()),
        source_ip: src,
        source_port: opt_port(doc, "id.orig_p")?,
        destination_ip: dst,
        destination_port: dst_port,
        transport: opt_str(doc, "proto")?.map(|p| p.to_ascii_lowercase()),
        host_name: opt_str(doc, "peer_descr")?,
        user_name: None,
        technique_ids: Vec::new(),
        tactics: Vec::new(),
        message: opt_str(doc, "msg")?,
        original: text.to_string(),
    };
    // The connection uid, the note and the time name one notice in both the TSV and the JSON
    // writer's output, so the same notice read from either is one alert.
    let fp = match uid {
        Some(uid) => {
            sha256_hex(format!("zeek\0{uid}\0{note}\0{}", ts.timestamp_micros()).as_bytes())
        }
        None => content_fingerprint(doc),
    };
    Ok(Parsed::Alert(Box::new(alert), fp))
}
