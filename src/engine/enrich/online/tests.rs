//! The online client: quotas on paused time (no real waiting), priority, Retry-After, the
//! cache's rules, and each provider's documented answers from local mock servers (127.0.0.1).

use super::*;
use crate::engine::enrich::Verdict;
use std::net::IpAddr;
use wiremock::matchers::{body_string_contains, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn settings(id: ProviderId, limits: Vec<Limit>) -> ProviderSettings {
    ProviderSettings {
        id,
        base_url: url::Url::parse("http://127.0.0.1:9/").expect("url"),
        limits,
        timeout: Duration::from_millis(400),
        concurrency: 1,
        ttl: Duration::from_secs(3600),
        negative_ttl: Duration::from_secs(60),
        retries: 0,
    }
}

fn ip(s: &str) -> Ioc {
    Ioc::ip(s.parse::<IpAddr>().expect("ip"), "destination.ip")
}

/// A transport that answers from a script and logs when each request was sent (tokio time).
#[derive(Default)]
struct Fake {
    log: Mutex<Vec<(Instant, String)>>,
    script: Mutex<HashMap<String, VecDeque<Result<Answer, FetchError>>>>,
    /// Answer at once (no simulated network time) when set.
    instant: bool,
}

impl Fake {
    fn then(&self, value: &str, r: Result<Answer, FetchError>) {
        self.script
            .lock()
            .expect("lock")
            .entry(value.to_string())
            .or_default()
            .push_back(r);
    }
    fn sent(&self) -> Vec<(Instant, String)> {
        self.log.lock().expect("lock").clone()
    }
}

fn clean() -> Answer {
    Answer {
        verdict: Verdict::Clean,
        score: Some(0),
        detail: Value::Null,
    }
}

fn bad() -> Answer {
    Answer {
        verdict: Verdict::Malicious,
        score: Some(97),
        detail: Value::Null,
    }
}

impl Transport for Fake {
    fn fetch(&self, _p: ProviderId, ioc: &Ioc) -> FetchFuture {
        self.log
            .lock()
            .expect("lock")
            .push((Instant::now(), ioc.value.clone()));
        let r = self
            .script
            .lock()
            .expect("lock")
            .get_mut(&ioc.value)
            .and_then(VecDeque::pop_front)
            .unwrap_or_else(|| Ok(bad()));
        let instant = self.instant;
        Box::pin(async move {
            if !instant {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            r
        })
    }
}

use serde_json::Value;

fn client(fake: &Arc<Fake>, s: ProviderSettings) -> Online {
    Online::start(false, vec![s], |_| true, fake.clone(), None, None)
}

/// Public addresses from the Wazuh sample alerts' `data.srcip`.
fn public_ips(n: usize) -> Vec<Ioc> {
    (0..n)
        .map(|i| ip(&format!("45.75.196.{}", 10 + i)))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn quota_is_never_exceeded_and_no_lookup_is_lost() {
    let fake = Arc::new(Fake::default());
    let vt = client(
        &fake,
        settings(
            ProviderId::VirusTotal,
            vec![Limit::per_minute(4), Limit::per_day(10)],
        ),
    );
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for i in public_ips(12) {
        let c = vt.clone();
        set.spawn(async move { c.lookup(ProviderId::VirusTotal, &i, Some(1)).await });
    }
    let mut answers = 0;
    while let Some(r) = set.join_next().await {
        match r.expect("task") {
            Outcome::Answer { cached: false, .. } => answers += 1,
            other => panic!("lookup lost or failed: {other:?}"),
        }
    }
    assert_eq!(answers, 12, "every lookup answered");
    let sent = fake.sent();
    assert_eq!(sent.len(), 12, "one request per lookup");
    for (i, (t, _)) in sent.iter().enumerate() {
        let in_minute = sent[i..]
            .iter()
            .filter(|(u, _)| *u - *t < Duration::from_secs(60))
            .count();
        assert!(
            in_minute <= 4,
            "{in_minute} requests within 60 s of request {i}"
        );
        let in_day = sent[i..]
            .iter()
            .filter(|(u, _)| *u - *t < Duration::from_secs(86_400))
            .count();
        assert!(
            in_day <= 10,
            "{in_day} requests within a day of request {i}"
        );
    }
    // Ten fit the day (three minutes of four, four, two); the last two waited for tomorrow.
    assert!(sent[9].0 - start < Duration::from_secs(180));
    assert!(sent[10].0 - start >= Duration::from_secs(86_400));
    let st = &vt.status()[0];
    assert_eq!(st.queue_depth, 0);
    assert_eq!(st.sent, 12);
}

#[tokio::test(start_paused = true)]
async fn the_focused_incident_goes_first() {
    // Answers take no virtual time here, so the waits below need only the scheduler.
    let fake = Arc::new(Fake {
        instant: true,
        ..Fake::default()
    });
    let vt = client(
        &fake,
        settings(ProviderId::VirusTotal, vec![Limit::per_minute(2)]),
    );
    let mut set = tokio::task::JoinSet::new();
    for i in public_ips(6) {
        let c = vt.clone();
        set.spawn(async move { c.lookup(ProviderId::VirusTotal, &i, Some(1)).await });
    }
    // Let the first two go out and the rest queue behind the budget.
    while fake.sent().len() < 2 {
        tokio::task::yield_now().await;
    }
    let focused = ip("141.98.81.37");
    let c = vt.clone();
    let f = focused.clone();
    set.spawn(async move { c.lookup(ProviderId::VirusTotal, &f, Some(2)).await });
    while vt.status()[0].queue_depth < 5 {
        tokio::task::yield_now().await;
    }
    vt.set_focus(Some(2));
    while set.join_next().await.is_some() {}
    let order: Vec<String> = fake.sent().into_iter().map(|(_, v)| v).collect();
    assert_eq!(order[2], "141.98.81.37", "{order:?}");
    assert_eq!(order.len(), 7);
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_and_the_lookup_survives() {
    let fake = Arc::new(Fake::default());
    fake.then(
        "45.75.196.10",
        Err(FetchError::RateLimited(Some(Duration::from_secs(30)))),
    );
    fake.then("45.75.196.10", Ok(bad()));
    let vt = client(&fake, settings(ProviderId::VirusTotal, vec![]));
    let out = vt
        .lookup(ProviderId::VirusTotal, &public_ips(1)[0], None)
        .await;
    assert!(
        matches!(out, Outcome::Answer { cached: false, .. }),
        "{out:?}"
    );
    let sent = fake.sent();
    assert_eq!(sent.len(), 2);
    assert!(
        sent[1].0 - sent[0].0 >= Duration::from_secs(30),
        "waited for Retry-After"
    );
    assert_eq!(vt.status()[0].rate_limited, 1);
}

#[tokio::test(start_paused = true)]
async fn refused_key_stops_the_provider_and_fails_the_queue() {
    let fake = Arc::new(Fake::default());
    for i in public_ips(3) {
        fake.then(&i.value, Err(FetchError::Unauthorized(401)));
    }
    let vt = client(&fake, settings(ProviderId::VirusTotal, vec![]));
    let mut set = tokio::task::JoinSet::new();
    for i in public_ips(3) {
        let c = vt.clone();
        set.spawn(async move { c.lookup(ProviderId::VirusTotal, &i, None).await });
    }
    while let Some(r) = set.join_next().await {
        assert!(matches!(r.expect("task"), Outcome::Failed(ref w) if w.contains("401")));
    }
    assert_eq!(fake.sent().len(), 1, "no more requests after a 401");
    assert!(vt.status()[0].disabled.is_some());
}

#[tokio::test(start_paused = true)]
async fn transient_errors_retry_with_backoff_then_fail_without_caching() {
    let fake = Arc::new(Fake::default());
    fake.then("45.75.196.10", Err(FetchError::Server(503)));
    fake.then("45.75.196.10", Err(FetchError::Timeout));
    fake.then("45.75.196.10", Err(FetchError::Server(502)));
    let mut s = settings(ProviderId::VirusTotal, vec![]);
    s.retries = 1;
    let vt = client(&fake, s);
    let target = &public_ips(1)[0];
    let out = vt.lookup(ProviderId::VirusTotal, target, None).await;
    assert!(
        matches!(out, Outcome::Failed(ref w) if w == "timed out"),
        "{out:?}"
    );
    let sent = fake.sent();
    assert_eq!(sent.len(), 2, "one retry");
    assert!(sent[1].0 - sent[0].0 >= BACKOFF);
    // Not cached: the next lookup asks again, gets a 502, and its retry gets an answer.
    let again = vt.lookup(ProviderId::VirusTotal, target, None).await;
    assert_eq!(fake.sent().len(), 4);
    assert!(
        matches!(again, Outcome::Answer { cached: false, .. }),
        "{again:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn identical_lookups_in_flight_share_one_request() {
    let fake = Arc::new(Fake::default());
    let vt = client(&fake, settings(ProviderId::VirusTotal, vec![]));
    let target = public_ips(1).remove(0);
    let (a, b) = tokio::join!(
        vt.lookup(ProviderId::VirusTotal, &target, Some(1)),
        vt.lookup(ProviderId::VirusTotal, &target, Some(2)),
    );
    assert!(matches!(a, Outcome::Answer { .. }) && matches!(b, Outcome::Answer { .. }));
    assert_eq!(fake.sent().len(), 1);
    let c = vt.lookup(ProviderId::VirusTotal, &target, None).await;
    assert!(matches!(c, Outcome::Answer { cached: true, .. }));
    assert_eq!(vt.cache_stats(), CacheStats { hits: 1, misses: 2 });
}

#[tokio::test(start_paused = true)]
async fn private_reserved_and_offline_never_leave() {
    let fake = Arc::new(Fake::default());
    let vt = client(&fake, settings(ProviderId::VirusTotal, vec![]));
    for v in [
        "10.0.0.1",
        "192.168.2.3",
        "100.64.1.1",
        "127.0.0.1",
        "169.254.1.1",
        "224.0.0.251",
        "192.0.2.1",
        "fe80::1",
        "fd00::1",
        "2001:db8::1",
    ] {
        let out = vt.lookup(ProviderId::VirusTotal, &ip(v), None).await;
        assert!(matches!(out, Outcome::Skipped(_)), "{v}: {out:?}");
    }
    let host = Ioc::new(
        IocKind::HostName,
        "ip-10-0-0-180.us-west-1.compute.internal".into(),
        "host.name",
    );
    assert!(matches!(
        vt.lookup(ProviderId::VirusTotal, &host, None).await,
        Outcome::Skipped(_)
    ));
    let internal = Ioc::new(
        IocKind::Url,
        "http://192.168.13.31:8080/log4shell/".into(),
        "http.http_refer",
    );
    assert!(matches!(
        vt.lookup(ProviderId::VirusTotal, &internal, None).await,
        Outcome::Skipped(_)
    ));
    let off = Online::start(
        true,
        vec![settings(ProviderId::VirusTotal, vec![])],
        |_| true,
        fake.clone(),
        None,
        None,
    );
    assert_eq!(
        off.lookup(ProviderId::VirusTotal, &ip("8.8.8.8"), None)
            .await,
        Outcome::Skipped("offline")
    );
    assert!(
        fake.sent().is_empty(),
        "nothing was sent: {:?}",
        fake.sent()
    );
}

#[tokio::test(start_paused = true)]
async fn sqlite_cache_keeps_verdicts_briefly_keeps_negatives_and_never_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("v.db");
    let (tx, rx) = mpsc::channel(64);
    let (changed, _keep) = tokio::sync::watch::channel(0);
    let writer = store::spawn_writer(
        db.clone(),
        store::WriterConfig {
            incident_rules: Vec::new(),
            actor: crate::identity::Actor::current(),
            playbooks: None,
        },
        rx,
        changed,
    )
    .expect("writer");
    let reader = Arc::new(Mutex::new(store::open(&db).expect("reader")));
    let fake = Arc::new(Fake::default());
    fake.then("45.75.196.10", Ok(bad()));
    fake.then("45.75.196.11", Ok(clean()));
    fake.then("45.75.196.12", Err(FetchError::Malformed("x".into())));
    let mut s = settings(ProviderId::VirusTotal, vec![]);
    s.negative_ttl = Duration::ZERO;
    let start = |fake: &Arc<Fake>| {
        Online::start(
            false,
            vec![s.clone()],
            |_| true,
            fake.clone(),
            Some(reader.clone()),
            Some(tx.clone()),
        )
    };
    let vt = start(&fake);
    let [bad_ip, clean_ip, broken_ip]: [Ioc; 3] = public_ips(3).try_into().expect("three");
    for i in [&bad_ip, &clean_ip, &broken_ip] {
        let _ = vt.lookup(ProviderId::VirusTotal, i, None).await;
    }
    let (ftx, frx) = oneshot::channel();
    tx.send(WriteOp::Flush(ftx)).await.expect("flush");
    frx.await.expect("flushed");
    {
        let c = reader.lock().expect("lock");
        let get = |v: &str| {
            store::cache_get(&c, "virustotal", IocKind::Ipv4, v, Utc::now()).expect("read")
        };
        assert_eq!(
            get(&bad_ip.value).map(|r| r.verdict),
            Some(Verdict::Malicious)
        );
        assert!(
            get(&clean_ip.value).is_none(),
            "a negative answer with a zero TTL is already stale"
        );
        assert!(get(&broken_ip.value).is_none(), "errors are never cached");
    }
    // A new client (a restart) answers the verdict from SQLite without a request.
    let vt2 = start(&fake);
    let before = fake.sent().len();
    let again = vt2.lookup(ProviderId::VirusTotal, &bad_ip, None).await;
    assert!(
        matches!(again, Outcome::Answer { cached: true, .. }),
        "{again:?}"
    );
    assert_eq!(fake.sent().len(), before);
    // The restart also remembers the requests already spent today.
    assert_eq!(
        store::provider_usage_since(
            &reader.lock().expect("lock"),
            "virustotal",
            Utc::now() - chrono::Duration::days(1)
        )
        .expect("usage")
        .len(),
        3
    );
    drop((vt, vt2, tx));
    let _ = tokio::task::spawn_blocking(move || writer.join()).await;
}

// ---------------------------------------------------------------- HTTP, against mock servers

fn http(server: &MockServer, id: ProviderId, key: Option<&str>) -> HttpTransport {
    let mut s = settings(id, vec![]);
    s.base_url = url::Url::parse(&server.uri()).expect("mock url");
    let secrets = match key {
        Some(k) => Secrets::from_pairs(&[(id.name(), k)]),
        None => Secrets::default(),
    };
    HttpTransport::new(&[s], secrets).expect("client")
}

fn json_body(s: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(s.as_bytes().to_vec(), "application/json")
}

#[tokio::test]
async fn abuseipdb_check_documented_shape() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v2/check"))
        .and(query_param("ipAddress", "141.98.81.37"))
        .and(query_param("maxAgeInDays", "90"))
        .and(header("Key", "abuse-key"))
        .and(header("Accept", "application/json"))
        .respond_with(json_body(
            r#"{"data":{"ipAddress":"141.98.81.37","isPublic":true,"ipVersion":4,"isWhitelisted":false,
                "abuseConfidenceScore":100,"countryCode":"LT","usageType":"Data Center/Web Hosting/Transit",
                "isp":"UAB Host Baltic","domain":"hostbaltic.lt","hostnames":[],"isTor":false,
                "totalReports":1523,"numDistinctUsers":402,"lastReportedAt":"2024-04-04T06:59:01+00:00"}}"#,
        ))
        .expect(1)
        .mount(&server)
        .await;
    let a = http(&server, ProviderId::AbuseIpDb, Some("abuse-key"))
        .fetch(ProviderId::AbuseIpDb, &ip("141.98.81.37"))
        .await
        .expect("answer");
    assert_eq!(a.verdict, Verdict::Malicious);
    assert_eq!(a.score, Some(100));
    assert_eq!(a.detail["total_reports"], 1523);
}

#[tokio::test]
async fn virustotal_ip_url_and_not_found() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v3/ip_addresses/45.124.37.241"))
        .and(header("x-apikey", "vt-key"))
        .respond_with(json_body(
            r#"{"data":{"type":"ip_address","id":"45.124.37.241","attributes":{"reputation":-11,
                "last_analysis_date":1712210000,"last_analysis_stats":{"harmless":55,"malicious":7,
                "suspicious":2,"undetected":30,"timeout":0}}}}"#,
        ))
        .mount(&server)
        .await;
    // VirusTotal names a URL by the unpadded URL-safe base64 of the URL.
    Mock::given(method("GET"))
        .and(path("/api/v3/urls/aHR0cDovL21hbHdhcmUudG9wL2dhdGUucGhw"))
        .respond_with(json_body(
            r#"{"data":{"attributes":{"last_analysis_stats":{"harmless":80,"malicious":0,"suspicious":0,"undetected":10}}}}"#,
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v3/files/44d88612fea8a8f36de82e1f5d435d5b"))
        .respond_with(ResponseTemplate::new(404).set_body_raw(
            br#"{"error":{"code":"NotFoundError","message":"File \"44d88612fea8a8f36de82e1f5d435d5b\" not found"}}"#.to_vec(),
            "application/json",
        ))
        .mount(&server)
        .await;
    let t = http(&server, ProviderId::VirusTotal, Some("vt-key"));
    let a = t
        .fetch(ProviderId::VirusTotal, &ip("45.124.37.241"))
        .await
        .expect("ip");
    assert_eq!(a.verdict, Verdict::Malicious);
    assert_eq!(
        a.score,
        Some(9),
        "(7 malicious + 2/2 suspicious) of 94 engines = 8.5%"
    );
    let u = Ioc::new(
        IocKind::Url,
        "http://malware.top/gate.php".into(),
        "message",
    );
    assert_eq!(
        t.fetch(ProviderId::VirusTotal, &u)
            .await
            .expect("url")
            .verdict,
        Verdict::Clean
    );
    let h = Ioc::new(
        IocKind::Md5,
        "44d88612fea8a8f36de82e1f5d435d5b".into(),
        "message",
    );
    assert_eq!(
        t.fetch(ProviderId::VirusTotal, &h)
            .await
            .expect("404")
            .verdict,
        Verdict::Unknown
    );
}

#[tokio::test]
async fn otx_general_section() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/indicators/domain/malware.top/general"))
        .and(header("X-OTX-API-KEY", "otx-key"))
        .respond_with(json_body(
            r#"{"sections":["general","geo","malware","url_list","passive_dns"],"indicator":"malware.top",
                "type":"domain","reputation":0,"pulse_info":{"count":6,"pulses":[{"id":"1","name":"Pikabot C2"},
                {"id":"2","name":"Loader infrastructure"}],"references":[]}}"#,
        ))
        .mount(&server)
        .await;
    let d = Ioc::new(IocKind::Domain, "malware.top".into(), "message");
    let a = http(&server, ProviderId::Otx, Some("otx-key"))
        .fetch(ProviderId::Otx, &d)
        .await
        .expect("answer");
    assert_eq!(a.verdict, Verdict::Malicious);
    assert_eq!(a.detail["pulse_names"][0], "Pikabot C2");
}

#[tokio::test]
async fn urlhaus_host_and_url_posts() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/host/"))
        .and(header("Auth-Key", "uh-key"))
        .and(body_string_contains("host=update.bad-actor.ru"))
        .respond_with(json_body(
            r#"{"query_status":"ok","urlhaus_reference":"https://urlhaus.abuse.ch/host/update.bad-actor.ru/",
                "host":"update.bad-actor.ru","firstseen":"2024-04-03 22:00:00 UTC","url_count":"2",
                "blacklists":{"spamhaus_dbl":"abused_legit_malware","surbl":"not listed"},
                "urls":[{"id":"2800003","url":"http://update.bad-actor.ru/x86","url_status":"online","threat":"malware_download"}]}"#,
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/url/"))
        .and(body_string_contains("url=http%3A%2F%2Fmalware.top%2Fa"))
        .respond_with(json_body(r#"{"query_status":"no_results"}"#))
        .mount(&server)
        .await;
    let t = http(&server, ProviderId::UrlHaus, Some("uh-key"));
    let h = Ioc::new(IocKind::Domain, "update.bad-actor.ru".into(), "message");
    let a = t.fetch(ProviderId::UrlHaus, &h).await.expect("host");
    assert_eq!((a.verdict, a.score), (Verdict::Malicious, Some(100)));
    let u = Ioc::new(IocKind::Url, "http://malware.top/a".into(), "message");
    assert_eq!(
        t.fetch(ProviderId::UrlHaus, &u).await.expect("url").verdict,
        Verdict::Unknown
    );
}

#[tokio::test]
async fn rdap_registration_and_registrar() {
    let server = MockServer::start().await;
    let registered = (Utc::now() - chrono::Duration::days(3)).to_rfc3339();
    let body = format!(
        r#"{{"objectClassName":"domain","ldhName":"FRESH-PHISH.COM","events":[{{"eventAction":"registration","eventDate":"{registered}"}},
            {{"eventAction":"expiration","eventDate":"2026-01-01T00:00:00Z"}}],
            "entities":[{{"objectClassName":"entity","roles":["registrar"],"vcardArray":["vcard",[["version",{{}},"text","4.0"],["fn",{{}},"text","NameCheap, Inc."]]]}}]}}"#
    );
    Mock::given(method("GET"))
        .and(path("/domain/fresh-phish.com"))
        .respond_with(json_body(&body))
        .mount(&server)
        .await;
    let d = Ioc::new(
        IocKind::Domain,
        "fresh-phish.com".into(),
        "dns.query.rrname",
    );
    let a = http(&server, ProviderId::Rdap, None)
        .fetch(ProviderId::Rdap, &d)
        .await
        .expect("answer");
    assert_eq!(a.verdict, Verdict::Suspicious, "three days old");
    assert_eq!(a.detail["registrar"], "NameCheap, Inc.");
    assert_eq!(a.detail["age_days"], 3);
}

#[tokio::test]
async fn http_failures_are_errors_not_verdicts() {
    let server = MockServer::start().await;
    let respond = |p: &str, r: ResponseTemplate| {
        Mock::given(path(format!("/api/v3/ip_addresses/{p}"))).respond_with(r)
    };
    respond(
        "1.1.1.1",
        ResponseTemplate::new(429).insert_header("Retry-After", "7"),
    )
    .mount(&server)
    .await;
    respond(
        "1.1.1.2",
        ResponseTemplate::new(401).set_body_string(r#"{"error":{"code":"WrongCredentialsError"}}"#),
    )
    .mount(&server)
    .await;
    respond("1.1.1.3", ResponseTemplate::new(503))
        .mount(&server)
        .await;
    respond("1.1.1.4", json_body(r#"{"data": {"attributes": "#))
        .mount(&server)
        .await;
    respond("1.1.1.5", json_body(r#"{"unexpected": true}"#))
        .mount(&server)
        .await;
    respond("1.1.1.6", json_body("{}").set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let t = http(&server, ProviderId::VirusTotal, Some("vt-key"));
    let get = |v: &str| t.fetch(ProviderId::VirusTotal, &ip(v));
    assert_eq!(
        get("1.1.1.1").await,
        Err(FetchError::RateLimited(Some(Duration::from_secs(7))))
    );
    assert_eq!(get("1.1.1.2").await, Err(FetchError::Unauthorized(401)));
    assert_eq!(get("1.1.1.3").await, Err(FetchError::Server(503)));
    assert!(matches!(
        get("1.1.1.4").await,
        Err(FetchError::Malformed(_))
    ));
    assert!(
        matches!(get("1.1.1.5").await, Err(FetchError::Malformed(ref m)) if m.contains("data.attributes"))
    );
    assert_eq!(
        get("1.1.1.6").await,
        Err(FetchError::Timeout),
        "the client's timeout, not the server's delay"
    );
}

#[tokio::test]
async fn a_slow_body_times_out() {
    // Headers at once, then a body that never finishes: only a whole-request timeout catches it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (hold_tx, hold_rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        if let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf).await;
            let _ = sock
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{\"data\":")
                .await;
            let _ = hold_rx.await;
        }
    });
    let mut s = settings(ProviderId::VirusTotal, vec![]);
    s.base_url = url::Url::parse(&format!("http://{addr}/")).expect("url");
    let t = HttpTransport::new(&[s], Secrets::from_pairs(&[("virustotal", "k")])).expect("client");
    assert_eq!(
        t.fetch(ProviderId::VirusTotal, &ip("8.8.8.8")).await,
        Err(FetchError::Timeout)
    );
    drop(hold_tx);
}
