//! What kind of attack an alert looks like (malware, brute force, C2, ...) and its ATT&CK tactic.
//! Owns the class list and the rules; rules come first (keywords, rule category, tactics the
//! producer reported) and the model's risk decides only what the rules leave open. Reads features' keyword groups so the model and the rules see the same words.

use super::alert::Alert;
use super::features::{category_group, AlertText, CategoryGroup, Keywords};
use super::tactics::{tactic_by_name, Tactic, TACTICS};
use serde::{Deserialize, Serialize};

/// The attack classes an analyst triages by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttackClass {
    Malware,
    Phishing,
    BruteForce,
    BeaconingC2,
    PrivilegeMisuse,
    SuspiciousAccess,
    ScanRecon,
    Policy,
    BenignNoise,
}

impl AttackClass {
    /// The label shown in the TUI and exports.
    pub fn label(self) -> &'static str {
        match self {
            AttackClass::Malware => "malware",
            AttackClass::Phishing => "phishing",
            AttackClass::BruteForce => "brute force",
            AttackClass::BeaconingC2 => "beaconing/C2",
            AttackClass::PrivilegeMisuse => "privilege misuse",
            AttackClass::SuspiciousAccess => "suspicious access",
            AttackClass::ScanRecon => "scan/recon",
            AttackClass::Policy => "policy",
            AttackClass::BenignNoise => "benign noise",
        }
    }

    /// The tactic a class implies when the producer names none.
    fn default_tactic(self) -> Option<&'static Tactic> {
        let id = match self {
            AttackClass::Malware => "TA0002",
            AttackClass::Phishing => "TA0001",
            AttackClass::BruteForce => "TA0006",
            AttackClass::BeaconingC2 => "TA0011",
            AttackClass::PrivilegeMisuse => "TA0004",
            AttackClass::ScanRecon => "TA0043",
            AttackClass::SuspiciousAccess | AttackClass::Policy | AttackClass::BenignNoise => {
                return None
            }
        };
        TACTICS.iter().find(|t| t.id == id)
    }
}

/// The class of one alert, with the tactic and the reason, as stored with its score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    pub class: AttackClass,
    /// ATT&CK tactic id and name, when the producer reported one or the class implies one.
    pub tactic_id: Option<String>,
    pub tactic: Option<String>,
    /// `alert` when the producer named the tactic, `class` when it is implied by the class.
    pub tactic_source: Option<String>,
    /// Why this class: the rule that fired, or the model's risk.
    pub basis: String,
}

/// Classify an alert. `risk` is the calibrated risk (0-100) when the model scored it;
/// `suspicious_from` is the risk at which an alert no rule explains counts as suspicious access
/// rather than noise (the MED band bound).
pub fn classify(a: &Alert, risk: Option<u8>, suspicious_from: u8) -> Classification {
    let kw = Keywords::of(&AlertText::of(a));
    let tactics: Vec<&'static Tactic> =
        a.tactics.iter().filter_map(|t| tactic_by_name(t)).collect();
    let has_tactic = |id: &str| tactics.iter().any(|t| t.id == id);
    let phishing_technique = a.technique_ids.iter().any(|t| t.starts_with("T1566"));
    let group = a
        .rule_category
        .as_deref()
        .filter(|c| !c.trim().is_empty())
        .map(category_group);

    let by_keyword = [
        (kw.c2, AttackClass::BeaconingC2, "C2 keyword"),
        (
            kw.phishing || phishing_technique,
            AttackClass::Phishing,
            "phishing keyword or T1566",
        ),
        (
            kw.credential_dumping && !kw.brute_force,
            AttackClass::PrivilegeMisuse,
            "credential-dumping keyword",
        ),
        (
            kw.malware || kw.encoded_powershell,
            AttackClass::Malware,
            "malware or encoded-PowerShell keyword",
        ),
        (
            kw.brute_force,
            AttackClass::BruteForce,
            "brute-force / failed-authentication keyword",
        ),
        (kw.recon, AttackClass::ScanRecon, "scan / recon keyword"),
        (
            kw.exploit,
            AttackClass::SuspiciousAccess,
            "exploit / attack keyword",
        ),
        (
            kw.privilege,
            AttackClass::PrivilegeMisuse,
            "privilege keyword",
        ),
        (kw.policy, AttackClass::Policy, "policy keyword"),
        (
            kw.noise,
            AttackClass::BenignNoise,
            "decoder / protocol-anomaly keyword",
        ),
    ]
    .into_iter()
    .find(|(hit, _, _)| *hit)
    .map(|(_, c, why)| (c, format!("rule: {why}")));

    let by_category = || {
        let c = match group? {
            CategoryGroup::Malware => AttackClass::Malware,
            CategoryGroup::Attack => AttackClass::SuspiciousAccess,
            CategoryGroup::Privilege => AttackClass::PrivilegeMisuse,
            CategoryGroup::Credential => AttackClass::BruteForce,
            CategoryGroup::Recon => AttackClass::ScanRecon,
            CategoryGroup::Policy => AttackClass::Policy,
            CategoryGroup::Benign => AttackClass::BenignNoise,
            CategoryGroup::DenialOfService | CategoryGroup::Suspicious | CategoryGroup::Other => {
                return None
            }
        };
        Some((c, "rule: category".to_string()))
    };

    let by_tactic = || {
        let c = if has_tactic("TA0011") {
            AttackClass::BeaconingC2
        } else if has_tactic("TA0006") {
            AttackClass::BruteForce
        } else if has_tactic("TA0004") {
            AttackClass::PrivilegeMisuse
        } else if has_tactic("TA0043") || has_tactic("TA0007") {
            AttackClass::ScanRecon
        } else if has_tactic("TA0002") || has_tactic("TA0003") {
            AttackClass::Malware
        } else if !tactics.is_empty() {
            AttackClass::SuspiciousAccess
        } else {
            return None;
        };
        Some((c, "rule: ATT&CK tactic".to_string()))
    };

    let (mut class, mut basis) = match by_keyword.or_else(by_category).or_else(by_tactic) {
        Some(found) => found,
        None => match risk {
            Some(r) if r >= suspicious_from => (
                AttackClass::SuspiciousAccess,
                format!("model: risk {r} >= {suspicious_from} and no rule matched"),
            ),
            Some(r) => (
                AttackClass::BenignNoise,
                format!("model: risk {r} < {suspicious_from} and no rule matched"),
            ),
            None => (
                AttackClass::SuspiciousAccess,
                "no rule matched and the alert is unscored".to_string(),
            ),
        },
    };
    // The model overrules a "noise" rule when it is confident: a decoder anomaly the forest
    // scores high looks like evasion, not noise.
    if class == AttackClass::BenignNoise {
        if let Some(r) = risk.filter(|r| *r >= suspicious_from.saturating_mul(2).min(100)) {
            class = AttackClass::SuspiciousAccess;
            basis = format!("model: risk {r} overrides the noise rule");
        }
    }

    let (tactic, source) = match tactics
        .iter()
        .copied()
        .find(|t| Some(t.id) == class.default_tactic().map(|d| d.id))
        .or_else(|| tactics.iter().copied().max_by_key(|t| t.stage))
    {
        Some(t) => (Some(t), Some("alert")),
        None => (
            class.default_tactic(),
            class.default_tactic().map(|_| "class"),
        ),
    };
    Classification {
        class,
        tactic_id: tactic.map(|t| t.id.to_string()),
        tactic: tactic.map(|t| t.name.to_string()),
        tactic_source: source.map(str::to_string),
        basis,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::normalize::{normalize_line, Parsed};

    fn suricata(sig: &str, cat: &str) -> Alert {
        let line = serde_json::json!({"timestamp":"2020-01-01T03:00:00Z","event_type":"alert",
            "alert":{"signature":sig,"category":cat}})
        .to_string();
        let Parsed::Alert(a, _) = normalize_line(line.as_bytes()).expect("parses") else {
            panic!("not an alert")
        };
        *a
    }

    #[test]
    fn rules_pick_the_class_and_tactic() {
        let c = classify(
            &suricata("ET CNC Shadowserver Reported CnC Server", ""),
            Some(90),
            30,
        );
        assert_eq!(c.class, AttackClass::BeaconingC2);
        assert_eq!(c.tactic_id.as_deref(), Some("TA0011"));
        assert_eq!(c.tactic_source.as_deref(), Some("class"));
        let c = classify(
            &suricata(
                "SURICATA TCPv4 invalid checksum",
                "Generic Protocol Command Decode",
            ),
            Some(1),
            30,
        );
        assert_eq!(c.class, AttackClass::BenignNoise);
        assert_eq!(c.tactic, None);
        let c = classify(
            &suricata(
                "ET MALWARE JAWS Webserver Unauthenticated Shell Command Execution",
                "Web Application Attack",
            ),
            Some(80),
            30,
        );
        assert_eq!(c.class, AttackClass::Malware);
        let mut a = suricata("sshd: brute force trying to get access to the system.", "");
        a.tactics = vec!["Credential Access".into(), "Lateral Movement".into()];
        let c = classify(&a, Some(70), 30);
        assert_eq!(c.class, AttackClass::BruteForce);
        assert_eq!(c.tactic.as_deref(), Some("Credential Access"));
        assert_eq!(c.tactic_source.as_deref(), Some("alert"));
    }

    #[test]
    fn the_model_decides_what_rules_leave_open() {
        let a = suricata("Match rule 5", "");
        assert_eq!(classify(&a, Some(10), 30).class, AttackClass::BenignNoise);
        let c = classify(&a, Some(45), 30);
        assert_eq!(c.class, AttackClass::SuspiciousAccess);
        assert!(c.basis.starts_with("model:"), "{}", c.basis);
        let noise = suricata("SURICATA STREAM reassembly overlap with different data", "");
        assert_eq!(
            classify(&noise, Some(95), 30).class,
            AttackClass::SuspiciousAccess
        );
    }
}
