//! The shipped playbook library against real alerts (tests/fixtures/playbooks/alerts, cut from
//! ../shared/data): each playbook proposes its steps for its alert, through the real binary with
//! the built-in playbooks and a local webhook configured. Every shipped playbook is exercised.

#[path = "common/cli.rs"]
mod cli;
mod common;

use cli::{actions, json_lines, vigil_ok};
use std::collections::BTreeSet;
use std::path::Path;

/// `(playbook, step)` pairs proposed for one alert file.
fn proposals(alert: &str) -> BTreeSet<(String, String)> {
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(home.path().join("config")).expect("mkdir");
    // A webhook on a local address that nothing listens on: steps are proposed, nothing runs.
    std::fs::write(
        home.path().join("config/config.toml"),
        "[connectors.webhook]\nurl = \"http://127.0.0.1:9/hook\"\n",
    )
    .expect("config");
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/playbooks/alerts")
        .join(alert);
    let s = json_lines(&vigil_ok(
        home.path(),
        &["ingest", &file.display().to_string()],
    ));
    assert_eq!(s[0]["alerts"], 1, "{alert}: {}", s[0]);
    actions(home.path())
        .iter()
        .map(|a| {
            (
                a["playbook"].as_str().unwrap_or("").to_string(),
                a["step"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    list.iter()
        .map(|(p, s)| (p.to_string(), s.to_string()))
        .collect()
}

#[test]
fn every_shipped_playbook_proposes_for_its_real_alert() {
    let cases: [(&str, &[(&str, &str)]); 7] = [
        (
            "c2-suricata.json",
            &[
                ("c2-contain", "block-destination"),
                ("c2-contain", "block-source"),
            ],
        ),
        (
            "brute-force-wazuh.json",
            &[
                ("brute-force", "block-source"),
                ("lateral-movement", "notify"),
                ("lateral-movement", "isolate-host"),
            ],
        ),
        (
            "lateral-wazuh.json",
            &[
                ("brute-force", "block-source"),
                ("lateral-movement", "notify"),
                ("lateral-movement", "isolate-host"),
            ],
        ),
        ("phishing-wazuh.json", &[("phishing", "notify")]),
        (
            "exfiltration-guardduty.json",
            &[
                ("data-exfiltration", "block-destination"),
                ("data-exfiltration", "notify"),
            ],
        ),
        (
            "malware-wazuh.json",
            &[
                ("malware-on-host", "isolate-host"),
                ("malware-on-host", "notify"),
            ],
        ),
        (
            "powershell-sigma.ndjson",
            &[
                ("malicious-powershell", "isolate-host"),
                ("malicious-powershell", "notify"),
            ],
        ),
    ];
    let mut exercised = BTreeSet::new();
    for (file, want) in cases {
        let got = proposals(file);
        // Other playbooks may also fire on an alert; each case checks its own.
        let got: BTreeSet<_> = got
            .into_iter()
            .filter(|(p, _)| want.iter().any(|(w, _)| w == p))
            .collect();
        assert_eq!(got, pairs(want), "{file}");
        exercised.extend(want.iter().map(|(p, _)| p.to_string()));
    }
    let shipped: BTreeSet<String> = vigil::engine::playbook::EMBEDDED
        .iter()
        .map(|(path, _)| {
            path.trim_start_matches("playbooks/")
                .trim_end_matches(".yaml")
                .to_string()
        })
        .collect();
    assert_eq!(
        exercised, shipped,
        "every shipped playbook has a real alert"
    );
}

#[test]
fn risky_steps_need_two_analysts_and_carry_their_undo() {
    let connectors =
        vigil::engine::connector::Connectors::new("/var/lib/vigil/blocklist.txt".into())
            .with_webhook("http://127.0.0.1:9/hook", std::time::Duration::from_secs(1))
            .expect("webhook");
    let books = vigil::engine::playbook::load(None, &connectors).expect("shipped playbooks load");
    for pb in &books {
        assert!(
            !pb.attack.is_empty(),
            "{} names its ATT&CK techniques",
            pb.name
        );
        for s in &pb.steps {
            if s.params.get("action").is_some_and(|a| a == "isolate") {
                assert_eq!(
                    s.approval,
                    vigil::engine::playbook::ApprovalPolicy::TwoAnalysts,
                    "{}/{}",
                    pb.name,
                    s.id
                );
                assert!(s.rollback.is_some(), "{}/{} can be released", pb.name, s.id);
            }
        }
    }
}

/// `for_each` over indicators: one proposal per public address of the real C2 alert, with
/// `${ioc.value}` bound to each; private addresses are never in `ioc.ip_public`.
#[test]
fn for_each_proposes_once_per_indicator() {
    let home = tempfile::tempdir().expect("tempdir");
    let pb = home.path().join("playbooks");
    std::fs::create_dir_all(&pb).expect("mkdir");
    std::fs::create_dir_all(home.path().join("config")).expect("mkdir");
    std::fs::write(
        pb.join("each.yaml"),
        r#"
name: block-every-public-address
description: test
match:
  all:
    - field: rule.name
      contains: Mirai
steps:
  - id: block
    title: Block one address
    for_each: ioc.ip_public
    connector: blocklist
    params:
      entry: "${ioc.value}"
"#,
    )
    .expect("playbook");
    std::fs::write(
        home.path().join("config/config.toml"),
        format!("[playbooks]\ndir = \"{}\"\n", pb.display()),
    )
    .expect("config");
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/playbooks/alerts/c2-suricata.json");
    vigil_ok(home.path(), &["ingest", &file.display().to_string()]);
    let entries: BTreeSet<String> = json_lines(&vigil_ok(home.path(), &["actions"]))
        .iter()
        .filter_map(|a| a["params"]["entry"].as_str().map(str::to_string))
        .collect();
    let want: BTreeSet<String> = ["40.110.35.23", "41.108.52.138"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(entries, want);
}
