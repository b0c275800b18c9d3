//! The risk model end to end: the shipped model's ranking on the shipped samples through the
//! real scorer, explanations that add up to the calibrated risk, training on CSV / NSL-KDD-shaped
//! tables and on analyst dispositions, `vigil eval`, and bad models refused with clear errors.
//! Forests trained here are tiny (a few trees) so CI stays fast.

mod common;
use common::vigil;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;
use vigil::engine::alert::Alert;
use vigil::engine::features::FeatureContext;
use vigil::engine::incident;
use vigil::engine::model::Model;
use vigil::engine::normalize::{normalize_line, Parsed};
use vigil::engine::score::{Bands, Score, Scorer};

fn repo(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn ok_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().expect("a line")).expect("JSON")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

fn sample_alerts() -> Vec<Alert> {
    let mut out = Vec::new();
    for f in ["samples/suricata-eve.json", "samples/wazuh-alerts.json"] {
        for line in std::fs::read_to_string(repo(f)).expect("sample").lines() {
            if let Ok(Parsed::Alert(a, _)) = normalize_line(line.as_bytes()) {
                out.push(*a);
            }
        }
    }
    out
}

/// Score the samples as `vigil score` does: incident figures from the files in time order.
fn scored_samples() -> Vec<(Alert, Score, FeatureContext)> {
    let scorer = Scorer::new(Model::embedded(), Bands::default());
    assert_eq!(scorer.model_error(), None);
    let alerts = sample_alerts();
    let refs: Vec<&Alert> = alerts.iter().collect();
    let figs = incident::figures_in_time_order(
        &refs,
        &vigil::config::Config::embedded()
            .expect("config")
            .incidents
            .rules,
    );
    alerts
        .into_iter()
        .zip(figs)
        .map(|(a, f)| {
            let ctx = FeatureContext::with_incident(f);
            let s = scorer.score(&a, &ctx);
            (a, s, ctx)
        })
        .collect()
}

/// Rule names (Suricata signature, Wazuh description) of the training split of the shipped
/// model's data: what the model has seen.
fn trained_rule_names() -> std::collections::HashSet<String> {
    use std::io::Read;
    let gz = std::fs::read(repo("models/training/alerts-labelled.jsonl.gz")).expect("training set");
    let mut text = String::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut text)
        .expect("gunzip");
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|d| d["split"] == "train")
        .filter_map(|d| {
            let a = &d["alert"];
            a["alert"]["signature"]
                .as_str()
                .or(a["rule"]["description"].as_str())
                .map(str::to_string)
        })
        .collect()
}

#[test]
fn shipped_model_ranks_trojan_c2_and_credential_theft_far_above_checksum_noise() {
    let scored = scored_samples();
    let seen = trained_rule_names();
    let name = |a: &Alert| a.rule_name.clone().unwrap_or_default();
    let is_attack = |a: &Alert| {
        let n = name(a).to_uppercase();
        n.starts_with("ET MALWARE")
            || n.starts_with("ET MOBILE_MALWARE")
            || n.starts_with("ET CNC")
            || n.starts_with("MALWARE-CNC")
            || a.tactics.iter().any(|t| t == "Credential Access")
    };
    let noise: Vec<(String, u8, f64)> = scored
        .iter()
        .filter(|(a, _, _)| {
            let n = name(a);
            n.starts_with("SURICATA") && (n.contains("checksum") || n.contains("STREAM"))
        })
        .map(|(a, s, _)| (name(a), s.risk().expect("scored"), probability(s)))
        .collect();
    let attacks = scored.iter().filter(|(a, _, _)| is_attack(a));
    let (known, unseen): (Vec<_>, Vec<_>) = attacks
        .map(|(a, s, _)| (name(a), s.risk().expect("scored"), probability(s)))
        .partition(|(n, _, _)| seen.contains(n));
    assert!(known.len() >= 10, "{known:?}");
    assert!(noise.len() >= 10, "{noise:?}");
    let highest = noise.iter().max_by_key(|m| m.1).expect("some");
    assert!(
        highest.1 < Bands::default().medium,
        "noise stays LOW: {highest:?}"
    );
    for k in &known {
        assert!(
            k.1 >= highest.1.saturating_add(50),
            "{k:?} must be 50+ risk points above the highest noise {highest:?}"
        );
    }
    // Signatures the model never saw (ET CNC Shadowserver: severity 3, no category, both of
    // its labelled rows fall in the held-out split) are only required to outrank all noise.
    let top_noise = noise.iter().map(|n| n.2).fold(0.0, f64::max);
    for u in &unseen {
        assert!(
            u.2 > top_noise,
            "{u:?} must outrank every noise alert ({top_noise})"
        );
    }
}

fn probability(s: &Score) -> f64 {
    match s {
        Score::Scored { probability, .. } => *probability,
        Score::Unscored { .. } => f64::NAN,
    }
}

#[test]
fn every_explanation_adds_up_to_the_calibrated_risk_and_carries_a_class() {
    let scorer = Scorer::new(Model::embedded(), Bands::default());
    for (a, s, ctx) in scored_samples() {
        let Score::Scored {
            probability,
            base_points,
            top,
            recommendation,
            attack,
            ..
        } = &s
        else {
            panic!("unscored: {s:?}")
        };
        let (base, all) = scorer.contributions(&a, &ctx).expect("model");
        assert!((base - base_points).abs() < 1e-9);
        let sum: f64 = base + all.iter().sum::<f64>();
        assert!(
            (sum - probability * 100.0).abs() < 1e-6,
            "{:?}: base {base} + contributions = {sum}, risk {}",
            a.rule_name,
            probability * 100.0
        );
        for w in top.windows(2) {
            assert!(w[0].points.abs() >= w[1].points.abs(), "largest first");
        }
        let band = Bands::default().band(s.risk().expect("risk"));
        assert_eq!(
            *recommendation,
            vigil::engine::score::Recommendation::for_band(band)
        );
        assert!(attack.is_some());
    }
}

/// A small synthetic table: `proto` and `bytes` decide the label, `noise` does not.
fn write_csv(path: &Path, rows: usize) {
    let mut text = String::from("proto,bytes,noise,class\n");
    for i in 0..rows {
        let proto = ["tcp", "udp", "icmp"][i % 3];
        let bytes = (i * 37) % 1000;
        let attack = proto == "icmp" || bytes > 700;
        text.push_str(&format!(
            "{proto},{bytes},{},{}\n",
            (i * 13) % 7,
            if attack { "smurf" } else { "normal" }
        ));
    }
    std::fs::write(path, text).expect("write csv");
}

#[test]
fn csv_training_records_its_encoding_and_eval_applies_it() {
    let home = tempfile::tempdir().expect("tempdir");
    let data = home.path().join("train.csv");
    write_csv(&data, 300);
    let out_dir = home.path().join("model");
    let d = data.display().to_string();
    let o = out_dir.display().to_string();
    let trained = ok_json(&vigil(
        home.path(),
        &[
            "train", "--data", &d, "--label", "class", "--benign", "normal", "--out", &o,
            "--trees", "4", "--name", "csv-test",
        ],
    ));
    assert_eq!(
        trained["features"], 5,
        "proto one-hot (3) + bytes + noise: {trained}"
    );
    assert_eq!(trained["test_rows"], 60);
    let card: toml::Table =
        toml::from_str(&std::fs::read_to_string(out_dir.join("model.toml")).expect("card"))
            .expect("toml");
    assert_eq!(card["input"]["format"].as_str(), Some("csv"));
    assert_eq!(card["input"]["label_column"].as_str(), Some("class"));
    let cols = card["input"]["columns"].as_array().expect("columns");
    assert_eq!(cols[0]["encoding"].as_str(), Some("one_hot"));
    assert!(card["calibration"]["method"].as_str().is_some());
    assert!(card["explanation"]
        .as_str()
        .expect("note")
        .contains("calibrated risk"));

    let test = home.path().join("test.csv");
    write_csv(&test, 90);
    let t = test.display().to_string();
    let e = ok_json(&vigil(home.path(), &["eval", "--model", &o, "--data", &t]));
    for k in [
        "roc_auc",
        "pr_auc",
        "precision",
        "recall",
        "f1",
        "brier",
        "threshold",
    ] {
        assert!(e[k].as_f64().is_some(), "{k} in {e}");
    }
    assert_eq!(e["rows"], 90);
    assert!(e["roc_auc"].as_f64().expect("auc") > 0.9, "{e}");
    let c = e["confusion"].as_array().expect("confusion");
    assert_eq!(c.len(), 2);

    // A table model cannot score alerts, and says so.
    let wrong = vigil(
        home.path(),
        &["eval", "--model", &o, "--data", &t, "--format", "alerts"],
    );
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        stderr(&wrong).contains("mismatched model"),
        "{}",
        stderr(&wrong)
    );
    let score = vigil(
        home.path(),
        &[
            "score",
            "--model",
            &o,
            &repo("tests/fixtures/suricata-alert.json")
                .display()
                .to_string(),
        ],
    );
    assert_eq!(score.status.code(), Some(1));
    assert!(
        stderr(&score).contains("mismatched model"),
        "{}",
        stderr(&score)
    );

    // Data lacking a column the model reads.
    let other = home.path().join("other.csv");
    std::fs::write(&other, "proto,class\ntcp,normal\n").expect("write");
    let lacking = vigil(
        home.path(),
        &[
            "eval",
            "--model",
            &o,
            "--data",
            &other.display().to_string(),
        ],
    );
    assert_eq!(lacking.status.code(), Some(1));
    assert!(
        stderr(&lacking).contains("reads column `bytes`"),
        "{}",
        stderr(&lacking)
    );
}

#[test]
fn nsl_kdd_layout_trains_on_41_features_and_reports_bad_rows_by_line() {
    let home = tempfile::tempdir().expect("tempdir");
    let data = home.path().join("kdd.txt");
    let mut text = String::new();
    for i in 0..200usize {
        let attack = i % 4 == 0;
        let proto = if attack {
            "icmp"
        } else {
            ["tcp", "udp"][i % 2]
        };
        let service = ["http", "private", "ecr_i"][i % 3];
        let count = if attack { 400 + i % 50 } else { i % 20 };
        text.push_str(&format!(
            "0,{proto},{service},SF,{},0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,0,0,{count},{count},0.00,0.00,0.00,0.00,1.00,0.00,0.00,255,{},0.5,0.0,0.5,0.0,0.0,0.0,0.0,0.0,{},{}\n",
            i * 3,
            i % 255,
            if attack { "smurf" } else { "normal" },
            i % 21
        ));
    }
    text.push_str("0,tcp,http,SF\n");
    std::fs::write(&data, &text).expect("write");
    let o = home.path().join("m").display().to_string();
    let d = data.display().to_string();
    let out = vigil(
        home.path(),
        &[
            "train", "--format", "nsl-kdd", "--data", &d, "--out", &o, "--trees", "3",
        ],
    );
    let trained = ok_json(&out);
    assert_eq!(trained["features"], 41);
    assert_eq!(trained["bad_rows"], 1);
    assert!(
        stderr(&out).contains(&format!(
            "skipped {d}:201: expected 42 or 43 fields, found 4"
        )),
        "{}",
        stderr(&out)
    );
    let e = ok_json(&vigil(
        home.path(),
        &["eval", "--model", &o, "--data", &d, "--split", "test"],
    ));
    assert_eq!(e["rows"], 40, "every fifth row was held out");

    // Mostly garbage: training stops and names the first bad row.
    std::fs::write(&data, "x\ny\nz\n").expect("write");
    let bad = vigil(
        home.path(),
        &[
            "train", "--format", "nsl-kdd", "--data", &d, "--out", &o, "--trees", "3",
        ],
    );
    assert_eq!(bad.status.code(), Some(1));
    let err = stderr(&bad);
    assert!(err.contains("3 of 3 rows are bad"), "{err}");
    assert!(err.contains(&format!("{d}:1:")), "{err}");
}

#[test]
fn dispositions_are_audited_and_train_a_model_from_the_database() {
    let home = tempfile::tempdir().expect("tempdir");
    let eve = repo("samples/suricata-eve.json").display().to_string();
    ok_json(&vigil(home.path(), &["ingest", &eve]));
    let export: Vec<Value> = String::from_utf8_lossy(&vigil(home.path(), &["export"]).stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let first = &export[0]["vigil"];
    assert!(first["attack_class"].as_str().is_some(), "{first}");
    assert!(first["recommendation"].as_str().is_some(), "{first}");
    // Label the highest- and lowest-risk alerts as the analyst would.
    let mut by_risk: Vec<(i64, u64)> = export
        .iter()
        .map(|d| {
            (
                d["vigil"]["alert_id"].as_i64().expect("id"),
                d["vigil"]["risk"].as_u64().expect("risk"),
            )
        })
        .collect();
    by_risk.sort_by_key(|(_, r)| *r);
    let (low, high) = (&by_risk[..6], &by_risk[by_risk.len() - 6..]);
    for (id, _) in high {
        let row = ok_json(&vigil(
            home.path(),
            &[
                "disposition",
                &id.to_string(),
                "tp",
                "--reason",
                "confirmed C2 on the proxy",
            ],
        ));
        assert_eq!(row["verdict"], "tp");
    }
    for (i, (id, _)) in low.iter().enumerate() {
        let v = if i % 2 == 0 { "fp" } else { "benign" };
        ok_json(&vigil(
            home.path(),
            &[
                "disposition",
                &id.to_string(),
                v,
                "--reason",
                "checksum offload",
            ],
        ));
    }
    let audit: Vec<Value> = String::from_utf8_lossy(&vigil(home.path(), &["audit"]).stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let dispositions: Vec<&Value> = audit
        .iter()
        .filter(|r| r["kind"] == "disposition")
        .collect();
    assert_eq!(dispositions.len(), 12);
    assert_eq!(dispositions[0]["reason"], "confirmed C2 on the proxy");
    assert_eq!(dispositions[0]["detail"]["after"], "tp");
    assert!(ok_json(&vigil(home.path(), &["audit", "verify"]))["intact"] == true);

    let missing = vigil(
        home.path(),
        &["disposition", "999999", "tp", "--reason", "x"],
    );
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(stderr(&missing), "vigil: alert 999999 does not exist");
    let bad = vigil(home.path(), &["disposition", "1", "maybe", "--reason", "x"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("not one of tp, fp, benign"));

    let o = home.path().join("from-db").display().to_string();
    let trained = ok_json(&vigil(
        home.path(),
        &[
            "train",
            "--from-db",
            "--out",
            &o,
            "--trees",
            "3",
            "--holdout-every",
            "0",
        ],
    ));
    assert_eq!(trained["train_rows"], 12);
    let card = std::fs::read_to_string(Path::new(&o).join("model.toml")).expect("card");
    assert!(card.contains("(dispositions)"), "{card}");
}

#[test]
fn a_mismatched_model_is_an_error_at_score_and_leaves_ingested_alerts_unscored() {
    let home = tempfile::tempdir().expect("tempdir");
    let dir = home.path().join("mismatched");
    std::fs::create_dir_all(&dir).expect("mkdir");
    for f in ["model.toml", "forest.json"] {
        let text = std::fs::read_to_string(repo("models/default").join(f)).expect("read");
        std::fs::write(dir.join(f), text.replace("\"kw_c2\"", "\"kw_cnc\"")).expect("write");
    }
    let d = dir.display().to_string();
    let fixture = repo("tests/fixtures/suricata-alert.json")
        .display()
        .to_string();
    let out = vigil(home.path(), &["score", "--model", &d, &fixture]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("mismatched model: feature list differs"),
        "{err}"
    );
    assert!(err.contains("kw_cnc"), "{err}");
    let out = vigil(
        home.path(),
        &["score", "--model", "/nonexistent/model", &fixture],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("/nonexistent/model/model.toml: cannot read"),
        "{}",
        stderr(&out)
    );

    std::fs::create_dir_all(home.path().join("config")).expect("mkdir");
    std::fs::write(
        home.path().join("config/config.toml"),
        format!("[model]\npath = {:?}\n", d),
    )
    .expect("write");
    let s = ok_json(&vigil(home.path(), &["ingest", &fixture]));
    assert_eq!(s["alerts"], 3, "kept, not dropped: {s}");
    let export = String::from_utf8_lossy(&vigil(home.path(), &["export"]).stdout).to_string();
    for l in export.lines() {
        let doc: Value = serde_json::from_str(l).expect("json");
        assert!(doc["vigil"]["risk"].is_null());
        assert!(
            doc["vigil"]["unscored_reason"]
                .as_str()
                .expect("reason")
                .contains("mismatched model"),
            "{doc}"
        );
        assert!(
            doc["vigil"]["attack_class"].as_str().is_some(),
            "rules still classify"
        );
    }
}

#[test]
fn live_incident_figures_continue_the_stored_incident() {
    let home = tempfile::tempdir().expect("tempdir");
    let line = |minute: u32, src: &str| {
        format!(
            r#"{{"timestamp":"2024-05-01T10:{minute:02}:00Z","event_type":"alert","src_ip":"{src}","dest_ip":"10.0.0.5","proto":"TCP","alert":{{"signature_id":2010935,"signature":"ET SCAN Suspicious inbound to MSSQL port 1433","category":"Potentially Bad Traffic","severity":2}}}}"#
        )
    };
    let file = home.path().join("eve.json");
    std::fs::write(
        &file,
        format!("{}\n{}\n", line(0, "203.0.113.7"), line(1, "203.0.113.7")),
    )
    .expect("write");
    let s = ok_json(&vigil(
        home.path(),
        &["ingest", &file.display().to_string()],
    ));
    assert_eq!(s["alerts"], 2);
    let source = vigil::engine::pipeline::IncidentSource::new(
        Some(home.path().join("data/vigil.db")),
        vigil::config::Config::embedded()
            .expect("config")
            .incidents
            .rules,
    );
    let parse = |l: &str| {
        let Parsed::Alert(a, _) = normalize_line(l.as_bytes()).expect("parses") else {
            panic!("not an alert")
        };
        *a
    };
    let mut batch = source.batch();
    let third = batch.observe(&parse(&line(3, "203.0.113.7")));
    assert_eq!(third.alerts, 3, "two stored + this one");
    assert!(
        (third.rate_per_hour - 12.0).abs() < 1e-9,
        "3 alerts over a 15-minute window"
    );
    assert_eq!(batch.observe(&parse(&line(4, "203.0.113.7"))).alerts, 4);
    assert_eq!(
        batch.observe(&parse(&line(3, "198.51.100.9"))).alerts,
        1,
        "another source"
    );
    let mut later = source.batch();
    assert_eq!(
        later.observe(&parse(&line(59, "203.0.113.7"))).alerts,
        1,
        "outside the window"
    );
}
