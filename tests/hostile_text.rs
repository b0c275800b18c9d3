//! Hostile characters in file names and alert fields, through the real binary: nothing vigil
//! prints to a terminal carries them raw, and every JSON output escapes them yet parses back to
//! the very same strings.

mod common;
#[path = "common/daemon.rs"]
mod daemon;
#[path = "common/tmux.rs"]
mod tmux;
#[path = "common/wait.rs"]
mod wait;
use common::vigil;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// Terminal controls (ESC, an OSC that retitles the window, BEL, CSI as one C1 byte) and
/// invisible or reordering characters (RLO, zero-width space, a tag letter, an Arabic number
/// sign, a variation selector).
const HOSTILE: &str =
    "evil\u{1b}]2;pwned\u{7}\u{9b}2J\u{202e}gpj\u{200b}\u{e0041}\u{600}\u{fe0f}\u{85}";

/// Characters that must never reach a terminal or a JSON output as themselves.
fn raw_hostile(c: char) -> bool {
    let u = c as u32;
    (u < 0x20 && c != '\n')
        || (0x7f..=0x9f).contains(&u)
        || matches!(u, 0x200b..=0x200f | 0x202a..=0x202e | 0x2066..=0x2069 | 0xfe0f | 0x600)
        || (0xe0000..=0xe007f).contains(&u)
}

fn assert_clean(what: &str, bytes: &[u8]) {
    let text = std::str::from_utf8(bytes).unwrap_or_else(|e| panic!("{what}: not UTF-8: {e}"));
    let bad: Vec<String> = text
        .chars()
        .filter(|c| raw_hostile(*c))
        .map(|c| format!("U+{:04X}", c as u32))
        .collect();
    assert!(bad.is_empty(), "{what} carries raw {bad:?}:\n{text}");
}

fn repo(p: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(p)
        .display()
        .to_string()
}

/// One Suricata alert whose signature, category and URL carry `HOSTILE`.
fn hostile_alert() -> String {
    let line = std::fs::read_to_string(repo("tests/fixtures/suricata-alert.json"))
        .expect("fixture")
        .lines()
        .next()
        .expect("first alert")
        .to_string();
    let mut v: Value = serde_json::from_str(&line).expect("fixture parses");
    v["alert"]["signature"] = Value::String(format!("ET {HOSTILE} sig"));
    v["alert"]["category"] = Value::String(HOSTILE.to_string());
    v["http"]["url"] = Value::String(format!("/x?{HOSTILE}=http://203.0.113.9/a"));
    let mut s = serde_json::to_string(&v).expect("serialise");
    s.push('\n');
    s
}

#[test]
fn error_messages_show_hostile_file_names_as_visible_escapes() {
    let home = tempfile::tempdir().expect("tempdir");
    let missing = home.path().join(format!("{HOSTILE}.json"));
    let out = vigil(home.path(), &["ingest", &missing.display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    assert_clean("ingest stderr", &out.stderr);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("evil\\x1b]2;pwned\\x07\\x9b2J"), "{err}");
    assert!(err.contains("\\u{202e}gpj"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn argument_errors_show_hostile_arguments_as_visible_escapes() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = vigil(home.path(), &["export", HOSTILE]);
    assert_eq!(out.status.code(), Some(2));
    assert_clean("usage stderr", &out.stderr);
    let err = String::from_utf8_lossy(&out.stderr);
    // clap itself drops the escape sequence; what is left is shown, not obeyed.
    assert!(err.contains("\\x9b2J\\u{202e}gpj"), "{err}");
}

#[test]
fn json_outputs_escape_hostile_characters_and_parse_back_to_the_same_strings() {
    let home = tempfile::tempdir().expect("tempdir");
    let file = home.path().join(format!("{HOSTILE}.json"));
    std::fs::write(&file, hostile_alert()).expect("write alert");
    let file = file.display().to_string();

    let ingest = vigil(home.path(), &["ingest", &file]);
    assert!(
        ingest.status.success(),
        "{}",
        String::from_utf8_lossy(&ingest.stderr)
    );
    assert_clean("ingest stdout", &ingest.stdout);

    let export = vigil(home.path(), &["export"]);
    assert!(export.status.success());
    assert_clean("export", &export.stdout);
    let text = String::from_utf8_lossy(&export.stdout);
    assert!(text.contains("\\u202e"), "escaped as \\uXXXX: {text}");
    assert!(
        text.contains("\\udb40\\udc41"),
        "tag as a surrogate pair: {text}"
    );
    let doc: Value = serde_json::from_str(text.lines().next().expect("one alert")).expect("JSON");
    assert_eq!(doc["rule"]["name"], format!("ET {HOSTILE} sig"));
    assert_eq!(doc["rule"]["category"], HOSTILE);

    let audit = vigil(home.path(), &["audit", "export"]);
    assert!(audit.status.success());
    assert_clean("audit export", &audit.stdout);
    let trail = String::from_utf8_lossy(&audit.stdout);
    assert!(
        trail.contains("\\u202e"),
        "the batch names its file: {trail}"
    );
    // Escaping loses nothing: the exported trail still verifies on its own.
    let saved = home.path().join("trail.jsonl");
    std::fs::write(&saved, &audit.stdout).expect("save trail");
    let verify = vigil(
        home.path(),
        &["audit", "verify", "--file", &saved.display().to_string()],
    );
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );

    let score = vigil(home.path(), &["score", &file]);
    assert!(score.status.success());
    assert_clean("score", &score.stdout);
    let line: Value = serde_json::from_slice(&score.stdout).expect("score JSON");
    assert_eq!(line["rule"]["name"], format!("ET {HOSTILE} sig"));

    let iocs = vigil(home.path(), &["iocs", &file]);
    assert!(iocs.status.success());
    assert_clean("iocs", &iocs.stdout);
    let counts = vigil(home.path(), &["iocs", "--counts", &file]);
    assert!(counts.status.success());
    assert_clean("iocs --counts", &counts.stdout);
    let last: Value = serde_json::from_str(
        String::from_utf8_lossy(&counts.stdout)
            .lines()
            .last()
            .expect("counts line"),
    )
    .expect("counts JSON");
    assert_eq!(last["file"], file);

    for args in [vec!["actions", "--all"], vec!["enrich", "--status"]] {
        let out = vigil(home.path(), &args);
        assert!(out.status.success(), "{args:?}");
        assert_clean(&format!("{args:?}"), &out.stdout);
    }
}

#[test]
fn text_on_a_terminal_stdout_shows_hostile_characters_as_visible_escapes() {
    if !tmux::available() {
        eprintln!("SKIPPED: tmux is not installed");
        return;
    }
    let home = tempfile::tempdir().expect("tempdir");
    let data = home.path().join(format!("d{HOSTILE}"));
    let data = data.display().to_string();
    let t = tmux::Tmux::start(
        &[env!("CARGO_BIN_EXE_vigil"), "--version"],
        &[("VIGIL_DATA", &data)],
        home.path(),
        80,
        24,
    );
    assert_eq!(t.wait_exit(Duration::from_secs(10)), 0);
    let screen = t.wait_text("\\x1b]2;pwned\\x07", Duration::from_secs(10));
    assert!(screen.contains("\\u{202e}gpj"), "{screen}");
}

#[test]
fn the_log_names_hostile_files_with_visible_escapes() {
    let home = tempfile::tempdir().expect("tempdir");
    let file = home.path().join(format!("{HOSTILE}.json"));
    std::fs::write(&file, hostile_alert()).expect("write alert");
    let mut cmd = common::command(
        home.path(),
        &["daemon", "--watch", &file.display().to_string()],
    );
    cmd.stdout(std::process::Stdio::null());
    let daemon = daemon::Daemon::spawn(cmd);
    let log_path = home.path().join("data").join("vigil.log");
    let mut last = Vec::new();
    let log = wait::poll_for(Duration::from_secs(30), || {
        last = std::fs::read(&log_path).unwrap_or_default();
        String::from_utf8_lossy(&last)
            .contains("following")
            .then(|| last.clone())
    })
    .unwrap_or_else(|| {
        panic!(
            "the daemon never logged the file it follows: {}",
            String::from_utf8_lossy(&last)
        )
    });
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    daemon.wait();
    assert_clean("vigil.log", &log);
    let text = String::from_utf8_lossy(&log);
    assert!(
        text.contains("evil\\x1b]2;pwned\\x07\\x9b2J\\u{202e}gpj"),
        "{text}"
    );
}

#[test]
fn a_trained_forest_file_escapes_hostile_feature_names() {
    let home = tempfile::tempdir().expect("tempdir");
    let data = home.path().join("train.csv");
    // One-hot columns are named after the values they test, so a value names a feature.
    let mut text = String::from("proto,bytes,class\n");
    for i in 0..200 {
        let proto = ["tcp", "udp", HOSTILE][i % 3];
        let bytes = (i * 37) % 1000;
        let attack = proto == HOSTILE || bytes > 700;
        let class = if attack { "smurf" } else { "normal" };
        text.push_str(&format!("\"{proto}\",{bytes},{class}\n"));
    }
    std::fs::write(&data, text).expect("write csv");
    let out_dir = home.path().join("model");
    let (d, o) = (data.display().to_string(), out_dir.display().to_string());
    let trained = vigil(
        home.path(),
        &[
            "train", "--data", &d, "--label", "class", "--benign", "normal", "--out", &o,
            "--trees", "3",
        ],
    );
    assert!(
        trained.status.success(),
        "{}",
        String::from_utf8_lossy(&trained.stderr)
    );
    assert_clean("train stdout", &trained.stdout);
    let forest = std::fs::read(out_dir.join("forest.json")).expect("forest");
    assert_clean("forest.json", &forest);
    let v: Value = serde_json::from_slice(&forest).expect("forest parses");
    assert!(
        v["features"]
            .as_array()
            .expect("features")
            .iter()
            .any(|f| f.as_str().is_some_and(
                |f| f.contains("pwned\u{7}") && f.contains("\u{202e}gpj\u{200b}\u{e0041}")
            )),
        "{}",
        v["features"]
    );
    // The model loads back from what was written.
    let eval = vigil(home.path(), &["eval", "--model", &o, "--data", &d]);
    assert!(
        eval.status.success(),
        "{}",
        String::from_utf8_lossy(&eval.stderr)
    );
}

#[cfg(feature = "tui")]
#[test]
fn the_queue_shows_invisible_format_characters_as_visible_escapes() {
    if !tmux::available() {
        eprintln!("tmux is not installed: the terminal tests need it (apt-get install tmux)");
        return;
    }
    let home = tempfile::tempdir().expect("tempdir");
    let line = hostile_alert();
    let mut v: Value = serde_json::from_str(&line).expect("alert");
    // An Arabic number sign, a combining grapheme joiner and a Hangul filler: all render as
    // nothing, or as something other than what the bytes say.
    v["alert"]["signature"] = Value::String("\u{600}\u{34f}\u{3164}Zeus".into());
    let file = home.path().join("eve.json");
    std::fs::write(&file, format!("{v}\n")).expect("write alert");
    let env = |d: &str| home.path().join(d).display().to_string();
    let t = tmux::Tmux::start(
        &[
            env!("CARGO_BIN_EXE_vigil"),
            "--watch",
            &file.display().to_string(),
        ],
        &[
            ("VIGIL_DATA", &env("data")),
            ("VIGIL_CONFIG", &env("config")),
            ("VIGIL_CACHE", &env("cache")),
        ],
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")),
        80,
        24,
    );
    t.wait_text("\\u{600}\\u{34f}\\u{3164}Zeus", Duration::from_secs(60));
    t.keys(&["q"]);
    assert_eq!(t.wait_exit(Duration::from_secs(30)), 0, "{}", t.screen());
}
