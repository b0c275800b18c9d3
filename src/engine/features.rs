//! The alert model's inputs: a fixed, named list of numbers per alert. Owns the list and its
//! extraction; the model card records the same list so a model trained on another list is
//! refused instead of silently misread.

use super::alert::Alert;
use chrono::Timelike;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// What enrichment learned about an alert's indicators, reduced to what the risk model reads.
/// The enrichment engine fills it; every field stays `None` until enrichment has run, and the
/// model then sees the feature as missing rather than as "clean".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EnrichmentSignals {
    /// Worst reputation of any indicator, 0 (clean) to 100 (known bad).
    pub reputation: Option<f64>,
    /// Threat-feed entries the alert's indicators matched.
    pub feed_hits: Option<u32>,
    /// Online providers that called one of the indicators malicious.
    pub malicious_verdicts: Option<u32>,
}

/// Value for "the alert does not say". Trees learn to route it; it never collides with a real
/// value because every real feature is >= 0.
pub const MISSING: f64 = -1.0;

/// Feature names, in vector order. Changing this list requires retraining (the card check
/// enforces it).
pub const FEATURES: &[&str] = &[
    "severity",
    "severity_original",
    "module",
    "transport",
    "source_port",
    "destination_port",
    "source_scope",
    "destination_scope",
    "hour_utc",
    "kw_trojan_c2",
    "kw_exploit",
    "kw_recon",
    "kw_credential",
    "kw_execution",
    "kw_noise",
    "kw_policy",
    "technique_count",
    "tactic_high_impact",
    "has_user",
];

/// Keyword groups searched in rule name, category and message (lower-cased).
const KEYWORDS: [&[&str]; 7] = [
    &[
        "trojan",
        "malware",
        "c2",
        "cnc",
        "command and control",
        "botnet",
        "backdoor",
        "beacon",
        "ransom",
    ],
    &[
        "exploit",
        "attack",
        "injection",
        "overflow",
        "shellcode",
        "rce",
        "privilege",
        "traversal",
        "xss",
    ],
    &["scan", "recon", "probe", "nmap", "sweep", "enumerat"],
    &[
        "credential",
        "password",
        "brute",
        "authentication fail",
        "login fail",
        "mimikatz",
        "lsass",
        "kerberos",
    ],
    &[
        "powershell",
        "encoded",
        "cmd.exe",
        "wscript",
        "rundll32",
        "certutil",
        "mshta",
        "regsvr32",
    ],
    &[
        "checksum",
        "stream",
        "invalid",
        "anomaly",
        "decode",
        "truncated",
        "malformed",
        "excessive",
    ],
    &[
        "policy",
        "privacy",
        "p2p",
        " tor ",
        "games",
        "inappropriate",
        "user-agent",
        "user agent",
    ],
];

const HIGH_IMPACT_TACTICS: &[&str] = &[
    "credential access",
    "lateral movement",
    "command and control",
    "exfiltration",
    "impact",
    "execution",
    "privilege escalation",
    "persistence",
];

/// Where an address sits: 0 private (RFC 1918 / ULA / CGNAT), 1 public, 2 loopback, link-local,
/// multicast or otherwise reserved.
pub fn address_scope(ip: IpAddr) -> f64 {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if v4.is_private() || (o[0] == 100 && (64..128).contains(&o[1])) {
                0.0
            } else if v4.is_loopback()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_unspecified()
                || v4.is_documentation()
                || o[0] == 0
                || o[0] >= 240
            {
                2.0
            } else {
                1.0
            }
        }
        IpAddr::V6(v6) => {
            let seg = v6.segments();
            if (seg[0] & 0xfe00) == 0xfc00 {
                0.0
            } else if v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xffc0) == 0xfe80
                || seg[0] == 0x2001 && seg[1] == 0x0db8
            {
                2.0
            } else if let Some(v4) = v6.to_ipv4_mapped() {
                address_scope(IpAddr::V4(v4))
            } else {
                1.0
            }
        }
    }
}

/// Extract the feature vector of one alert, in `FEATURES` order.
pub fn extract(a: &Alert) -> Vec<f64> {
    let text = format!(
        " {} {} {} ",
        a.rule_name.as_deref().unwrap_or(""),
        a.rule_category.as_deref().unwrap_or(""),
        a.message.as_deref().unwrap_or("")
    )
    .to_lowercase();
    let kw = |i: usize| -> f64 {
        if KEYWORDS[i].iter().any(|k| text.contains(k)) {
            1.0
        } else {
            0.0
        }
    };
    let opt = |v: Option<f64>| v.unwrap_or(MISSING);
    let transport = a.transport.as_deref().map(|t| match t {
        "tcp" | "6" => 0.0,
        "udp" | "17" => 1.0,
        "icmp" | "ipv6-icmp" | "1" | "58" => 2.0,
        _ => 3.0,
    });
    let module = match a.module.as_str() {
        "suricata" => 0.0,
        "wazuh" => 1.0,
        _ => 2.0,
    };
    let tactic_high = a
        .tactics
        .iter()
        .any(|t| HIGH_IMPACT_TACTICS.contains(&t.to_lowercase().as_str()));
    vec![
        f64::from(a.severity.level()),
        opt(a
            .severity_original
            .as_deref()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|v| *v >= 0.0)),
        module,
        opt(transport),
        opt(a.source_port.map(f64::from)),
        opt(a.destination_port.map(f64::from)),
        opt(a.source_ip.map(address_scope)),
        opt(a.destination_ip.map(address_scope)),
        f64::from(a.timestamp.hour()),
        kw(0),
        kw(1),
        kw(2),
        kw(3),
        kw(4),
        kw(5),
        kw(6),
        a.technique_ids.len() as f64,
        if tactic_high { 1.0 } else { 0.0 },
        if a.user_name.is_some() { 1.0 } else { 0.0 },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_matches_the_name_list() {
        let line = br#"{"timestamp":"2020-01-01T03:00:00Z","event_type":"alert","src_ip":"10.1.2.3","dest_ip":"8.8.8.8","proto":"TCP","dest_port":443,"alert":{"signature":"ET TROJAN Beacon","category":"A Network Trojan was detected","severity":1}}"#;
        let super::super::normalize::Parsed::Alert(a, _) =
            super::super::normalize::normalize_line(line).expect("parses")
        else {
            panic!("not an alert")
        };
        let v = extract(&a);
        assert_eq!(v.len(), FEATURES.len());
        let at = |n: &str| v[FEATURES.iter().position(|f| *f == n).expect("feature")];
        assert_eq!(at("kw_trojan_c2"), 1.0);
        assert_eq!(at("kw_noise"), 0.0);
        assert_eq!(at("source_scope"), 0.0);
        assert_eq!(at("destination_scope"), 1.0);
        assert_eq!(at("hour_utc"), 3.0);
        assert_eq!(at("source_port"), MISSING);
    }

    #[test]
    fn scopes() {
        let s = |t: &str| address_scope(t.parse().expect("ip"));
        assert_eq!(s("192.168.1.1"), 0.0);
        assert_eq!(s("100.64.0.1"), 0.0);
        assert_eq!(s("8.8.8.8"), 1.0);
        assert_eq!(s("127.0.0.1"), 2.0);
        assert_eq!(s("fe80::1"), 2.0);
        assert_eq!(s("fd00::1"), 0.0);
        assert_eq!(s("2a00:1450::1"), 1.0);
    }
}
