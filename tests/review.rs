//! A saved case database handed to another analyst: `vigil review` shows it without changing
//! it, read-only commands work on it in a read-only folder, `--db` alone follows nothing, and a
//! clean exit leaves the whole case in the `.db` file.

mod common;
#[path = "common/daemon.rs"]
mod daemon;
#[path = "common/tmux.rs"]
mod tmux;
#[path = "common/wait.rs"]
mod wait;

use common::vigil;
use daemon::Daemon;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

/// A folder tree an unprivileged analyst can use: `home` (theirs, for vigil's data, config and
/// cache) and `case` (holding `case.db`, made read-only for everyone).
struct Case {
    _root: tempfile::TempDir,
    home: PathBuf,
    dir: PathBuf,
    db: PathBuf,
}

fn root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A case database built by ingesting the shipped samples, copied on its own (no `-wal`) into
/// a folder nobody may write to.
fn saved_case() -> Case {
    let root_dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(root_dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod root");
    let builder = root_dir.path().join("builder");
    let out = vigil(&builder, &["ingest", "samples/suricata-eve.json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let home = root_dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    if root() {
        let nobody = nix::unistd::User::from_name("nobody")
            .expect("passwd")
            .expect("a nobody user");
        std::os::unix::fs::chown(&home, Some(nobody.uid.as_raw()), None).expect("chown home");
    }
    let dir = root_dir.path().join("case");
    std::fs::create_dir(&dir).expect("case dir");
    let db = dir.join("case.db");
    std::fs::copy(builder.join("data/vigil.db"), &db).expect("copy the .db alone");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).expect("chmod db");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).expect("chmod dir");
    Case {
        _root: root_dir,
        home,
        dir,
        db,
    }
}

/// `argv` run as an unprivileged analyst: as `nobody` when the tests run as root.
fn as_analyst(argv: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    if root() {
        v.extend(
            [
                "setpriv",
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
            ]
            .map(String::from),
        );
    }
    v.extend(argv.iter().map(|s| s.to_string()));
    v
}

fn vigil_as_analyst(home: &Path, args: &[&str]) -> Output {
    let mut argv = vec![env!("CARGO_BIN_EXE_vigil")];
    argv.extend_from_slice(args);
    let argv = as_analyst(&argv);
    common::command_for(&argv[0], home, &argv[1..])
        .output()
        .expect("run vigil")
}

fn sha256(p: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(p).expect("read db")))
}

fn listing(dir: &Path) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| {
            let e = e.expect("entry");
            let len = e.metadata().expect("metadata").len();
            (e.file_name().to_string_lossy().into_owned(), len)
        })
        .collect();
    v.sort();
    v
}

fn exported_alerts(home: &Path, db: &Path) -> usize {
    let out = vigil_as_analyst(home, &["--db", &db.display().to_string(), "export"]);
    assert!(
        out.status.success(),
        "export: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[cfg(feature = "tui")]
#[test]
fn review_shows_a_read_only_case_and_refuses_every_decision() {
    if !tmux::available() {
        eprintln!("tmux is not installed: the terminal tests need it (apt-get install tmux)");
        return;
    }
    let case = saved_case();
    let before_hash = sha256(&case.db);
    let before_list = listing(&case.dir);
    let data = case.home.join("data").display().to_string();
    let config = case.home.join("config").display().to_string();
    let cache = case.home.join("cache").display().to_string();
    let db = case.db.display().to_string();
    let argv = as_analyst(&[env!("CARGO_BIN_EXE_vigil"), "review", &db]);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let t = tmux::Tmux::start(
        &argv,
        &[
            ("VIGIL_DATA", &data),
            ("VIGIL_CONFIG", &config),
            ("VIGIL_CACHE", &cache),
        ],
        Path::new(env!("CARGO_MANIFEST_DIR")),
        80,
        24,
    );
    let screen = t.wait_for(
        "the REVIEW banner over the queue",
        Duration::from_secs(60),
        |s| s.contains("REVIEW") && ["CRIT", "HIGH", "MED", "LOW"].iter().any(|b| s.contains(b)),
    );
    assert!(screen.lines().count() <= 24, "more than 24 rows:\n{screen}");
    for (key, verb) in [
        ("a", "approve"),
        ("r", "reject"),
        ("u", "roll back"),
        ("E", "edit"),
        ("d", "record a verdict"),
    ] {
        t.keys(&[key]);
        let s = t.wait_text(
            &format!("read-only review: cannot {verb}"),
            Duration::from_secs(10),
        );
        assert!(
            !s.contains("Reason: "),
            "{key} opened a decision prompt:\n{s}"
        );
    }
    t.keys(&["q"]);
    assert_eq!(t.wait_exit(Duration::from_secs(30)), 0, "{}", t.screen());
    assert_eq!(sha256(&case.db), before_hash, "review changed the database");
    assert_eq!(
        listing(&case.dir),
        before_list,
        "review created files beside it"
    );
}

#[test]
fn read_only_commands_work_on_a_case_in_a_read_only_folder() {
    let case = saved_case();
    let before_hash = sha256(&case.db);
    let before_list = listing(&case.dir);
    let db = case.db.display().to_string();
    for args in [
        vec!["export"],
        vec!["audit"],
        vec!["audit", "verify"],
        vec!["audit", "export"],
        vec!["actions", "--all"],
    ] {
        let mut full = vec!["--db", db.as_str()];
        full.extend(args.iter());
        let out = vigil_as_analyst(&case.home, &full);
        assert!(
            out.status.success(),
            "vigil {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.stdout.is_empty(), "vigil {args:?} printed nothing");
    }
    assert!(exported_alerts(&case.home, &case.db) > 0);
    assert_eq!(sha256(&case.db), before_hash);
    assert_eq!(listing(&case.dir), before_list);
}

#[test]
fn a_clean_exit_leaves_the_whole_case_in_the_db_file() {
    let home = tempfile::tempdir().expect("home");
    let out = vigil(home.path(), &["ingest", "samples/suricata-eve.json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored = String::from_utf8_lossy(&out.stdout).to_string();
    let summary: serde_json::Value = serde_json::from_str(stored.trim()).expect("summary");
    let alerts = summary["alerts"].as_u64().expect("alerts") as usize;
    assert!(alerts > 0);
    // Hand over the .db alone, as an analyst copying "the case file" would.
    let elsewhere = tempfile::tempdir().expect("elsewhere");
    let copy = elsewhere.path().join("handed-over.db");
    std::fs::copy(home.path().join("data/vigil.db"), &copy).expect("copy");
    let out = vigil(
        home.path(),
        &["--db", &copy.display().to_string(), "export"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), alerts);
}

#[test]
fn a_database_given_without_watch_follows_nothing() {
    let case = saved_case();
    // A writable copy, opened the way an analyst opens a saved case: `--db` and nothing else.
    let work = tempfile::tempdir().expect("work");
    let copy = work.path().join("copy.db");
    std::fs::copy(&case.db, &copy).expect("copy");
    let home = tempfile::tempdir().expect("home");
    let before = {
        let out = vigil(
            home.path(),
            &["--db", &copy.display().to_string(), "export"],
        );
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    let daemon = Daemon::start_piped(
        home.path(),
        &["--db", &copy.display().to_string(), "daemon"],
    );
    // The engine logs its watch set once the tailer has started; wait for that line.
    let log = home.path().join("data/vigil.log");
    let mut text = String::new();
    let watching = wait::poll_for(Duration::from_secs(60), || {
        text = std::fs::read_to_string(&log).unwrap_or_default();
        text.lines()
            .find(|l| l.contains("watch set"))
            .map(str::to_string)
    })
    .unwrap_or_else(|| panic!("no watch set in the log:\n{text}"));
    assert!(daemon.stop().status.success());
    assert!(
        !watching.contains("samples"),
        "a saved case followed the shipped samples: {watching}"
    );
    let out = vigil(
        home.path(),
        &["--db", &copy.display().to_string(), "export"],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), before);
}

/// A case saved by an earlier vigil has checkpoints without the columns that say whether a file
/// went missing; opened read-only (no schema changes allowed) its totals still read, with no
/// lost files.
#[test]
fn a_case_from_an_earlier_vigil_still_opens_for_review() {
    let home = tempfile::tempdir().expect("tempdir");
    let db = home.path().join("old.db");
    {
        let conn = vigil::engine::store::open(&db).expect("create");
        conn.execute_batch(
            "INSERT INTO checkpoints (file_id, path, byte_offset, line_no, updated_at, state)
             VALUES ('1:2:3:256:abc', '/var/log/suricata/eve.json', 10, 1, '2099-01-01T00:00:00Z', 'lost');
             ALTER TABLE checkpoints DROP COLUMN state;
             ALTER TABLE checkpoints DROP COLUMN len_seen;
             ALTER TABLE checkpoints DROP COLUMN tail_hash;",
        )
        .expect("an older schema");
    }
    let conn = vigil::engine::store::open_read_only(&db).expect("open read-only");
    let totals = vigil::engine::store::totals(&conn).expect("totals of an older case");
    assert_eq!(totals.lost_files, 0);
    assert_eq!(totals.last_lost, None);
}
