//! The alert model's inputs: a fixed, named list of numbers per alert and its context. Owns the list,
//! the keyword groups and extraction; the model card records the same list so a model trained on another list is
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

/// What the model knows about an alert beyond the alert itself: its incident so far and what
/// enrichment found. Every part is optional; a missing part becomes `MISSING`, never zero.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeatureContext {
    /// Alerts in the alert's incident when it arrived, itself included.
    pub incident_alerts: Option<u32>,
    /// The incident's alerts per hour when the alert arrived (see `incident::figures`).
    pub incident_rate_per_hour: Option<f64>,
    pub enrichment: EnrichmentSignals,
}

impl FeatureContext {
    /// Context with incident figures and no enrichment yet.
    pub fn with_incident(f: super::incident::IncidentFigures) -> Self {
        FeatureContext {
            incident_alerts: Some(f.alerts),
            incident_rate_per_hour: Some(f.rate_per_hour),
            enrichment: EnrichmentSignals::default(),
        }
    }
}

/// Value for "the alert does not say". Trees learn to route it; it never collides with a real
/// value because every real feature is >= 0.
pub const MISSING: f64 = -1.0;

/// Feature names, in vector order. Changing this list requires retraining (the card check
/// enforces it). What the rule text claims comes first: linfa keeps the first of equally good
/// splits, so on a tie a tree splits on the claim (which carries over to other rulesets) rather
/// than on the producer's severity scale (which does not).
pub const FEATURES: &[&str] = &[
    "rule_claim",
    "kw_malware",
    "kw_c2",
    "kw_exploit",
    "kw_phishing",
    "kw_brute_force",
    "kw_credential_dumping",
    "kw_encoded_powershell",
    "kw_execution",
    "kw_privilege",
    "kw_recon",
    "kw_noise",
    "kw_policy",
    "category_group",
    "tactic_stage",
    "tactic_high_impact",
    "technique_count",
    "severity",
    "module",
    "transport",
    "source_port",
    "destination_port",
    "source_scope",
    "destination_scope",
    "direction",
    "incident_alerts",
    "incident_rate_per_hour",
    "hour_utc",
    "has_user",
    "enrich_reputation",
    "enrich_feed_hits",
    "enrich_malicious_verdicts",
];

/// Keyword groups. The text is lower-cased with every non-alphanumeric character turned into a
/// space and padded with spaces, so `" c2 "` matches the word c2 only and `" enumerat"` any word
/// starting so.
const KW_MALWARE: &[&str] = &[
    " trojan",
    " malware",
    " backdoor",
    " ransom",
    " worm ",
    " worms ",
    " virus",
    " rootkit",
    " spyware",
    " webshell",
    " web shell",
    " coinminer",
    " miner ",
    " dropper",
    " rat ",
    " eicar",
];
const KW_C2: &[&str] = &[
    " c2 ",
    " cnc ",
    " c c ",
    " command and control",
    " botnet",
    " beacon",
    " checkin",
    " check in",
    " callback",
    " cobalt strike",
    " cobaltstrike",
    " sliver",
    " mirai",
];
const KW_EXPLOIT: &[&str] = &[
    " exploit",
    " shellcode",
    " rce ",
    " remote code execution",
    " overflow",
    " injection",
    " traversal",
    " xss ",
    " cross site",
    " sqli",
    " sql injection",
    " cve ",
    " log4j",
    " deserializ",
    " attack",
    " etc passwd",
];
const KW_PHISHING: &[&str] = &[
    " phish",
    " credential harvest",
    " spoof",
    " lookalike",
    " typosquat",
    " malicious link",
    " malicious attachment",
];
const KW_BRUTE_FORCE: &[&str] = &[
    " brute",
    " authentication fail",
    " authentication failures",
    " login fail",
    " logon failure",
    " failed password",
    " password check failed",
    " multiple authentication",
    " maximum authentication",
    " password spray",
    " invalid user",
    " non existent user",
    " bad password",
    " multiple connection attempts",
];
const KW_CREDENTIAL_DUMPING: &[&str] = &[
    " mimikatz",
    " lsass",
    " sekurlsa",
    " ntds",
    " hashdump",
    " credential dump",
    " credential theft",
    " procdump",
    " kerberoast",
    " dcsync",
    " sam hive",
    " secretsdump",
    " credential access",
];
const KW_EXECUTION: &[&str] = &[
    " powershell",
    " cmd exe",
    " wscript",
    " cscript",
    " rundll32",
    " certutil",
    " mshta",
    " regsvr32",
    " bitsadmin",
    " command execution",
    " shell command",
    " bin sh",
    " bin bash",
];
const KW_PRIVILEGE: &[&str] = &[
    " privilege",
    " sudo",
    " root ",
    " administrator",
    " admin ",
    " uid to root",
    " setuid",
    " escalat",
    " crontab",
];
const KW_RECON: &[&str] = &[
    " scan",
    " recon",
    " probe",
    " probed",
    " nmap",
    " sweep",
    " enumerat",
    " port probe",
    " discovery",
    " masscan",
    " information leak",
];
const KW_NOISE: &[&str] = &[
    " checksum",
    " stream ",
    " invalid",
    " anomaly",
    " truncated",
    " malformed",
    " excessive",
    " decode",
    " fragment",
    " unable to match",
    " applayer",
    " padding",
    " missing",
];
const KW_POLICY: &[&str] = &[
    " policy",
    " privacy",
    " p2p",
    " tor ",
    " games",
    " inappropriate",
    " user agent",
    " forking",
    " permission",
    " chat ",
];

/// Tactics that mean an intrusion is under way rather than being attempted.
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

/// The text keyword groups are searched in: rule name, category and message.
pub struct AlertText(String);

impl AlertText {
    /// Rule name, category and message of `a`, normalised for word matching.
    pub fn of(a: &Alert) -> Self {
        let mut t = String::with_capacity(256);
        t.push(' ');
        for part in [&a.rule_name, &a.rule_category, &a.message]
            .into_iter()
            .flatten()
        {
            for c in part.chars() {
                if c.is_alphanumeric() {
                    t.extend(c.to_lowercase());
                } else if !t.ends_with(' ') {
                    t.push(' ');
                }
            }
            if !t.ends_with(' ') {
                t.push(' ');
            }
        }
        AlertText(t)
    }

    fn any(&self, words: &[&str]) -> bool {
        words.iter().any(|w| self.0.contains(w))
    }

    /// `-enc`/`-EncodedCommand`/`FromBase64String` next to PowerShell: the classic way to hide
    /// a script from command-line logging.
    fn encoded_powershell(&self) -> bool {
        self.any(&[" encodedcommand", " frombase64string"])
            || (self.any(&[" powershell", " pwsh"])
                && self.any(&[" enc ", " ec ", " e ", " encoded", " base64", " bypass"]))
    }
}

/// Which keyword groups an alert's text hits. Shared by the model's features and the
/// attack-class rules so both read the same words.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Keywords {
    pub malware: bool,
    pub c2: bool,
    pub exploit: bool,
    pub phishing: bool,
    pub brute_force: bool,
    pub credential_dumping: bool,
    pub encoded_powershell: bool,
    pub execution: bool,
    pub privilege: bool,
    pub recon: bool,
    pub noise: bool,
    pub policy: bool,
}

impl Keywords {
    /// The strongest thing the rule's words claim: 3 a compromise (malware, C2, credential
    /// dumping, encoded PowerShell), 2 an attack attempt (exploit, brute force, phishing,
    /// privilege), 1 reconnaissance or policy, 0 nothing or decoder noise.
    pub fn claim(&self) -> u8 {
        if self.malware || self.c2 || self.credential_dumping || self.encoded_powershell {
            3
        } else if self.exploit || self.brute_force || self.phishing || self.privilege {
            2
        } else if self.recon || self.policy {
            1
        } else {
            0
        }
    }

    /// The groups `t` hits.
    pub fn of(t: &AlertText) -> Self {
        Keywords {
            malware: t.any(KW_MALWARE),
            c2: t.any(KW_C2),
            exploit: t.any(KW_EXPLOIT),
            phishing: t.any(KW_PHISHING),
            brute_force: t.any(KW_BRUTE_FORCE),
            credential_dumping: t.any(KW_CREDENTIAL_DUMPING),
            encoded_powershell: t.encoded_powershell(),
            execution: t.any(KW_EXECUTION),
            privilege: t.any(KW_PRIVILEGE),
            recon: t.any(KW_RECON),
            noise: t.any(KW_NOISE),
            policy: t.any(KW_POLICY),
        }
    }
}

/// A rule category reduced to what it claims, as a small code the trees can split on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CategoryGroup {
    /// Present but none of the below.
    Other = 0,
    /// Trojan, malware, C2, mining.
    Malware = 1,
    /// Web attack, exploit, executable code.
    Attack = 2,
    /// Privilege gain.
    Privilege = 3,
    /// Credential theft, failed authentication.
    Credential = 4,
    /// Scans, information leaks.
    Recon = 5,
    /// Denial of service.
    DenialOfService = 6,
    /// Policy and privacy violations.
    Policy = 7,
    /// "Potentially bad", "unknown", "suspicious": the rule is unsure.
    Suspicious = 8,
    /// Protocol decode, misc activity, not suspicious.
    Benign = 9,
}

/// Group a category (Suricata classtype text, or Wazuh's comma-joined rule groups).
pub fn category_group(category: &str) -> CategoryGroup {
    let c = category.to_lowercase();
    let has = |ws: &[&str]| ws.iter().any(|w| c.contains(w));
    if has(&[
        "trojan",
        "malware",
        "command and control",
        "c2",
        "exploit kit",
        "mining",
        "virus",
        "rootkit",
    ]) {
        CategoryGroup::Malware
    } else if has(&["privilege gain", "privilege_escalation", "sudo"]) {
        CategoryGroup::Privilege
    } else if has(&[
        "credential",
        "authentication_fail",
        "invalid_login",
        "brute",
    ]) {
        CategoryGroup::Credential
    } else if has(&[
        "web application attack",
        "attack",
        "executable code",
        "shellcode",
        "exploit",
        "targeted",
    ]) {
        CategoryGroup::Attack
    } else if has(&["scan", "recon", "information leak", "discovery"]) {
        CategoryGroup::Recon
    } else if has(&["denial of service", "dos"]) {
        CategoryGroup::DenialOfService
    } else if has(&["policy", "privacy", "inappropriate", "compliance"]) {
        CategoryGroup::Policy
    } else if has(&[
        "potentially bad",
        "bad unknown",
        "suspicious",
        "unusual",
        "string detect",
    ]) {
        CategoryGroup::Suspicious
    } else if has(&[
        "protocol command decode",
        "not suspicious",
        "misc activity",
        "unknown traffic",
        "decode",
    ]) {
        CategoryGroup::Benign
    } else {
        CategoryGroup::Other
    }
}

/// Traffic direction from the two address scopes: 0 internal, 1 outbound (private to public),
/// 2 inbound (public to private), 3 external to external, 4 a reserved address is involved.
fn direction(src: Option<f64>, dst: Option<f64>) -> Option<f64> {
    match (src?, dst?) {
        (s, d) if s == 2.0 || d == 2.0 => Some(4.0),
        (s, d) if s == 0.0 && d == 0.0 => Some(0.0),
        (0.0, _) => Some(1.0),
        (_, 0.0) => Some(2.0),
        _ => Some(3.0),
    }
}

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

/// Extract the feature vector of one alert in its context, in `FEATURES` order.
pub fn extract(a: &Alert, ctx: &FeatureContext) -> Vec<f64> {
    let kw = Keywords::of(&AlertText::of(a));
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
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
    let tactics: Vec<String> = a.tactics.iter().map(|t| t.to_lowercase()).collect();
    let tactic_high = tactics
        .iter()
        .any(|t| HIGH_IMPACT_TACTICS.contains(&t.as_str()));
    let stage = tactics
        .iter()
        .filter_map(|t| super::tactics::tactic_by_name(t))
        .map(|t| f64::from(t.stage))
        .reduce(f64::max);
    let src_scope = a.source_ip.map(address_scope);
    let dst_scope = a.destination_ip.map(address_scope);
    let e = &ctx.enrichment;
    vec![
        f64::from(kw.claim()),
        flag(kw.malware),
        flag(kw.c2),
        flag(kw.exploit),
        flag(kw.phishing),
        flag(kw.brute_force),
        flag(kw.credential_dumping),
        flag(kw.encoded_powershell),
        flag(kw.execution),
        flag(kw.privilege),
        flag(kw.recon),
        flag(kw.noise),
        flag(kw.policy),
        opt(a
            .rule_category
            .as_deref()
            .filter(|c| !c.trim().is_empty())
            .map(|c| f64::from(category_group(c) as u8))),
        opt(stage),
        flag(tactic_high),
        a.technique_ids.len() as f64,
        f64::from(a.severity.level()),
        module,
        opt(transport),
        opt(a.source_port.map(f64::from)),
        opt(a.destination_port.map(f64::from)),
        opt(src_scope),
        opt(dst_scope),
        opt(direction(src_scope, dst_scope)),
        opt(ctx.incident_alerts.map(f64::from)),
        opt(ctx
            .incident_rate_per_hour
            .filter(|r| r.is_finite() && *r >= 0.0)),
        f64::from(a.timestamp.hour()),
        flag(a.user_name.is_some()),
        opt(e.reputation.filter(|r| r.is_finite() && *r >= 0.0)),
        opt(e.feed_hits.map(f64::from)),
        opt(e.malicious_verdicts.map(f64::from)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::normalize::{normalize_line, Parsed};

    fn alert(line: &[u8]) -> Alert {
        let Parsed::Alert(a, _) = normalize_line(line).expect("parses") else {
            panic!("not an alert")
        };
        *a
    }

    #[test]
    fn vector_matches_the_name_list() {
        let a = alert(br#"{"timestamp":"2020-01-01T03:00:00Z","event_type":"alert","src_ip":"10.1.2.3","dest_ip":"8.8.8.8","proto":"TCP","dest_port":443,"alert":{"signature":"ET TROJAN Beacon","category":"A Network Trojan was detected","severity":1}}"#);
        let ctx = FeatureContext {
            incident_alerts: Some(3),
            incident_rate_per_hour: Some(12.0),
            enrichment: EnrichmentSignals {
                reputation: Some(80.0),
                feed_hits: None,
                malicious_verdicts: Some(2),
            },
        };
        let v = extract(&a, &ctx);
        assert_eq!(v.len(), FEATURES.len());
        let at = |n: &str| v[FEATURES.iter().position(|f| *f == n).expect("feature")];
        assert_eq!(at("kw_malware"), 1.0);
        assert_eq!(at("kw_c2"), 1.0);
        assert_eq!(at("kw_noise"), 0.0);
        assert_eq!(at("category_group"), CategoryGroup::Malware as u8 as f64);
        assert_eq!(at("source_scope"), 0.0);
        assert_eq!(at("destination_scope"), 1.0);
        assert_eq!(at("direction"), 1.0, "private to public is outbound");
        assert_eq!(at("hour_utc"), 3.0);
        assert_eq!(at("source_port"), MISSING);
        assert_eq!(at("incident_alerts"), 3.0);
        assert_eq!(at("incident_rate_per_hour"), 12.0);
        assert_eq!(at("enrich_reputation"), 80.0);
        assert_eq!(at("enrich_feed_hits"), MISSING, "not looked up is not zero");
        assert_eq!(at("enrich_malicious_verdicts"), 2.0);
        assert_eq!(at("tactic_stage"), MISSING);
        let bare = extract(&a, &FeatureContext::default());
        let at = |n: &str| bare[FEATURES.iter().position(|f| *f == n).expect("feature")];
        assert_eq!(at("incident_alerts"), MISSING);
        assert_eq!(at("enrich_reputation"), MISSING);
    }

    #[test]
    fn keywords_match_whole_words_and_encoded_powershell() {
        let kw = |s: &str| {
            let mut a = alert(br#"{"timestamp":"2020-01-01T03:00:00Z","event_type":"alert","alert":{"signature":"x"}}"#);
            a.rule_name = Some(s.to_string());
            Keywords::of(&AlertText::of(&a))
        };
        assert!(kw("ET CNC Shadowserver Reported CnC Server").c2);
        assert!(!kw("abc2def").c2, "c2 only as a word");
        assert!(kw("powershell.exe -NoP -enc SQBFAFgA").encoded_powershell);
        assert!(kw("PowerShell -EncodedCommand ZQBjAGgAbwA=").encoded_powershell);
        assert!(!kw("powershell Get-Process").encoded_powershell);
        assert!(kw("Mimikatz sekurlsa::logonpasswords").credential_dumping);
        assert!(kw("sshd: brute force trying to get access").brute_force);
        assert!(kw("SURICATA TCPv4 invalid checksum").noise);
    }

    #[test]
    fn categories_and_tactics_are_coded() {
        assert_eq!(
            category_group("A Network Trojan was detected"),
            CategoryGroup::Malware
        );
        assert_eq!(
            category_group("Generic Protocol Command Decode"),
            CategoryGroup::Benign
        );
        assert_eq!(
            category_group("Attempted Administrator Privilege Gain"),
            CategoryGroup::Privilege
        );
        assert_eq!(
            category_group("syslog,sshd,authentication_failed"),
            CategoryGroup::Credential
        );
        let mut a = alert(br#"{"timestamp":"2020-01-01T03:00:00Z","event_type":"alert","alert":{"signature":"x"}}"#);
        a.tactics = vec!["Initial Access".into(), "Command and Control".into()];
        let v = extract(&a, &FeatureContext::default());
        let at = |n: &str| v[FEATURES.iter().position(|f| *f == n).expect("feature")];
        assert_eq!(
            at("tactic_stage"),
            12.0,
            "the furthest tactic in the kill chain"
        );
        assert_eq!(at("tactic_high_impact"), 1.0);
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
