//! Suricata EVE alert lines made up for a test: each id gives one distinct alert.
//! Include it with `#[path = "common/eve.rs"] mod eve;`.
#![allow(dead_code)]

/// The EVE alert for flow `id` with signature `"{rule} {id}"` and the given `severity`, as one
/// line with its newline. Time, source and signature vary with `id`, so no two ids collide.
pub fn alert_line(id: u64, rule: &str, severity: u8) -> String {
    format!(
        r#"{{"timestamp":"2024-05-01T12:00:{:02}.{:06}Z","flow_id":{id},"event_type":"alert","src_ip":"198.51.100.{}","src_port":{},"dest_ip":"10.1.0.5","dest_port":443,"proto":"TCP","alert":{{"action":"allowed","gid":1,"signature_id":{},"rev":1,"signature":"{rule} {id}","category":"A Network Trojan was detected","severity":{severity}}}}}"#,
        id % 60,
        id % 1_000_000,
        id % 250,
        1024 + id % 60000,
        2_000_000 + id % 7
    ) + "\n"
}

/// The alerts for every id in `ids`, one line each.
pub fn alert_lines(ids: std::ops::Range<u64>, rule: &str, severity: u8) -> String {
    ids.map(|id| alert_line(id, rule, severity)).collect()
}
