//! `kill -9` right after a rename rotation: the daemon is frozen (SIGSTOP) so that it cannot
//! read what is written next, the file gets more alerts and is renamed to a name outside the
//! watch set, a new file starts, and the daemon is killed. After a restart every alert is
//! stored exactly once: the rotated file is found by its inode beside the old name and read on
//! from its checkpoint.

#[cfg(feature = "tui")]
#[path = "common/tmux.rs"]
mod tmux;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn alert_line(id: u64) -> String {
    format!(
        r#"{{"timestamp":"2024-05-01T12:00:00.{:06}Z","flow_id":{id},"event_type":"alert","src_ip":"198.51.100.{}","src_port":{},"dest_ip":"10.1.0.5","dest_port":443,"proto":"TCP","alert":{{"action":"allowed","gid":1,"signature_id":2000001,"rev":1,"signature":"ET TROJAN rotation crash {id}","category":"A Network Trojan was detected","severity":1}}}}"#,
        id % 1_000_000,
        id % 250,
        1024 + id % 60000
    ) + "\n"
}

fn append(path: &Path, ids: std::ops::Range<u64>) {
    let text: String = ids.map(alert_line).collect();
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open")
        .write_all(text.as_bytes())
        .expect("append");
}

fn query(db: &Path, sql: &str) -> i64 {
    let Ok(conn) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return 0;
    };
    let _ = conn.busy_timeout(Duration::from_secs(5));
    conn.query_row(sql, [], |r| r.get(0)).unwrap_or(0)
}

fn wait_until(limit: Duration, what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Daemon(Child);

impl Daemon {
    fn start(home: &Path, watch: &Path) -> Daemon {
        Daemon(
            Command::new(env!("CARGO_BIN_EXE_vigil"))
                .args(["daemon", "--watch"])
                .arg(watch)
                .env("VIGIL_DATA", home.join("data"))
                .env("VIGIL_CONFIG", home.join("config"))
                .env("VIGIL_CACHE", home.join("cache"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start vigil daemon"),
        )
    }
    fn signal(&self, s: Signal) {
        kill(Pid::from_raw(self.0.id() as i32), s).expect("signal");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn kill_9_after_a_rename_rotation_loses_nothing_of_the_rotated_file() {
    let home = tempfile::tempdir().expect("tempdir");
    let logs = home.path().join("logs");
    std::fs::create_dir_all(&logs).expect("mkdir");
    let db = home.path().join("data").join("vigil.db");
    let eve = logs.join("eve.json");
    let alerts = || query(&db, "SELECT count(*) FROM alerts");

    append(&eve, 0..200);
    let daemon = Daemon::start(home.path(), &eve);
    wait_until(Duration::from_secs(60), "the first alerts", || {
        alerts() >= 200
    });

    // Frozen, it cannot read what comes next; then rotated away and killed.
    daemon.signal(Signal::SIGSTOP);
    append(&eve, 200..1200);
    std::fs::rename(&eve, logs.join("eve.json.1")).expect("rotate");
    append(&eve, 1200..1300);
    daemon.signal(Signal::SIGKILL);
    drop(daemon);

    let _restarted = Daemon::start(home.path(), &eve);
    wait_until(Duration::from_secs(120), "all 1,300 alerts", || {
        alerts() >= 1300
    });
    assert_eq!(alerts(), 1300, "each alert once");
    let recovered = query(
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
    let alerts = || query(&db, "SELECT count(*) FROM alerts");
    let lost = || {
        query(
            &db,
            "SELECT count(*) FROM audit WHERE kind = 'tail_event' AND detail LIKE '%\"lost_rotated\"%'",
        )
    };

    append(&eve, 0..200);
    let read_to = std::fs::metadata(&eve).expect("eve.json").len() as i64;
    let daemon = Daemon::start(home.path(), &eve);
    wait_until(Duration::from_secs(60), "the first alerts", || {
        alerts() >= 200
    });

    daemon.signal(Signal::SIGSTOP);
    append(&eve, 200..1200);
    let rotated = logs.join("eve.json.1");
    std::fs::rename(&eve, &rotated).expect("rotate");
    std::fs::remove_file(&rotated).expect("the rotated file is gone");
    append(&eve, 1200..1300);
    daemon.signal(Signal::SIGKILL);
    drop(daemon);

    let restarted = Daemon::start(home.path(), &eve);
    wait_until(
        Duration::from_secs(120),
        "the new file and the report",
        || alerts() >= 300 && lost() >= 1,
    );
    drop(restarted);
    assert_eq!(alerts(), 300, "the new file's 100 alerts once each");
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
    let again = Daemon::start(home.path(), &eve);
    append(&eve, 1300..1310);
    wait_until(Duration::from_secs(60), "ten more alerts", || {
        alerts() >= 310
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
