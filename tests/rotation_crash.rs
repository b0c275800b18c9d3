//! `kill -9` right after a rename rotation: the daemon is frozen (SIGSTOP) so that it cannot
//! read what is written next, the file gets more alerts and is renamed to a name outside the
//! watch set, a new file starts, and the daemon is killed. After a restart every alert is
//! stored exactly once: the rotated file is found by its inode beside the old name and read on
//! from its checkpoint.

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
