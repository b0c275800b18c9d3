//! `kill -9` right after a rename rotation: the daemon is frozen (SIGSTOP) so that it cannot
//! read what is written next, the file gets more alerts and is renamed to a name outside the
//! watch set, a new file starts, and the daemon is killed. After a restart every alert is
//! stored exactly once: the rotated file is found by its inode beside the old name and read on
//! from its checkpoint.

mod common;
#[path = "common/daemon.rs"]
mod daemon;
#[path = "common/db.rs"]
mod db;
#[path = "common/eve.rs"]
mod eve;
#[cfg(feature = "tui")]
#[path = "common/tmux.rs"]
mod tmux;
#[path = "common/wait.rs"]
mod wait;

use daemon::Daemon;
use db::{alerts, number};
use nix::sys::signal::Signal;
use std::io::Write;
use std::path::Path;
use std::time::Duration;
use wait::wait_until;

fn append(path: &Path, ids: std::ops::Range<u64>) {
    let text = eve::alert_lines(ids, "ET TROJAN rotation crash", 1);
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open")
        .write_all(text.as_bytes())
        .expect("append");
}

fn watch(home: &Path, file: &Path) -> Daemon {
    Daemon::start(home, &["daemon", "--watch", &file.display().to_string()])
}

#[test]
fn kill_9_after_a_rename_rotation_loses_nothing_of_the_rotated_file() {
    let home = tempfile::tempdir().expect("tempdir");
    let logs = home.path().join("logs");
    std::fs::create_dir_all(&logs).expect("mkdir");
    let db = home.path().join("data").join("vigil.db");
    let eve = logs.join("eve.json");
    let stored = || alerts(&db);

    append(&eve, 0..200);
    let daemon = watch(home.path(), &eve);
    wait_until(Duration::from_secs(60), "the first alerts", || {
        stored() >= 200
    });

    // Frozen, it cannot read what comes next; then rotated away and killed.
    daemon.signal(Signal::SIGSTOP);
    append(&eve, 200..1200);
    std::fs::rename(&eve, logs.join("eve.json.1")).expect("rotate");
    append(&eve, 1200..1300);
    daemon.signal(Signal::SIGKILL);
    drop(daemon);

    let _restarted = watch(home.path(), &eve);
    wait_until(Duration::from_secs(120), "all 1,300 alerts", || {
        stored() >= 1300
    });
    assert_eq!(stored(), 1300, "each alert once");
    let recovered = number(
        &db,
        "SELECT count(*) FROM audit WHERE detail LIKE '%recovered_rotated%'",
    );
    assert!(recovered >= 1, "the recovery is in the audit trail");
}

/// The rotated file is gone for good (compressed or deleted while vigil was down): the restart
/// cannot finish it, so it says so once, in the audit trail with how far the file was read and
/// how many bytes it had seen beyond that, and on the analyst's screen.
#[test]
fn a_rotated_file_that_cannot_be_found_after_kill_9_is_reported_once() {
    let home = tempfile::tempdir().expect("tempdir");
    let logs = home.path().join("logs");
    std::fs::create_dir_all(&logs).expect("mkdir");
    let db = home.path().join("data").join("vigil.db");
    let eve = logs.join("eve.json");
    let stored = || alerts(&db);
    let lost = || {
        number(
            &db,
            "SELECT count(*) FROM audit WHERE kind = 'tail_event' AND detail LIKE '%\"lost_rotated\"%'",
        )
    };

    append(&eve, 0..200);
    let read_to = std::fs::metadata(&eve).expect("eve.json").len() as i64;
    let daemon = watch(home.path(), &eve);
    wait_until(Duration::from_secs(60), "the first alerts", || {
        stored() >= 200
    });

    daemon.signal(Signal::SIGSTOP);
    append(&eve, 200..1200);
    let rotated = logs.join("eve.json.1");
    std::fs::rename(&eve, &rotated).expect("rotate");
    std::fs::remove_file(&rotated).expect("the rotated file is gone");
    append(&eve, 1200..1300);
    daemon.signal(Signal::SIGKILL);
    drop(daemon);

    let restarted = watch(home.path(), &eve);
    wait_until(
        Duration::from_secs(120),
        "the new file and the report",
        || stored() >= 300 && lost() >= 1,
    );
    drop(restarted);
    assert_eq!(stored(), 300, "the new file's 100 alerts once each");
    assert_eq!(lost(), 1, "reported once");
    let conn = rusqlite::Connection::open(&db).expect("open");
    let detail: String = conn
        .query_row(
            "SELECT detail FROM audit WHERE detail LIKE '%\"lost_rotated\"%'",
            [],
            |r| r.get(0),
        )
        .expect("the lost_rotated record");
    let detail: serde_json::Value = serde_json::from_str(&detail).expect("json");
    assert_eq!(detail["path"], eve.display().to_string(), "{detail}");
    assert_eq!(detail["read_to"], read_to, "{detail}");

    // Another restart does not report it again.
    let again = watch(home.path(), &eve);
    append(&eve, 1300..1310);
    wait_until(Duration::from_secs(60), "ten more alerts", || {
        stored() >= 310
    });
    drop(again);
    assert_eq!(lost(), 1, "reported once, not on every start");

    #[cfg(feature = "tui")]
    shows_on_screen(home.path(), &db);
}

/// The analyst who opens the queue afterwards sees which file could not be finished.
#[cfg(feature = "tui")]
fn shows_on_screen(home: &Path, db: &Path) {
    if !tmux::available() {
        eprintln!("tmux is not installed: the terminal tests need it (apt-get install tmux)");
        return;
    }
    let dir = |d: &str| home.join(d).display().to_string();
    let t = tmux::Tmux::start(
        &[
            env!("CARGO_BIN_EXE_vigil"),
            "--db",
            &db.display().to_string(),
        ],
        &[
            ("VIGIL_DATA", &dir("data")),
            ("VIGIL_CONFIG", &dir("config")),
            ("VIGIL_CACHE", &dir("cache")),
        ],
        home,
        80,
        24,
    );
    let screen = t.wait_text("eve.json", Duration::from_secs(60));
    assert!(
        screen
            .lines()
            .next()
            .is_some_and(|l| l.contains("eve.json not found")),
        "the header names the file: {screen}"
    );
    t.keys(&["q"]);
    t.wait_exit(Duration::from_secs(30));
}
