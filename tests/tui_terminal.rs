//! The real binary in a real terminal at 80x24: what an analyst sees on start and that `q` quits.
#![cfg(feature = "tui")]

#[path = "common/tmux.rs"]
mod tmux;
#[path = "common/wait.rs"]
mod wait;

use std::time::Duration;

#[test]
fn the_queue_of_shipped_samples_shows_at_80x24_and_q_quits() {
    if !tmux::available() {
        eprintln!("tmux is not installed: the terminal tests need it (apt-get install tmux)");
        return;
    }
    let home = tempfile::tempdir().expect("home");
    let t = vigil_at_80x24(&home_env(home.path()));
    let screen = t.wait_for(
        "the title and the queue with a risk band",
        Duration::from_secs(60),
        |s| {
            ["CRIT", "HIGH", "MED", "LOW"].iter().any(|b| s.contains(b))
                && s.contains("alerts")
                && s.contains("vigil")
        },
    );
    assert!(screen.lines().count() <= 24, "more than 24 rows:\n{screen}");
    t.keys(&["q"]);
    assert_eq!(t.wait_exit(Duration::from_secs(30)), 0, "{}", t.screen());
}

/// A private home for one run: data, config and cache directories as environment pairs.
fn home_env(home: &std::path::Path) -> Vec<(String, String)> {
    ["data", "config", "cache"]
        .iter()
        .map(|d| {
            (
                format!("VIGIL_{}", d.to_uppercase()),
                home.join(d).display().to_string(),
            )
        })
        .collect()
}

/// `vigil` with no arguments, as a new user runs it from the repository, at 80x24 with `env`.
fn vigil_at_80x24(env: &[(String, String)]) -> tmux::Tmux {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    tmux::Tmux::start(
        &[env!("CARGO_BIN_EXE_vigil")],
        &env,
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")),
        80,
        24,
    )
}

/// A lookup provider that accepts connections and never answers: every online lookup stays
/// in flight or queued behind the budget for as long as vigil runs.
fn silent_provider() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    addr
}

#[test]
fn q_quits_at_once_while_online_lookups_wait_and_logs_what_it_left_pending() {
    if !tmux::available() {
        eprintln!("tmux is not installed: the terminal tests need it (apt-get install tmux)");
        return;
    }
    let home = tempfile::tempdir().expect("home");
    let addr = silent_provider();
    std::fs::create_dir_all(home.path().join("config")).expect("config dir");
    std::fs::write(
        home.path().join("config/config.toml"),
        format!(
            "[enrichment.providers.virustotal]\nenabled = true\nbase_url = \"http://{addr}\"\nper_minute = 1\nper_day = 500\ntimeout_seconds = 600\nconcurrency = 1\nretries = 3\n"
        ),
    )
    .expect("config");
    let mut env = home_env(home.path());
    env.push(("VIGIL_VIRUSTOTAL_KEY".into(), "test-key-not-secret".into()));
    let t = vigil_at_80x24(&env);
    // The status bar shows the provider's queue once lookups wait behind the budget.
    t.wait_for(
        "queued lookups in the status bar",
        Duration::from_secs(90),
        |s| {
            s.lines().any(|l| {
                l.contains("vt ")
                    && l.split_whitespace()
                        .any(|w| w.starts_with('q') && w[1..].parse::<u32>().is_ok_and(|n| n > 0))
            })
        },
    );
    let asked = std::time::Instant::now();
    t.keys(&["q"]);
    assert_eq!(t.wait_exit(Duration::from_secs(60)), 0, "{}", t.screen());
    eprintln!("quit took {:?} with lookups queued", asked.elapsed());
    let log = std::fs::read_to_string(home.path().join("data/vigil.log")).expect("log");
    let line = log
        .lines()
        .find(|l| l.contains("online lookups left pending for the next start"))
        .unwrap_or_else(|| panic!("no line about pending lookups in the log:\n{log}"));
    assert!(
        line.split_whitespace().any(|w| w
            .trim_matches(|c: char| !c.is_ascii_digit())
            .parse::<u32>()
            .is_ok_and(|n| n > 0)),
        "the count is logged: {line}"
    );
    let db = rusqlite::Connection::open(home.path().join("data/vigil.db")).expect("db");
    let pending: i64 = db
        .query_row(
            "SELECT count(*) FROM enrichment_state WHERE online_pending = 1",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert!(
        pending > 0,
        "the lookups wait in the database for the next start"
    );
}

#[test]
fn a_sixteen_colour_terminal_gets_the_sixteen_named_colours() {
    if !tmux::available() {
        eprintln!("tmux is not installed: the terminal tests need it (apt-get install tmux)");
        return;
    }
    let run = |term: &str, colorterm: &str| -> String {
        let home = tempfile::tempdir().expect("home");
        let mut env = home_env(home.path());
        env.push(("TERM".into(), term.into()));
        env.push(("COLORTERM".into(), colorterm.into()));
        let t = vigil_at_80x24(&env);
        t.wait_for("the queue with a risk band", Duration::from_secs(60), |s| {
            s.contains("CRIT") && s.contains("alerts")
        });
        let screen = t.screen_with_escapes();
        t.keys(&["q"]);
        assert_eq!(t.wait_exit(Duration::from_secs(30)), 0);
        screen
    };
    let plain = run("xterm", "");
    assert!(
        !plain.contains("38;5;") && !plain.contains("48;5;"),
        "256-colour codes on a 16-colour terminal:\n{plain:?}"
    );
    assert!(
        plain.contains("\u{1b}[31m") || plain.contains(";31m") || plain.contains("[31;"),
        "red risk bands as a named colour:\n{plain:?}"
    );
    let rich = run("xterm-256color", "");
    assert!(rich.contains("CRIT"), "{rich:?}");
}

#[test]
fn edit_then_approve_types_params_and_reason_into_their_own_fields() {
    if !tmux::available() {
        eprintln!("tmux is not installed: the terminal tests need it (apt-get install tmux)");
        return;
    }
    let home = tempfile::tempdir().expect("home");
    let t = vigil_at_80x24(&home_env(home.path()));
    t.wait_for("a pending block action", Duration::from_secs(60), |s| {
        s.contains("▶ #") && s.contains("PENDING") && s.contains("to blocklist")
    });
    t.keys(&["E"]);
    t.wait_text("Params: {", Duration::from_secs(10));
    t.keys(&["C-u"]);
    t.type_text(r#"{"entry":"10.9.9.9"}"#);
    t.keys(&["Tab"]);
    t.type_text("scope to the one host");
    // The params field holds what was typed there, the reason what was typed after Tab.
    t.wait_for("both fields as typed", Duration::from_secs(10), |s| {
        s.contains("Reason: scope to the one host") && s.contains(r#"Params: {"entry":"10.9.9.9"}"#)
    });
    t.keys(&["Enter"]);
    // The edit changes the proposal; approving it is a second, separate decision.
    t.wait_text("add 10.9.9.9 to blocklist", Duration::from_secs(30));
    t.keys(&["a"]);
    t.wait_text("Approve action #", Duration::from_secs(10));
    t.type_text("scoped block confirmed");
    t.keys(&["Enter"]);
    let blocklist = home.path().join("data/blocklist.txt");
    let mut list = String::new();
    wait::poll_for(Duration::from_secs(30), || {
        list = std::fs::read_to_string(&blocklist).unwrap_or_default();
        list.lines().any(|l| l.trim() == "10.9.9.9").then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "the edited call never ran; blocklist {list:?}; screen:\n{}",
            t.screen()
        )
    });
    t.keys(&["q"]);
    assert_eq!(t.wait_exit(Duration::from_secs(30)), 0, "{}", t.screen());
    let audit = rusqlite::Connection::open(home.path().join("data/vigil.db"))
        .expect("db")
        .query_row(
            "SELECT count(*) FROM audit WHERE reason = 'scope to the one host'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .expect("audit");
    assert!(audit > 0, "the reason typed in the reason field is audited");
}
