//! Enrichment end to end through the real binary, with isolated directories and providers
//! mocked on 127.0.0.1: feeds and GeoIP at once, online answers cached (the second run is all
//! cache hits), ECS `threat.enrichments` in the export, budgets in `enrich --status`, and the
//! API key nowhere in stdout, exports, the audit trail or the log. Plus the engine task:
//! alerts are stored before they are enriched, and enrichment arrives after.

use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use wiremock::matchers::{header, method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "SECRET-VT-KEY-0123456789";

fn repo(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn vigil(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .env("VIGIL_DATA", home.join("data"))
        .env("VIGIL_CONFIG", home.join("config"))
        .env("VIGIL_CACHE", home.join("cache"))
        .env("VIGIL_VIRUSTOTAL_KEY", KEY)
        .env("VIGIL_LOG", "debug")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run vigil")
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn config(home: &Path, vt: &str, extra: &str) {
    let dir = home.join("config");
    std::fs::create_dir_all(&dir).expect("config dir");
    let geo = repo("tests/fixtures/geoip");
    std::fs::write(
        dir.join("config.toml"),
        format!(
            r#"[enrichment]
feeds_dir = "{feeds}"
geoip_city = "{geo}/GeoIP2-City-Test.mmdb"
geoip_asn = "{geo}/GeoLite2-ASN-Test.mmdb"
{extra}
[enrichment.providers.virustotal]
enabled = true
base_url = "{vt}"
per_minute = 0
per_day = 500
timeout_seconds = 5
"#,
            feeds = repo("tests/fixtures/feeds").display(),
            geo = geo.display(),
        ),
    )
    .expect("config");
}

async fn mock_virustotal() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/api/v3/(ip_addresses|domains|urls|files)/[^/]+$"))
        .and(header("x-apikey", KEY))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            br#"{"data":{"attributes":{"reputation":-5,"last_analysis_stats":{"harmless":60,"malicious":4,"suspicious":1,"undetected":20}}}}"#.to_vec(),
            "application/json",
        ))
        .mount(&server)
        .await;
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feeds_geoip_and_cached_provider_answers_reach_the_export_without_the_key() {
    let server = mock_virustotal().await;
    let home = tempfile::tempdir().expect("tempdir");
    let h = home.path().to_path_buf();
    config(&h, &server.uri(), "");
    let run = |args: &'static [&'static str]| {
        let h = h.clone();
        tokio::task::spawn_blocking(move || vigil(&h, args))
    };
    let alerts = repo("tests/fixtures/feodo-c2-alert.json");
    let real = repo("tests/fixtures/ioc/real-alerts.jsonl");
    let h2 = h.clone();
    let ingest = tokio::task::spawn_blocking(move || {
        vigil(
            &h2,
            &[
                "ingest",
                &alerts.display().to_string(),
                &real.display().to_string(),
            ],
        )
    })
    .await
    .expect("join");
    ok(&ingest);

    let first: Value =
        serde_json::from_str(&ok(&run(&["enrich"]).await.expect("join"))).expect("summary");
    assert_eq!(first["alerts"], 13);
    assert_eq!(first["feed_hits"], 1, "{first}");
    assert_eq!(
        first["results_by_source"]["feodotracker-ipblocklist.csv"],
        1
    );
    let asked = server.received_requests().await.expect("recorded").len() as u64;
    assert!(asked > 0, "public indicators went to the mock");
    let n = |v: &Value, k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"));
    // Two alerts asking about the same indicator at once share one request.
    assert!(n(&first, "cache_misses") >= asked, "{first}");
    assert_eq!(
        n(&first, "online_answers"),
        n(&first, "cache_misses") + n(&first, "cache_hits")
    );

    let second: Value = serde_json::from_str(&ok(&run(&["enrich", "--all"]).await.expect("join")))
        .expect("summary");
    assert_eq!(second["cache_misses"], 0, "{second}");
    assert_eq!(second["cache_hit_rate"], 1.0);
    assert_eq!(n(&second, "cache_hits"), n(&first, "online_answers"));
    assert_eq!(
        server.received_requests().await.expect("recorded").len() as u64,
        asked,
        "no new request"
    );

    let export = ok(&run(&["export"]).await.expect("join"));
    assert!(!export.contains(KEY), "the key is not exported");
    let docs: Vec<Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let c2 = docs
        .iter()
        .find(|d| d["destination"]["ip"] == "192.9.135.73")
        .expect("the Feodo alert");
    let hits = c2["threat"]["enrichments"].as_array().expect("enrichments");
    let feed = hits
        .iter()
        .find(|e| e["indicator"]["provider"] == "feodotracker-ipblocklist.csv")
        .expect("feed hit");
    assert_eq!(feed["indicator"]["ip"], "192.9.135.73");
    assert_eq!(feed["matched"]["field"], "destination.ip");
    assert_eq!(feed["matched"]["type"], "indicator_match_rule");
    assert_eq!(feed["vigil"]["feed_date"], "2024-04-04");
    assert_eq!(feed["vigil"]["detail"]["malware"], "Pikabot");
    let vt = hits
        .iter()
        .find(|e| {
            e["indicator"]["provider"] == "virustotal" && e["indicator"]["ip"] == "192.9.135.73"
        })
        .expect("provider answer");
    assert_eq!(vt["vigil"]["verdict"], "malicious");
    assert!(vt["vigil"]["age_seconds"].as_i64().is_some());
    assert_eq!(c2["vigil"]["enrichment"]["feed_hits"], 1);
    let malicious = hits
        .iter()
        .filter(|e| e["vigil"]["source_kind"] == "provider" && e["vigil"]["verdict"] == "malicious")
        .count();
    assert!(
        malicious >= 2,
        "the address, the Host header's domain and the URL: {hits:?}"
    );
    assert_eq!(c2["vigil"]["enrichment"]["malicious_verdicts"], malicious);

    let status = ok(&run(&["enrich", "--status"]).await.expect("join"));
    let vt_status: Value = status
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json"))
        .find(|v| v["provider"] == "virustotal")
        .expect("virustotal line");
    assert_eq!(vt_status["key"], "present");
    assert_eq!(vt_status["budget"][0]["limit"], "500/day");
    assert_eq!(vt_status["budget"][0]["used"].as_u64(), Some(asked));
    assert!(!status.contains(KEY));

    let audit = ok(&run(&["audit"]).await.expect("join"));
    assert!(!audit.contains(KEY), "the key is not in the audit trail");
    let log = std::fs::read_to_string(h.join("data/vigil.log")).unwrap_or_default();
    assert!(!log.is_empty(), "debug logging was on");
    assert!(!log.contains(KEY), "the key is not logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_readable_secrets_file_is_refused_and_offline_sends_nothing() {
    let server = mock_virustotal().await;
    let home = tempfile::tempdir().expect("tempdir");
    let h = home.path().to_path_buf();
    let secrets = h.join("secrets.toml");
    std::fs::write(&secrets, "virustotal = \"from-file\"\n").expect("write");
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    config(
        &h,
        &server.uri(),
        &format!("secrets_file = \"{}\"\noffline = true", secrets.display()),
    );
    let h2 = h.clone();
    let out = tokio::task::spawn_blocking(move || vigil(&h2, &["enrich", "--status"]))
        .await
        .expect("join");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mode 0644 lets other users read the API keys; run `chmod 600"),
        "{err}"
    );
    assert!(!err.contains("from-file"));
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let alerts = repo("tests/fixtures/feodo-c2-alert.json")
        .display()
        .to_string();
    let h3 = h.clone();
    let (ingest, enrich) = tokio::task::spawn_blocking(move || {
        (vigil(&h3, &["ingest", &alerts]), vigil(&h3, &["enrich"]))
    })
    .await
    .expect("join");
    ok(&ingest);
    let s: Value = serde_json::from_str(&ok(&enrich)).expect("summary");
    assert_eq!(s["feed_hits"], 1, "offline sources still answer");
    assert_eq!(s["online_answers"], 0);
    assert!(
        server
            .received_requests()
            .await
            .expect("recorded")
            .is_empty(),
        "offline: nothing sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_stores_first_and_enriches_after() {
    use std::sync::Arc;
    use std::time::Duration;
    use vigil::engine::connector::Connectors;
    use vigil::engine::enrich::secrets::Secrets;
    use vigil::engine::enrich::task::EnrichSetup;
    use vigil::engine::model::Model;
    use vigil::engine::pipeline::Pipeline;
    use vigil::engine::score::{Bands, Scorer};
    use vigil::engine::{self, store, EngineConfig};

    let home = tempfile::tempdir().expect("tempdir");
    let watched = home.path().join("eve.json");
    std::fs::copy(repo("tests/fixtures/feodo-c2-alert.json"), &watched).expect("copy");
    let db = home.path().join("vigil.db");
    let connectors = Connectors::new(home.path().join("blocklist.txt"));
    let pipeline = Pipeline {
        scorer: Scorer::new(Model::embedded(), Bands::default()),
        playbooks: Arc::new(Vec::new()),
        incidents: vigil::engine::pipeline::IncidentSource::new(None, Vec::new()),
        connectors: Arc::new(connectors),
    };
    let mut h = engine::start(EngineConfig {
        db: db.clone(),
        watch: vec![watched],
        format: Default::default(),
        format_settings: vigil::engine::format::FormatSettings::builtin(),
        pipeline,
        incident_rules: Vec::new(),
        actor: vigil::identity::Actor::current(),
        loaded: serde_json::json!({}),
        enrichment: Some(EnrichSetup {
            offline: true,
            feeds_dir: Some(repo("tests/fixtures/feeds")),
            geoip_city: None,
            geoip_country: None,
            geoip_asn: None,
            providers: Vec::new(),
            secrets: Secrets::default(),
        }),
    })
    .expect("engine");
    let reader = store::open(&db).expect("reader");
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            h.db_changed.changed().await.expect("engine running");
            let detail = store::alert_detail(&reader, 1).expect("read");
            if let Some(d) = detail.filter(|d| !d.enrichment.is_empty()) {
                break d;
            }
        }
    })
    .await
    .expect("enrichment arrived");
    let hit = &found.enrichment[0];
    assert_eq!(hit.source, "feodotracker-ipblocklist.csv");
    assert_eq!(hit.indicator, "192.9.135.73");
    assert_eq!(hit.feed_date.as_deref(), Some("2024-04-04"));
    assert!(found.score.risk().is_some(), "re-scored, still scored");
    h.shutdown().await;
}
