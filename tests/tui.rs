//! The TUI without a terminal: keymap files, screens drawn on `TestBackend` (snapshots plus
//! style checks), and the whole app driven by key events against a real engine.
#![cfg(feature = "tui")]

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::style::{Color, Modifier};
use ratatui::Terminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use vigil::engine::connector::Connectors;
use vigil::engine::model::Model;
use vigil::engine::pipeline::{split_lines, IncidentSource, Pipeline};
use vigil::engine::score::{Bands, Scorer};
use vigil::engine::store::Verdict;
use vigil::engine::store::{self, WriteOp, WriterConfig};
use vigil::engine::{EngineCommand, EngineEvent};
use vigil::identity::Actor;
use vigil::tui::app::{App, Overlay, PromptKind};
use vigil::tui::keymap::{Action, Key, Keymap};
use vigil::tui::view;

fn fixture(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(p)
}

fn keymap_error(name: &str) -> String {
    let path = fixture(&format!("keymaps/{name}"));
    Keymap::load(&path).expect_err("invalid keymap").0
}

#[test]
fn keymap_fixtures_valid_and_invalid_with_exact_errors() {
    let km = Keymap::load(&fixture("keymaps/valid.toml")).expect("valid keymap");
    let k = |s: &str| Key::parse(s).expect("key");
    assert_eq!(km.lookup("queue", k("j")), None, "noop unbinds");
    assert_eq!(km.lookup("queue", k("J")), Some(Action::Last));
    assert_eq!(
        km.lookup("queue", k("down")),
        Some(Action::Next),
        "untouched defaults stay"
    );
    assert_eq!(
        km.lookup("queue", k("q")),
        Some(Action::Quit),
        "global falls through"
    );
    assert_eq!(
        km.lookup("prompt", k("q")),
        None,
        "the prompt takes text, not global keys"
    );

    let p = |n: &str| fixture(&format!("keymaps/{n}")).display().to_string();
    assert_eq!(
        keymap_error("unknown-action.toml"),
        format!("{}: [queue] key \"x\": unknown action \"explode\" (known: noop, quit, help, focus_next, next, prev, first, last, page_down, page_up, approve, reject, rollback, edit, disposition, next_choice, confirm, cancel, enrichment, scroll_down, scroll_up, delete_back, delete_forward, cursor_left, cursor_right, line_start, line_end, clear_field)", p("unknown-action.toml"))
    );
    assert_eq!(
        keymap_error("bad-key.toml"),
        format!(
            "{}: [queue] key \"hyper-x\": unparsable key: no key named \"hyper-x\"",
            p("bad-key.toml")
        )
    );
    assert_eq!(
        keymap_error("duplicate.toml"),
        format!(
            "{}: [queue] key \"shift-g\": duplicate binding (same key as \"G\")",
            p("duplicate.toml")
        )
    );
    assert_eq!(
        keymap_error("unknown-table.toml"),
        format!(
            "{}: unknown table [queeu] (known: global, queue, actions, prompt, help)",
            p("unknown-table.toml")
        )
    );
    let syntax = keymap_error("syntax.toml");
    assert!(
        syntax.starts_with(&format!("{}:2: ", p("syntax.toml"))),
        "{syntax}"
    );
    assert_eq!(syntax.lines().count(), 1);
}

#[test]
fn help_overlay_lists_the_bindings_in_force() {
    let km = Keymap::load(&fixture("keymaps/valid.toml")).expect("valid keymap");
    let lines = km.help_lines();
    assert!(lines
        .iter()
        .any(|(t, keys, a)| t == "queue" && keys.contains('J') && *a == Action::Last));
    assert!(!lines
        .iter()
        .any(|(t, keys, _)| t == "queue" && keys.split(' ').any(|k| k == "j")));
}

/// Ingest `lines` into a fresh database through the real writer; return its path.
fn database_with(dir: &Path, lines: &str) -> PathBuf {
    let db = dir.join("vigil.db");
    ingest_into(&db, lines);
    db
}

/// Ingest `lines` into the database at `db` (created when missing) through the real writer.
fn ingest_into(db: &Path, lines: &str) {
    let db = db.to_path_buf();
    let connectors = Connectors::new(PathBuf::from("/var/lib/vigil/blocklist.txt"));
    let pipeline = Pipeline {
        scorer: Scorer::new(Model::embedded(), Bands::default()),
        playbooks: Arc::new(vigil::engine::playbook::load(None, &connectors).expect("playbooks")),
        connectors: Arc::new(connectors),
        incidents: IncidentSource::new(None, Vec::new()),
    };
    let (raw, _) = split_lines(lines.as_bytes(), 0, 1);
    let format = vigil::engine::format::FileFormat::detect(lines.as_bytes(), Default::default());
    let batch = pipeline.process("fixture.json", &format, raw);
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let (changed, _keep) = tokio::sync::watch::channel(0);
    let writer = store::spawn_writer(
        db.clone(),
        WriterConfig {
            incident_rules: vigil::config::Config::embedded()
                .expect("config")
                .incidents
                .rules,
            actor: Actor::current(),
            playbooks: None,
        },
        rx,
        changed,
    )
    .expect("writer");
    let (reply, done) = tokio::sync::oneshot::channel();
    tx.blocking_send(WriteOp::Ingest(batch, Some(reply)))
        .expect("send");
    done.blocking_recv().expect("reply").expect("ingest");
    drop(tx);
    writer.join().expect("writer thread");
}

/// Answer the app's queries from the database until it asks nothing more, like the engine.
fn serve(app: &mut App, db: &Path) {
    let conn = store::open_read_only(db).expect("db");
    for _ in 0..10 {
        let cmds = app.take_commands();
        if cmds.is_empty() {
            return;
        }
        for c in cmds {
            let ev = match c {
                EngineCommand::LoadQueue {
                    request,
                    offset,
                    limit,
                } => EngineEvent::Queue {
                    request,
                    offset,
                    totals: store::totals(&conn).expect("totals"),
                    rows: store::queue_page(&conn, offset, limit).expect("page"),
                },
                EngineCommand::LoadDetail { request, alert_id } => EngineEvent::Detail {
                    request,
                    detail: store::alert_detail(&conn, alert_id)
                        .expect("detail")
                        .map(Box::new),
                },
                _ => continue,
            };
            app.on_engine_event(ev);
        }
    }
}

fn screen(app: &App, w: u16, h: u16) -> (String, ratatui::buffer::Buffer) {
    let mut term = Terminal::new(TestBackend::new(w, h)).expect("terminal");
    term.draw(|f| view::draw(f, app)).expect("draw");
    let buf = term.backend().buffer().clone();
    let mut text = String::new();
    for y in 0..h {
        for x in 0..w {
            text.push_str(buf[(x, y)].symbol());
        }
        text.push('\n');
    }
    (text, buf)
}

fn app_over(db: &Path, w: u16, h: u16, colours: bool) -> App {
    let mut app = App::new(
        Keymap::from_texts(None).expect("default keymap"),
        "/var/lib/vigil/vigil.db".into(),
        "default".into(),
        colours,
    );
    app.resize(w, h);
    app.request_queue();
    serve(&mut app, db);
    app
}

/// VirusTotal part-way through its budgets with lookups queued, as the status bar shows it.
fn busy_virustotal() -> vigil::engine::enrich::online::ProviderStatus {
    vigil::engine::enrich::online::ProviderStatus {
        provider: "virustotal".into(),
        key: true,
        used: vec![("4/min".into(), 3), ("500/day".into(), 120)],
        queue_depth: 7,
        in_flight: 1,
        sent: 120,
        failed: 0,
        rate_limited: 0,
        paused_seconds: 0,
        disabled: None,
        last_error: None,
    }
}

fn fixture_text() -> String {
    let mut s = std::fs::read_to_string(fixture("suricata-alert.json")).expect("fixture");
    s.push_str(&std::fs::read_to_string(fixture("wazuh-alert.json")).expect("fixture"));
    s
}

#[test]
fn main_screen_at_80x24_and_smaller() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = database_with(dir.path(), &fixture_text());
    let app = app_over(&db, 80, 24, true);
    let (text, buf) = screen(&app, 80, 24);
    insta::assert_snapshot!("main_80x24", text);
    // Every queue row carries its band label; the top row is CRIT or HIGH and coloured so.
    let first = (0..8).map(|x| buf[(x, 2)].symbol()).collect::<String>();
    let label = first.split_whitespace().next().expect("label").to_string();
    assert!(["CRIT", "HIGH"].contains(&label.as_str()), "{first}");
    assert!(matches!(buf[(0, 2)].fg, Color::Red | Color::LightRed));
    assert!(
        buf[(10, 2)].modifier.contains(Modifier::REVERSED),
        "selected row is reversed"
    );
    for y in 2..8 {
        let row: String = (0..5).map(|x| buf[(x, y)].symbol()).collect();
        assert!(
            ["CRIT", "HIGH", "MED ", "LOW "]
                .iter()
                .any(|l| row.starts_with(l)),
            "row {y}: {row}"
        );
    }

    let small = app_over(&db, 60, 14, true);
    let (text, _) = screen(&small, 60, 14);
    insta::assert_snapshot!("compact_60x14", text);
    let (tiny, _) = screen(&small, 30, 8);
    assert!(tiny.contains("terminal too small"), "{tiny}");
    let _ = screen(&small, 0, 0);
    let _ = screen(&small, 1, 1);
}

#[test]
fn no_color_draws_without_colours_but_keeps_labels() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = database_with(dir.path(), &fixture_text());
    let app = app_over(&db, 80, 24, false);
    let (text, buf) = screen(&app, 80, 24);
    for y in 0..24 {
        for x in 0..80 {
            assert_eq!(buf[(x, y)].fg, Color::Reset, "colour at {x},{y}");
        }
    }
    assert!(text.contains("CRIT") || text.contains("HIGH"));
}

#[test]
fn hostile_alert_text_is_shown_escaped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let evil = r#"{"timestamp":"2024-01-01T00:00:00Z","event_type":"alert","src_ip":"8.8.8.8","dest_ip":"10.0.0.1","proto":"TCP","alert":{"signature":"ET TROJAN \u001b[2J\u202egpj.exe\u200b","category":"A Network Trojan was detected","severity":1}}"#;
    let db = database_with(dir.path(), &format!("{evil}\n"));
    let app = app_over(&db, 100, 30, true);
    let (text, _) = screen(&app, 100, 30);
    assert!(
        text.contains("ET TROJAN \\x1b[2J\\u{202e}gpj.exe\\u{200b}"),
        "{text}"
    );
    assert!(!text.contains('\u{202e}') && !text.contains('\u{1b}'));
}

#[test]
fn prompt_and_help_overlays() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = database_with(dir.path(), &fixture_text());
    let mut app = app_over(&db, 80, 24, true);
    let key = |c: char| Event::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
    app.on_terminal_event(key('?'));
    assert_eq!(app.overlay, Overlay::Help);
    let (text, _) = screen(&app, 80, 24);
    assert!(text.contains("approve the selected action"), "{text}");
    app.on_terminal_event(Event::Key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE)));
    assert_eq!(app.overlay, Overlay::None);
    // Find an alert with a proposal, open the prompt, refuse an empty reason.
    for _ in 0..6 {
        if app.selected_action().is_some() {
            break;
        }
        app.on_terminal_event(key('j'));
        serve(&mut app, &db);
    }
    assert!(
        app.selected_action().is_some(),
        "some fixture alert has a proposal"
    );
    app.on_terminal_event(key('a'));
    assert!(matches!(app.overlay, Overlay::Prompt(_)));
    app.on_terminal_event(Event::Key(KeyEvent::new(
        KeyCode::Enter,
        KeyModifiers::NONE,
    )));
    let Overlay::Prompt(p) = &app.overlay else {
        panic!("prompt closed")
    };
    assert_eq!(p.error.as_deref(), Some("a reason is required"));
    assert!(
        !app.take_commands()
            .iter()
            .any(|c| matches!(c, EngineCommand::Decide { .. })),
        "no decision is sent without a reason"
    );
    let (text, _) = screen(&app, 80, 24);
    insta::assert_snapshot!("approve_prompt_80x24", text);
}

#[test]
fn d_records_a_verdict_with_a_reason_after_choosing_tp_fp_or_benign() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = database_with(dir.path(), &fixture_text());
    let mut app = app_over(&db, 80, 24, true);
    let key = |c: KeyCode| Event::Key(KeyEvent::new(c, KeyModifiers::NONE));
    let alert = app.selected_id.expect("an alert is selected");
    app.on_terminal_event(key(KeyCode::Char('?')));
    let (text, _) = screen(&app, 80, 24);
    assert!(
        text.contains("record a verdict on the alert"),
        "help lists d: {text}"
    );
    app.on_terminal_event(key(KeyCode::Esc));
    app.on_terminal_event(key(KeyCode::Char('d')));
    let verdict = |app: &App| match &app.overlay {
        Overlay::Prompt(p) => match &p.kind {
            PromptKind::Disposition { alert_id, verdict } => (*alert_id, *verdict),
            other => panic!("not a disposition prompt: {other:?}"),
        },
        other => panic!("no prompt: {other:?}"),
    };
    assert_eq!(verdict(&app), (alert, Verdict::Tp));
    let (text, _) = screen(&app, 80, 24);
    assert!(text.contains("Verdict on alert #"), "{text}");
    assert!(
        text.contains("[tp]"),
        "the choice is marked, not only coloured: {text}"
    );
    app.on_terminal_event(key(KeyCode::Tab));
    assert_eq!(verdict(&app).1, Verdict::Fp);
    app.on_terminal_event(key(KeyCode::Enter));
    assert!(
        !app.take_commands()
            .iter()
            .any(|c| matches!(c, EngineCommand::Dispose { .. })),
        "no verdict without a reason"
    );
    for c in "dup of #3".chars() {
        app.on_terminal_event(key(KeyCode::Char(c)));
    }
    assert_eq!(
        verdict(&app).1,
        Verdict::Fp,
        "typing d in the reason is text"
    );
    app.on_terminal_event(key(KeyCode::Enter));
    assert_eq!(app.overlay, Overlay::None);
    let cmds = app.take_commands();
    assert!(
        cmds.contains(&EngineCommand::Dispose {
            alert_id: alert,
            verdict: Verdict::Fp,
            reason: "dup of #3".into()
        }),
        "{cmds:?}"
    );
}

/// The whole app against a real engine: keys in, engine events back, no sleeps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_drive_an_approval_through_to_the_audit_trail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("vigil.db");
    let watched = dir.path().join("eve.json");
    let mirai = std::fs::read_to_string(fixture("suricata-alert.json")).expect("fixture");
    std::fs::write(
        &watched,
        format!("{}\n", mirai.lines().next().expect("line")),
    )
    .expect("write");
    let connectors = Connectors::new(dir.path().join("blocklist.txt"));
    let pipeline = Pipeline {
        scorer: Scorer::new(Model::embedded(), Bands::default()),
        playbooks: Arc::new(vigil::engine::playbook::load(None, &connectors).expect("playbooks")),
        connectors: Arc::new(connectors),
        incidents: IncidentSource::new(None, Vec::new()),
    };
    let mut h = vigil::engine::start(vigil::engine::EngineConfig {
        db: db.clone(),
        watch: vec![watched],
        format: Default::default(),
        format_settings: vigil::engine::format::FormatSettings::builtin(),
        pipeline,
        incident_rules: vigil::config::Config::embedded()
            .expect("config")
            .incidents
            .rules,
        actor: Actor::current(),
        loaded: serde_json::json!({}),
        enrichment: None,
    })
    .expect("engine");
    let mut app = App::new(
        Keymap::from_texts(None).expect("keymap"),
        db.display().to_string(),
        "default".into(),
        true,
    );
    app.resize(80, 24);
    app.request_queue();

    async fn pump(
        app: &mut App,
        h: &mut vigil::engine::EngineHandle,
        what: &str,
        done: impl Fn(&App) -> bool,
    ) {
        let work = async {
            while !done(app) {
                for c in app.take_commands() {
                    h.commands.send(c).await.expect("engine alive");
                }
                tokio::select! {
                    ev = h.events.recv() => app.on_engine_event(ev.expect("engine alive")),
                    r = h.db_changed.changed() => { r.expect("engine alive"); app.on_db_changed(); }
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(20), work)
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
    }

    pump(&mut app, &mut h, "the alert and its proposals", |a| {
        a.detail.as_ref().is_some_and(|d| d.actions.len() == 2)
    })
    .await;
    let target = app.selected_action().expect("selected").clone();
    let key = |c: KeyCode| Event::Key(KeyEvent::new(c, KeyModifiers::NONE));
    app.on_terminal_event(key(KeyCode::Char('a')));
    for c in "c2 beacon confirmed".chars() {
        app.on_terminal_event(key(KeyCode::Char(c)));
    }
    app.on_terminal_event(key(KeyCode::Enter));
    assert_eq!(app.overlay, Overlay::None);
    pump(&mut app, &mut h, "the action to finish", |a| {
        a.detail.as_ref().is_some_and(|d| {
            d.actions
                .iter()
                .any(|x| x.id == target.id && x.status == "succeeded")
        })
    })
    .await;
    h.shutdown().await;

    let conn = rusqlite::Connection::open(&db).expect("db");
    let rows: Vec<(String, Option<String>, String)> = conn
        .prepare("SELECT kind, reason, actor_name FROM audit WHERE action_id = ?1 ORDER BY seq")
        .expect("prepare")
        .query_map([target.id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    let kinds: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        kinds,
        ["proposal", "approval", "execution_intent", "outcome"]
    );
    assert_eq!(rows[1].1.as_deref(), Some("c2 beacon confirmed"));
    assert_eq!(rows[1].2, Actor::current().name);
    let list = std::fs::read_to_string(dir.path().join("blocklist.txt")).expect("blocklist");
    assert_eq!(list.trim(), target.params["entry"].as_str().expect("entry"));
}

#[test]
fn enrichment_pane_toggles_with_e_and_shows_age_and_budgets() {
    use vigil::engine::enrich::{EnrichmentResult, SourceKind, Verdict};
    use vigil::engine::ioc::{Ioc, IocKind};
    let dir = tempfile::tempdir().expect("tempdir");
    let line = std::fs::read_to_string(fixture("feodo-c2-alert.json")).expect("fixture");
    let db = database_with(dir.path(), &line);
    let mut app = app_over(&db, 100, 30, true);
    let ioc = Ioc::new(IocKind::Ipv4, "192.9.135.73".into(), "destination.ip");
    let mut feed = EnrichmentResult::new(
        &ioc,
        "feodotracker-ipblocklist.csv",
        SourceKind::Feed,
        Verdict::Malicious,
    );
    feed.score = Some(90);
    feed.feed_date = Some("2024-04-04".into());
    feed.fetched_at = chrono::Utc::now() - chrono::Duration::hours(2);
    let hostile = Ioc::new(
        IocKind::Domain,
        "evil\u{202e}moc.example.com".into(),
        "http.hostname",
    );
    let vt = EnrichmentResult::new(&hostile, "virustotal", SourceKind::Provider, Verdict::Clean);
    app.detail.as_mut().expect("detail").enrichment = vec![feed, vt];
    app.on_engine_event(EngineEvent::EnrichStatus(vec![busy_virustotal()]));
    let (before, _) = screen(&app, 100, 30);
    assert!(!before.contains("MALICIOUS"), "alert detail first");
    assert!(before.contains("vt 3/4min 120/500day q7"), "{before}");
    app.on_terminal_event(crossterm::event::Event::Key(
        crossterm::event::KeyEvent::new(
            crossterm::event::KeyCode::Char('e'),
            crossterm::event::KeyModifiers::NONE,
        ),
    ));
    let (text, buf) = screen(&app, 100, 30);
    assert!(text.contains("Enrichment · alert #1 (e: alert)"), "{text}");
    assert!(text.contains("MALICIOUS   90 192.9.135.73"), "{text}");
    assert!(
        text.contains("feodotracker-ipblocklist.csv · 2h ago list 2024-04-04"),
        "{text}"
    );
    assert!(text.contains("CLEAN"), "the verdict is spelled out: {text}");
    assert!(
        text.contains("evil\\u{202e}moc.example.com"),
        "escaped: {text}"
    );
    assert!(!text.contains('\u{202e}'));
    let y = (0..30u16)
        .find(|y| {
            (0..100u16)
                .map(|x| buf[(x, *y)].symbol())
                .collect::<String>()
                .contains("MALICIOUS")
        })
        .expect("row");
    let x = (0..100u16)
        .find(|x| buf[(*x, y)].symbol() == "M")
        .expect("col");
    assert_eq!(buf[(x, y)].fg, Color::Red);
}

fn press(app: &mut App, code: KeyCode) {
    app.on_terminal_event(Event::Key(KeyEvent::new(code, KeyModifiers::NONE)));
}

fn type_into(app: &mut App, text: &str) {
    for c in text.chars() {
        press(app, KeyCode::Char(c));
    }
}

/// Move down the queue until the selected alert has a proposed action.
fn select_alert_with_action(app: &mut App, db: &Path) {
    for _ in 0..6 {
        if app.selected_action().is_some() {
            return;
        }
        press(app, KeyCode::Char('j'));
        serve(app, db);
    }
    panic!("no fixture alert has a proposal");
}

#[test]
fn edit_types_into_the_field_under_the_cursor_and_checks_params_before_sending() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = database_with(dir.path(), &fixture_text());
    let mut app = app_over(&db, 80, 24, true);
    select_alert_with_action(&mut app, &db);
    let target = app.selected_action().expect("action").id;
    press(&mut app, KeyCode::Char('E'));
    assert!(matches!(&app.overlay, Overlay::Prompt(p) if p.kind == PromptKind::Edit));
    // The params field has the cursor first: clear it and type new params.
    app.on_terminal_event(Event::Key(KeyEvent::new(
        KeyCode::Char('u'),
        KeyModifiers::CONTROL,
    )));
    type_into(&mut app, r#"{"entry":"10.9.9"}"#);
    // Fix a typo in the middle: the cursor moves, the text goes where it is.
    for _ in 0..2 {
        press(&mut app, KeyCode::Left);
    }
    type_into(&mut app, ".9");
    press(&mut app, KeyCode::Tab);
    type_into(&mut app, "scope to the one host");
    let (text, _) = screen(&app, 80, 24);
    assert!(text.contains(r#"Params: {"entry":"10.9.9.9"}"#), "{text}");
    assert!(text.contains("Reason: scope to the one host"), "{text}");
    // Back in params, break the JSON: the prompt refuses and says why, nothing is sent.
    press(&mut app, KeyCode::Tab);
    press(&mut app, KeyCode::End);
    press(&mut app, KeyCode::Backspace);
    press(&mut app, KeyCode::Enter);
    assert!(
        !app.take_commands()
            .iter()
            .any(|c| matches!(c, EngineCommand::Edit { .. })),
        "invalid params are not sent"
    );
    let (text, _) = screen(&app, 80, 24);
    assert!(text.contains("params: not a JSON object"), "{text}");
    type_into(&mut app, "}");
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.overlay, Overlay::None);
    let mut params = serde_json::Map::new();
    params.insert("entry".into(), serde_json::json!("10.9.9.9"));
    assert_eq!(
        app.take_commands(),
        vec![EngineCommand::Edit {
            action_id: target,
            params,
            reason: "scope to the one host".into()
        }]
    );
}

/// The visible rows of the screen as text, one string per row.
fn rows_of(text: &str) -> Vec<&str> {
    text.lines().collect()
}

#[test]
fn approving_a_long_webhook_call_at_80x24_shows_the_reason_being_typed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = database_with(dir.path(), &fixture_text());
    let mut app = app_over(&db, 80, 24, true);
    select_alert_with_action(&mut app, &db);
    let sel = app.action_sel;
    let a = &mut app.detail.as_mut().expect("detail").actions[sel];
    a.connector = "webhook".into();
    a.rendered = format!(
        "POST https://soar-hooks.example.com/api/v2/containment/requests?tenant=blue&priority=high body {{\"host\":\"ws-0142.corp.example.com\",\"indicator\":\"41.108.52.138\",\"note\":\"{}\"}}",
        "x".repeat(120)
    );
    press(&mut app, KeyCode::Char('a'));
    type_into(&mut app, "beacon to known C2");
    let (text, _) = screen(&app, 80, 24);
    assert!(text.contains("Reason: beacon to known C2"), "{text}");
    assert!(text.contains("tenant=blue"), "the call is shown: {text}");
    assert!(
        text.contains(&"x".repeat(20)) && text.contains("}"),
        "the whole call is shown, wrapped: {text}"
    );
}

#[test]
fn the_actions_pane_scrolls_to_the_selected_action_at_80x24() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = database_with(dir.path(), &fixture_text());
    let mut app = app_over(&db, 80, 24, true);
    select_alert_with_action(&mut app, &db);
    let d = app.detail.as_mut().expect("detail");
    let template = d.actions[0].clone();
    d.actions = (0..8)
        .map(|i| {
            let mut a = template.clone();
            a.id = 100 + i;
            a.title = format!("Step number {i}");
            a
        })
        .collect();
    press(&mut app, KeyCode::Tab);
    for _ in 0..7 {
        press(&mut app, KeyCode::Char('j'));
    }
    assert_eq!(app.selected_action().map(|a| a.id), Some(107));
    let (text, _) = screen(&app, 80, 24);
    assert!(
        rows_of(&text).iter().any(|r| r.contains("▶ #107")),
        "the selected action is on screen: {text}"
    );
}

#[test]
fn every_help_line_can_be_read_whole_at_80x24() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = database_with(dir.path(), &fixture_text());
    let mut app = app_over(&db, 80, 24, true);
    press(&mut app, KeyCode::Char('?'));
    let mut seen = String::new();
    let mut last = String::new();
    for _ in 0..60 {
        let (text, _) = screen(&app, 80, 24);
        if text == last {
            break;
        }
        seen.push_str(&text);
        last = text;
        press(&mut app, KeyCode::Char('j'));
    }
    for (_, keys, action) in app.keymap.help_lines() {
        let whole = seen
            .lines()
            .any(|l| l.contains(action.describe()) && keys.split(' ').all(|k| l.contains(k)));
        assert!(
            whole,
            "help for {keys} ({}) is never shown whole:\n{seen}",
            action.describe()
        );
    }
}

#[test]
fn the_status_bar_shortens_the_database_path_at_a_separator_never_mid_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = database_with(dir.path(), &fixture_text());
    let mut app = app_over(&db, 80, 24, true);
    app.db_path = "/home/analyst/cases/2024-11-ransomware-response/evidence/vigil.db".into();
    app.on_engine_event(EngineEvent::EnrichStatus(vec![busy_virustotal()]));
    let (text, _) = screen(&app, 80, 24);
    let status = rows_of(&text)[23].trim_end().to_string();
    assert!(status.contains("6 alerts"), "{status}");
    assert!(status.ends_with("vigil.db"), "{status}");
    let path = status.rsplit(" · ").next().expect("path");
    assert!(
        app.db_path.ends_with(path.trim_start_matches('…'))
            && path.trim_start_matches('…').starts_with('/')
            || path == app.db_path,
        "cut at a separator: {path:?} in {status}"
    );
}

#[test]
fn the_rate_counts_alerts_that_arrive_not_those_already_stored() {
    use std::time::Instant;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = database_with(dir.path(), &fixture_text());
    let mut app = App::new(
        Keymap::from_texts(None).expect("default keymap"),
        db.display().to_string(),
        "default".into(),
        true,
    );
    app.resize(80, 24);
    let t0 = Instant::now();
    // The first tick comes before the first answer, as in the event loop.
    app.on_tick(t0);
    app.request_queue();
    serve(&mut app, &db);
    app.on_tick(t0 + Duration::from_secs(1));
    app.on_tick(t0 + Duration::from_secs(2));
    assert_eq!(app.totals.alerts, 6);
    assert_eq!(app.rate_per_minute(), 0.0, "stored alerts are not arrivals");
    let more = fixture_text()
        .lines()
        .take(3)
        .map(|l| l.replace("\"timestamp\":\"20", "\"timestamp\":\"19"))
        .collect::<Vec<_>>()
        .join("\n");
    ingest_into(&db, &format!("{more}\n"));
    app.on_db_changed();
    serve(&mut app, &db);
    app.on_tick(t0 + Duration::from_secs(3));
    assert_eq!(app.totals.alerts, 9);
    assert_eq!(
        app.rate_per_minute(),
        3.0,
        "three arrivals in the last minute"
    );
    app.on_tick(t0 + Duration::from_secs(70));
    assert_eq!(app.rate_per_minute(), 0.0, "a minute later they are old");
}

/// The screen row of the selected queue row (drawn reversed).
fn selected_row(buf: &ratatui::buffer::Buffer) -> Option<u16> {
    (2..12).find(|y| buf[(10, *y)].modifier.contains(Modifier::REVERSED))
}

#[test]
fn a_new_alert_above_the_view_is_announced_and_the_selection_stays() {
    let dir = tempfile::tempdir().expect("tempdir");
    let samples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("samples/suricata-eve.json");
    let db = database_with(
        dir.path(),
        &std::fs::read_to_string(samples).expect("samples"),
    );
    let mut app = app_over(&db, 80, 24, true);
    press(&mut app, KeyCode::PageDown);
    serve(&mut app, &db);
    press(&mut app, KeyCode::PageDown);
    serve(&mut app, &db);
    assert!(app.top > 0, "scrolled down");
    let chosen = app.selected_id.expect("selected");
    let total = app.totals.alerts;
    let (before, buf) = screen(&app, 80, 24);
    assert!(!before.contains("new above"), "{before}");
    let row_before = selected_row(&buf).expect("a selected row");
    let mirai = fixture_text()
        .lines()
        .find(|l| l.contains("Mirai"))
        .expect("mirai line")
        .replace("\"timestamp\":\"20", "\"timestamp\":\"19");
    ingest_into(&db, &format!("{mirai}\n"));
    app.on_db_changed();
    serve(&mut app, &db);
    assert_eq!(app.totals.alerts, total + 1);
    assert_eq!(app.selected_id, Some(chosen), "the selection stays");
    assert_eq!(app.row_at(app.selected).map(|r| r.id), Some(chosen));
    let (after, buf) = screen(&app, 80, 24);
    assert!(after.contains("▲ 1 new above (g: top)"), "{after}");
    assert_eq!(
        selected_row(&buf),
        Some(row_before),
        "the selected row does not jump:\n{after}"
    );
    press(&mut app, KeyCode::Char('g'));
    serve(&mut app, &db);
    let (top, _) = screen(&app, 80, 24);
    assert!(!top.contains("new above"), "{top}");
    assert!(
        top.contains("MALWARE-CNC User-Agent known ma"),
        "the new alert is at the top: {top}"
    );
}

#[test]
fn the_alert_detail_scrolls_to_its_last_line_at_80x24() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = database_with(dir.path(), &fixture_text());
    let mut app = app_over(&db, 80, 24, true);
    let (text, _) = screen(&app, 80, 24);
    assert!(
        !text.contains("│time "),
        "the detail is longer than its pane:\n{text}"
    );
    assert!(text.contains("J: "), "the pane says there is more:\n{text}");
    for _ in 0..10 {
        press(&mut app, KeyCode::Char('J'));
    }
    let (text, _) = screen(&app, 80, 24);
    assert!(text.contains("│time "), "{text}");
    assert!(text.contains("K: back up"), "{text}");
    assert_eq!(app.selected, 0, "J scrolls the pane, not the queue");
    press(&mut app, KeyCode::Char('j'));
    serve(&mut app, &db);
    assert_eq!(app.detail_scroll, 0, "another alert starts at its top");
}

/// On start, before the analyst has moved, the queue fills as alerts arrive: the selection stays
/// on the top row (the highest risk so far) and nothing is announced as "new above", however
/// many higher-risk alerts land after the first screen.
#[test]
fn before_the_analyst_moves_the_selection_stays_at_the_top_as_alerts_arrive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let line = |needle: &str| {
        fixture_text()
            .lines()
            .find(|l| l.contains(needle))
            .expect("fixture line")
            .to_string()
    };
    let quiet = line("duplicated Fragment");
    let db = database_with(dir.path(), &format!("{quiet}\n"));
    let mut app = app_over(&db, 80, 24, true);
    assert_eq!(app.selected, 0);
    let wazuh = line("\"agent\"");
    let arrivals: String = (0..20)
        .map(|i| wazuh.replacen("\"id\":\"", &format!("\"id\":\"{i}"), 1) + "\n")
        .collect();
    ingest_into(&db, &arrivals);
    app.on_db_changed();
    serve(&mut app, &db);
    assert_eq!(app.selected, 0, "the selection is on the top row");
    assert_eq!(app.top, 0);
    assert_eq!(app.new_above, 0);
    assert_eq!(
        app.selected_id,
        app.row_at(0).map(|r| r.id),
        "the top alert is the selected one"
    );
    let (text, _) = screen(&app, 80, 24);
    assert!(!text.contains("new above"), "{text}");
}
