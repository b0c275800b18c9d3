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
use std::path::{Path, PathBuf};
use std::time::Duration;
use wait::wait_for_change_in;

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

/// A daemon on `logs/eve.json` stores 200 alerts, is frozen (SIGSTOP) so it cannot read what
/// comes next, 1,000 more are written, the file is renamed to `eve.json.1` (and `after_rotation`
/// runs), a new `eve.json` gets 100 alerts, and the daemon is killed.
struct Crash {
    home: tempfile::TempDir,
    logs: PathBuf,
    db: PathBuf,
    eve: PathBuf,
    /// Bytes of the 200 alerts the daemon stored before it was frozen.
    read_to: i64,
}

fn crash_after_rotation(after_rotation: impl FnOnce(&Path)) -> Crash {
    let home = tempfile::tempdir().expect("tempdir");
    let logs = home.path().join("logs");
    std::fs::create_dir_all(&logs).expect("mkdir");
    let data = home.path().join("data");
    // Made first so the waits below can watch it for the database's writes.
    std::fs::create_dir_all(&data).expect("mkdir data");
    let db = data.join("vigil.db");
    let eve = logs.join("eve.json");
    append(&eve, 0..200);
    let read_to = std::fs::metadata(&eve).expect("eve.json").len() as i64;
    let daemon = watch(home.path(), &eve);
    wait_for_change_in(&data, Duration::from_secs(60), "the first alerts", || {
        alerts(&db) >= 200
    });
    daemon.signal(Signal::SIGSTOP);
    append(&eve, 200..1200);
    let rotated = logs.join("eve.json.1");
    std::fs::rename(&eve, &rotated).expect("rotate");
    after_rotation(&rotated);
    append(&eve, 1200..1300);
    daemon.signal(Signal::SIGKILL);
    drop(daemon);
    Crash {
        home,
        logs,
        db,
        eve,
        read_to,
    }
}

#[test]
fn kill_9_after_a_rename_rotation_loses_nothing_of_the_rotated_file() {
    let c = crash_after_rotation(|_| {});
    let stored = || alerts(&c.db);
    let _restarted = watch(c.home.path(), &c.eve);
    wait_for_change_in(
        c.db.parent().expect("data folder"),
        Duration::from_secs(120),
        "all 1,300 alerts",
        || stored() >= 1300,
    );
    assert_eq!(stored(), 1300, "each alert once");
    let recovered = number(
        &c.db,
        "SELECT count(*) FROM audit WHERE detail LIKE '%recovered_rotated%'",
    );
    assert!(recovered >= 1, "the recovery is in the audit trail");
    assert!(c.logs.join("eve.json.1").exists());
}

/// The rotated file is gone for good (compressed or deleted while vigil was down): the restart
/// cannot finish it, so it says so once, in the audit trail with how far the file was read and
/// how many bytes it had seen beyond that, and on the analyst's screen.
#[test]
fn a_rotated_file_that_cannot_be_found_after_kill_9_is_reported_once() {
    let c = crash_after_rotation(|rotated| {
        std::fs::remove_file(rotated).expect("the rotated file is gone");
    });
    let (db, eve) = (&c.db, &c.eve);
    let stored = || alerts(db);
    let lost = || {
        number(
            db,
            "SELECT count(*) FROM audit WHERE kind = 'tail_event' AND detail LIKE '%\"lost_rotated\"%'",
        )
    };
    let restarted = watch(c.home.path(), eve);
    wait_for_change_in(
        c.db.parent().expect("data folder"),
        Duration::from_secs(120),
        "the new file and the report",
        || stored() >= 300 && lost() >= 1,
    );
    drop(restarted);
    assert_eq!(stored(), 300, "the new file's 100 alerts once each");
    assert_eq!(lost(), 1, "reported once");
    let detail = db::texts(
        db,
        "SELECT detail FROM audit WHERE detail LIKE '%\"lost_rotated\"%'",
    );
    let detail: serde_json::Value = serde_json::from_str(&detail[0]).expect("json");
    assert_eq!(detail["path"], eve.display().to_string(), "{detail}");
    assert_eq!(detail["read_to"], c.read_to, "{detail}");

    // Another restart does not report it again.
    let again = watch(c.home.path(), eve);
    append(eve, 1300..1310);
    wait_for_change_in(
        c.db.parent().expect("data folder"),
        Duration::from_secs(60),
        "ten more alerts",
        || stored() >= 310,
    );
    drop(again);
    assert_eq!(lost(), 1, "reported once, not on every start");

    #[cfg(feature = "tui")]
    shows_on_screen(c.home.path(), db);
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
    t.wait_for(
        "the top line naming the file",
        Duration::from_secs(60),
        |s| {
            s.lines()
                .next()
                .is_some_and(|l| l.contains("eve.json not found after rotation"))
        },
    );
    t.keys(&["q"]);
    t.wait_exit(Duration::from_secs(30));
}
