//! Connectors against real local sinks: an injection corpus placed into real alert fields,
//! rendered through a playbook step into every connector, executed against a wiremock server,
//! an allowlisted recorder program, a tiny SMTP sink and the blocklist file. Every delivered call
//! is rebuilt from what the sink received and compared with the call the approver was shown.
//! Only 127.0.0.1 is ever contacted.

use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use vigil::engine::connector::email::EmailCall;
use vigil::engine::connector::http::{Header, HeaderText, HttpCall};
use vigil::engine::connector::{
    blocklist, slack, Call, ConnectorConfig, Connectors, KEY_PLACEHOLDER,
};
use vigil::engine::normalize::{normalize_line, Parsed};
use vigil::engine::playbook;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN_ENV: &str = "VIGIL_TEST_CONNECTORS_EDR_TOKEN";
const TOKEN: &str = "s3cr3t-edr-token-value";

// ------------------------------------------------------------------ a tiny SMTP sink

/// One message as the sink received it.
#[derive(Debug, Clone)]
struct Received {
    rcpt: Vec<String>,
    data: Vec<u8>,
}

type Inbox = Arc<Mutex<Vec<Received>>>;

/// Accept SMTP on 127.0.0.1 and keep every message. Speaks just enough of RFC 5321 for lettre
/// without TLS or AUTH: EHLO, MAIL, RCPT, DATA (undoing dot-stuffing), RSET, NOOP, QUIT.
async fn smtp_sink() -> (u16, Inbox) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let inbox: Inbox = Arc::default();
    let kept = inbox.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let inbox = kept.clone();
            tokio::spawn(async move {
                let (r, mut w) = conn.into_split();
                let mut r = BufReader::new(r);
                let _ = w.write_all(b"220 sink ESMTP\r\n").await;
                let mut rcpt = Vec::new();
                let mut line = Vec::new();
                loop {
                    line.clear();
                    if r.read_until(b'\n', &mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let text = String::from_utf8_lossy(&line).to_string();
                    let verb = text.get(..4).unwrap_or("").to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" => b"250-sink\r\n250 8BITMIME\r\n",
                        "HELO" | "MAIL" | "RSET" | "NOOP" => b"250 ok\r\n",
                        "RCPT" => {
                            let addr = text
                                .split_once('<')
                                .and_then(|(_, a)| a.split_once('>'))
                                .map(|(a, _)| a.to_string())
                                .unwrap_or_default();
                            rcpt.push(addr);
                            b"250 ok\r\n"
                        }
                        "DATA" => {
                            let _ = w.write_all(b"354 go on\r\n").await;
                            let mut data = Vec::new();
                            loop {
                                line.clear();
                                if r.read_until(b'\n', &mut line).await.unwrap_or(0) == 0 {
                                    return;
                                }
                                if line == b".\r\n" {
                                    break;
                                }
                                let l = line.strip_prefix(b".").unwrap_or(&line);
                                data.extend_from_slice(l);
                            }
                            inbox.lock().expect("inbox").push(Received {
                                rcpt: std::mem::take(&mut rcpt),
                                data,
                            });
                            b"250 queued\r\n"
                        }
                        "QUIT" => {
                            let _ = w.write_all(b"221 bye\r\n").await;
                            return;
                        }
                        _ => b"502 no\r\n",
                    };
                    let _ = w.write_all(reply).await;
                }
            });
        }
    });
    (port, inbox)
}

// ------------------------------------------------------------------ fixtures

fn fixture_line(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&p)
        .expect("fixture")
        .lines()
        .next()
        .expect("a first line")
        .to_string()
}

/// A real alert with `payload` written into the producer fields that become `rule.name` and
/// `host.name`, then normalised by the real normaliser.
fn alert_with(producer: &str, payload: &str) -> Value {
    let mut raw: Value = serde_json::from_str(&fixture_line(producer)).expect("fixture json");
    match producer {
        "suricata-alert.json" => {
            raw["alert"]["signature"] = json!(payload);
            raw["host"] = json!(payload);
        }
        _ => {
            raw["rule"]["description"] = json!(payload);
            raw["agent"]["name"] = json!(payload);
        }
    }
    let line = serde_json::to_string(&raw).expect("json");
    match normalize_line(line.as_bytes()) {
        Ok(Parsed::Alert(a, _)) => a.to_ecs_fields(),
        other => panic!("{producer}: {other:?}"),
    }
}

fn printf_path() -> &'static str {
    ["/usr/bin/printf", "/bin/printf"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("printf is part of coreutils")
}

/// One playbook with a step per sink, each reading the two untrusted fields.
fn playbook_yaml(printf: &str) -> String {
    format!(
        r#"
name: injection-corpus
description: every sink fed from alert text
match:
  all:
    - field: rule.name
      exists: true
steps:
  - id: webhook
    title: notify
    connector: webhook
    params:
      rule: "${{alert.rule.name}}"
      host: "${{alert.host.name}}"
      note: "seen: ${{alert.rule.name}}"
  - id: slack
    title: tell the channel
    connector: slack
    params:
      text: "Alert ${{alert.rule.name}} on ${{alert.host.name}}"
  - id: http
    title: isolate in the EDR
    connector: http
    params:
      api: edr
      method: POST
      path.1: hosts
      path.2: "${{alert.host.name}}"
      path.3: isolate
      query.reason: "${{alert.rule.name}}"
      header.X-Vigil-Rule: "${{alert.rule.name}}"
      body.rule: "${{alert.rule.name}}"
      body.host: "${{alert.host.name}}"
  - id: command-arg
    title: run the recorder with values as plain arguments
    connector: command
    params:
      program: {printf}
      arg.1: '%s\0'
      arg.2: "${{alert.rule.name}}"
      arg.3: "${{alert.host.name}}"
  - id: command-operand
    title: run the recorder with values after --
    connector: command
    params:
      program: {printf}
      arg.1: '%s\0'
      operand.1: "${{alert.rule.name}}"
      operand.2: "${{alert.host.name}}"
  - id: email
    title: mail the analyst
    connector: email
    params:
      to: analyst@soc.example
      subject: "[vigil] ${{alert.rule.name}}"
      body: "Rule: ${{alert.rule.name}}\nHost: ${{alert.host.name}}\n"
  - id: blocklist
    title: block the host
    connector: blocklist
    params:
      entry: "${{alert.host.name}}"
"#
    )
}

fn corpus(canary: &Path, decoy: &str) -> Vec<String> {
    let c = canary.display();
    let decoy_hostport = decoy.trim_start_matches("http://");
    vec![
        format!("; touch {c}"),
        format!("$(touch {c})"),
        format!("`touch {c}`"),
        format!("x | touch {c} && touch {c} || touch {c} & touch {c}"),
        format!("'; touch {c}; echo '"),
        format!("\"; touch {c}; echo \""),
        "line one\nX-Injected: newline".into(),
        "carriage\r\nX-Injected: crlf\r\n\r\nsmuggled body".into(),
        "\r\n.\r\nMAIL FROM:<attacker@evil.example>\r\nRCPT TO:<victim@evil.example>\r\n".into(),
        "%0d%0aX-Injected:%20encoded".into(),
        "-rf".into(),
        "--output=/tmp/vigil-pwned".into(),
        "${alert.source.ip}".into(),
        "${env.HOME} $${alert.rule.name} ${".into(),
        "{{7*7}} {{config.items()}}".into(),
        "../../../../etc/passwd".into(),
        "..".into(),
        ".".into(),
        "it's \"quoted\" `back` \\ slash".into(),
        "nul\0byte".into(),
        "tab\there and \u{1b}[31mred\u{1b}[0m".into(),
        "invoice\u{202e}fdp.exe \u{2066}isolate\u{2069} zero\u{200b}width".into(),
        "<!channel> <http://evil.example|click> &amp;".into(),
        "=?utf-8?q?Bcc=3A_attacker=40evil.example?=".into(),
        format!("{decoy}/steal"),
        format!("//{decoy_hostport}/x"),
        format!("@{decoy_hostport}"),
        "host.example.com".into(),
        "A".repeat(5_000),
        "B".repeat(100_000),
    ]
}

// ------------------------------------------------------------------ rebuilding calls from sinks

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .expect("utf8")
        .to_string()
}

/// The HTTP call as the server saw it, in the terms of the call vigil showed. Headers are taken
/// in the shown call's order; every received header must be one of them or one the HTTP library
/// adds (host, content-length, accept), each present exactly once.
fn received_http_call(req: &wiremock::Request, shown: &HttpCall) -> (HttpCall, usize) {
    let library = ["host", "content-length", "accept"];
    let mut split = 0;
    for name in req.headers.keys() {
        let n = name.as_str();
        let known =
            library.contains(&n) || shown.headers.iter().any(|h| h.name.eq_ignore_ascii_case(n));
        let once = req.headers.get_all(name).iter().count() == 1;
        if !known || !once {
            split += 1;
        }
    }
    let headers = shown
        .headers
        .iter()
        .filter_map(|h| {
            let v = req
                .headers
                .get(h.name.as_str())?
                .to_str()
                .expect("ascii header");
            let value = match &h.value {
                HeaderText::BearerFromEnv(var) if v == format!("Bearer {TOKEN}") => {
                    HeaderText::BearerFromEnv(var.clone())
                }
                _ => HeaderText::Plain(v.to_string()),
            };
            Some(Header {
                name: h.name.clone(),
                value,
            })
        })
        .collect();
    let body = (!req.body.is_empty()).then(|| {
        let v: Value = serde_json::from_slice(&req.body).expect("JSON body");
        assert_eq!(
            vigil::sanitize::json::to_string(&v)
                .expect("json")
                .as_bytes(),
            req.body,
            "body bytes are exactly the shown JSON"
        );
        let text = std::str::from_utf8(&req.body).expect("UTF-8 body");
        assert!(
            !text.chars().any(vigil::sanitize::is_unsafe),
            "a body reaching a chat or a ticket escapes invisible characters: {text}"
        );
        v
    });
    (
        HttpCall {
            method: req.method.to_string(),
            // wiremock reports `http://localhost/...`; the Host header says where it went.
            url: url::Url::parse(&format!(
                "http://{}{}",
                req.headers["host"].to_str().expect("host"),
                &req.url[url::Position::BeforePath..]
            ))
            .expect("url"),
            headers,
            body,
            secret_path: shown.secret_path,
            timeout: shown.timeout,
        },
        split,
    )
}

/// The mail as the sink received it, in the terms of the call vigil showed, and its header
/// names.
fn received_email(msg: &Received, shown: &EmailCall) -> (EmailCall, Vec<String>) {
    let parsed = mailparse::parse_mail(&msg.data).expect("a parsable message");
    let header = |name: &str| {
        let all: Vec<_> = parsed
            .headers
            .iter()
            .filter(|h| h.get_key().eq_ignore_ascii_case(name))
            .map(|h| h.get_value())
            .collect();
        assert_eq!(all.len(), 1, "exactly one {name} header");
        all[0].clone()
    };
    let names = parsed.headers.iter().map(|h| h.get_key()).collect();
    let body = String::from_utf8(parsed.get_body_raw().expect("body")).expect("utf8 body");
    (
        EmailCall {
            relay: shown.relay.clone(),
            from: header("From"),
            to: header("To"),
            subject: header("Subject"),
            body,
            message_id: header("Message-ID"),
        },
        names,
    )
}

/// The recorder's stdout from an outcome: `printf '%s\0'` writes each argument NUL-terminated,
/// and the connector quotes stdout as a JSON string.
fn recorded_argv(detail: &str) -> Vec<String> {
    let at = detail.find("; stdout ").expect("stdout in detail") + "; stdout ".len();
    let stdout: String = serde_json::Deserializer::from_str(&detail[at..])
        .into_iter::<String>()
        .next()
        .expect("a JSON string")
        .expect("valid JSON string");
    let mut parts: Vec<String> = stdout.split('\0').map(str::to_string).collect();
    assert_eq!(parts.pop().as_deref(), Some(""), "NUL-terminated");
    parts
}

// ------------------------------------------------------------------ the corpus

#[derive(Default, Debug)]
struct Tally {
    delivered: usize,
    refused: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injection_corpus_through_every_sink() {
    std::env::set_var(TOKEN_ENV, TOKEN);
    let dir = tempfile::tempdir().expect("tempdir");
    let canary = dir.path().join("canary");
    let blocklist_path = dir.path().join("blocklist.txt");

    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"ok\":true}"))
        .mount(&server)
        .await;
    let decoy = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .mount(&decoy)
        .await;
    let (smtp_port, inbox) = smtp_sink().await;
    let printf = printf_path();

    let mut cfg = ConnectorConfig::default();
    cfg.webhook.url = format!("{}/hooks/vigil", server.uri());
    cfg.webhook.timeout_seconds = 10;
    cfg.slack.url = format!("{}/slack/services/T0/B0/SLACKSECRET", server.uri());
    cfg.http.api.insert(
        "edr".into(),
        toml::from_str(&format!(
            "base_url = \"{}/api/v1/\"\ntoken_env = \"{TOKEN_ENV}\"",
            server.uri()
        ))
        .expect("api config"),
    );
    cfg.command.allow = vec![printf.into()];
    cfg.command.output_limit_bytes = 1024 * 1024;
    cfg.email.relay = "127.0.0.1".into();
    cfg.email.port = smtp_port;
    cfg.email.tls = "none".into();
    cfg.email.from = "vigil@soc.example".into();
    cfg.email.allow_domains = vec!["soc.example".into()];
    let connectors = Connectors::from_config(&cfg, blocklist_path.clone()).expect("connectors");
    let pb = playbook::parse(&playbook_yaml(printf), "corpus.yaml", &connectors).expect("playbook");
    for step in &pb.steps {
        Connectors::check_params(&step.connector, step.params.keys().map(String::as_str))
            .expect("every param name has a place");
    }
    let allowed_prefix: BTreeMap<&str, &str> = [
        ("webhook", "/hooks/vigil"),
        ("slack", "/slack/services/T0/B0/SLACKSECRET"),
        ("http", "/api/v1/"),
    ]
    .into();

    let payloads = corpus(&canary, &decoy.uri());
    let mut tally: BTreeMap<String, Tally> = BTreeMap::new();
    let (mut split_headers, mut off_allowlist, mut seen_requests) = (0usize, 0usize, 0usize);
    let mut n = 0;
    for producer in ["suricata-alert.json", "wazuh-alert.json"] {
        for payload in &payloads {
            let doc = alert_with(producer, payload);
            assert_eq!(
                doc["rule"]["name"],
                json!(payload),
                "the payload is in a real alert field"
            );
            let (proposed, skipped) = pb.propose(&doc, &connectors);
            assert_eq!(proposed.len() + skipped.len(), 7, "{skipped:?}");
            for s in &skipped {
                assert!(
                    s.contains(": param `"),
                    "refused by a connector's placement rules, not by templating: {s}"
                );
                if std::env::var_os("VIGIL_SHOW_REFUSALS").is_some() {
                    println!("refused {}", s.chars().take(200).collect::<String>());
                }
                let step = s
                    .trim_start_matches("injection-corpus/")
                    .split(':')
                    .next()
                    .unwrap_or("");
                tally.entry(step.to_string()).or_default().refused += 1;
            }
            for action in proposed {
                n += 1;
                let key = format!("vigil-{n}-{}", &action.call_hash[..16]);
                // What the approver saw is the call with the key still a placeholder ...
                let shown = connectors
                    .dry_run(&action.connector, &action.params, KEY_PLACEHOLDER)
                    .expect("dry run");
                assert_eq!(shown.to_string(), action.rendered);
                assert!(!action.rendered.contains(TOKEN), "token never shown");
                assert!(!action.rendered.contains("SLACKSECRET"), "slack URL masked");
                // ... and what runs is that call with the key filled in.
                let call = connectors
                    .dry_run(&action.connector, &action.params, &key)
                    .expect("dry run");
                let out = connectors
                    .execute(&action.connector, &action.params, &key)
                    .await;
                assert!(!out.detail.contains(TOKEN), "token never in an outcome");
                match &call {
                    Call::Http(shown) => {
                        assert!(out.ok, "{}: {}", action.step, out.detail);
                        let reqs = server.received_requests().await.expect("recording");
                        assert_eq!(reqs.len(), seen_requests + 1, "exactly one request");
                        seen_requests = reqs.len();
                        let req = &reqs[reqs.len() - 1];
                        if !req
                            .url
                            .path()
                            .starts_with(allowed_prefix[action.connector.as_str()])
                        {
                            off_allowlist += 1;
                        }
                        let (got, split) = received_http_call(req, shown);
                        split_headers += split;
                        assert_eq!(&got, shown, "{}: sent == shown", action.step);
                        assert_eq!(got.to_string(), call.to_string());
                        let body = got.body.clone().expect("body");
                        match action.step.as_str() {
                            "webhook" => {
                                assert_eq!(body["params"]["rule"], json!(payload));
                                assert_eq!(body["params"]["host"], json!(payload));
                                assert_eq!(body["idempotency_key"], json!(key));
                            }
                            "slack" => {
                                let t = slack::escape_mrkdwn(payload);
                                assert_eq!(body["text"], json!(format!("Alert {t} on {t}")));
                            }
                            _ => {
                                assert_eq!(body["rule"], json!(payload));
                                let segs: Vec<_> = req.url.path_segments().expect("path").collect();
                                assert_eq!(segs.len(), 5, "{}", req.url);
                                assert_eq!(percent_decode(segs[3]), *payload);
                                let q: Vec<_> = req.url.query_pairs().collect();
                                assert_eq!(q.len(), 1);
                                assert_eq!(q[0].1, *payload);
                                assert_eq!(
                                    req.headers["x-vigil-rule"].to_str().expect("ascii"),
                                    payload
                                );
                            }
                        }
                        assert_eq!(req.headers["idempotency-key"].to_str().expect("ascii"), key);
                    }
                    Call::Command(shown) => {
                        assert!(out.ok, "{}: {}", action.step, out.detail);
                        let argv = recorded_argv(&out.detail);
                        assert_eq!(
                            argv,
                            shown.args[1..],
                            "each value is exactly one argv element"
                        );
                        let values: Vec<_> = argv.iter().filter(|a| *a != "--").collect();
                        assert_eq!(values, [payload, payload]);
                    }
                    Call::Email(shown) => {
                        assert!(out.ok, "{}: {}", action.step, out.detail);
                        let msg = inbox.lock().expect("inbox").pop().expect("a message");
                        assert_eq!(msg.rcpt, ["analyst@soc.example"]);
                        let (got, names) = received_email(&msg, shown);
                        assert_eq!(&got, shown, "sent == shown");
                        assert_eq!(got.message_id, format!("<{key}@soc.example>"));
                        let expected = [
                            "From",
                            "To",
                            "Subject",
                            "Message-ID",
                            "Content-Type",
                            "Content-Transfer-Encoding",
                            "Date",
                            "MIME-Version",
                        ];
                        let mut want: Vec<_> =
                            expected.iter().map(|s| s.to_ascii_lowercase()).collect();
                        let mut have: Vec<_> =
                            names.iter().map(|s| s.to_ascii_lowercase()).collect();
                        want.sort();
                        have.sort();
                        if have != want {
                            split_headers += have.len().abs_diff(want.len()).max(1);
                        }
                        assert_eq!(have, want, "no header added or split");
                        assert_eq!(got.subject, format!("[vigil] {payload}"));
                    }
                    Call::Blocklist(shown) => {
                        assert!(out.ok, "{}", out.detail);
                        assert_eq!(shown.entry, blocklist::entry(payload).expect("valid"));
                        let text = std::fs::read_to_string(&blocklist_path).expect("list");
                        assert!(text.lines().any(|l| l == shown.entry));
                        for l in text.lines() {
                            assert_eq!(
                                blocklist::entry(l).as_deref(),
                                Ok(l),
                                "one literal entry per line"
                            );
                        }
                    }
                }
                tally.entry(action.step.clone()).or_default().delivered += 1;
            }
        }
    }
    assert_eq!(
        decoy.received_requests().await.expect("recording").len(),
        0,
        "no request reached another server"
    );
    assert!(!canary.exists(), "a shell interpreted a payload");
    assert_eq!(split_headers, 0);
    assert_eq!(off_allowlist, 0);
    let cases: usize = tally.values().map(|t| t.delivered + t.refused).sum();
    assert_eq!(cases, 2 * payloads.len() * 7);
    println!(
        "injection corpus: {} payloads x 2 alerts x 7 sinks = {cases} cases; commands interpreted 0, headers split {split_headers}, requests off allowlist {off_allowlist}",
        payloads.len()
    );
    for (sink, t) in &tally {
        println!(
            "  {sink:<16} delivered literally {:>3}  refused {:>3}",
            t.delivered, t.refused
        );
    }
    // Every sink was exercised both ways or at least delivered something.
    for step in [
        "webhook",
        "slack",
        "http",
        "command-arg",
        "command-operand",
        "email",
        "blocklist",
    ] {
        assert!(
            tally.get(step).is_some_and(|t| t.delivered > 0),
            "{step} never delivered"
        );
    }
}

#[tokio::test]
async fn redirects_are_not_followed_off_the_allowlist() {
    let decoy = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .mount(&decoy)
        .await;
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(307).insert_header("Location", format!("{}/x", decoy.uri())),
        )
        .mount(&server)
        .await;
    let c = Connectors::new(PathBuf::from("/tmp/unused"))
        .with_webhook(
            &format!("{}/hook", server.uri()),
            std::time::Duration::from_secs(5),
        )
        .expect("webhook");
    let mut p = Map::new();
    p.insert("ip".into(), json!("192.0.2.1"));
    let out = c.execute("webhook", &p, "vigil-1-00").await;
    assert!(!out.ok, "a redirect is not success");
    assert!(out.detail.ends_with("HTTP 307"), "{}", out.detail);
    assert_eq!(server.received_requests().await.expect("rec").len(), 1);
    assert_eq!(decoy.received_requests().await.expect("rec").len(), 0);
}

#[tokio::test]
async fn a_missing_token_stops_the_call_before_it_is_sent() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let mut cfg = ConnectorConfig::default();
    cfg.http.api.insert(
        "iam".into(),
        toml::from_str(&format!(
            "base_url = \"{}/iam\"\ntoken_env = \"VIGIL_TEST_CONNECTORS_UNSET_TOKEN\"",
            server.uri()
        ))
        .expect("api config"),
    );
    let c = Connectors::from_config(&cfg, "/tmp/unused".into()).expect("connectors");
    let p: Map<String, Value> = serde_json::from_value(json!({
        "api": "iam", "method": "POST", "path.1": "users", "path.2": "jdoe", "path.3": "disable"
    }))
    .expect("params");
    let out = c.execute("http", &p, "vigil-2-00").await;
    assert!(!out.ok);
    assert!(
        out.detail.contains(
            "environment variable VIGIL_TEST_CONNECTORS_UNSET_TOKEN (the API token) is not set"
        ),
        "{}",
        out.detail
    );
    assert_eq!(server.received_requests().await.expect("rec").len(), 0);
}
