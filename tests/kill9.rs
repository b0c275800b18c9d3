//! Crash harness: `vigil daemon` is killed with SIGKILL at random moments while a writer appends
//! alerts and rotates files at a steady rate; after the last restart every written alert must be
//! in the database exactly once, and no batch may have been read twice.
//!
//! Short run (part of `cargo test`): 5 kills. Long run, with its figures in the README:
//!   VIGIL_KILL9_KILLS=200 cargo test --release --test kill9 -- --nocapture
//!
//! Nothing here sleeps. The load generator is paced by a timed wait on its stop channel, each
//! kill comes once the daemon has committed a random number of further alerts (0 kills it
//! during start-up), and catching up is awaited the same way: filesystem notifications on the
//! database directory, re-checking the count.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A running daemon that is killed if the test ends early (a failed assertion must not leave
/// it running).
struct Daemon(Option<Child>);

impl Daemon {
    fn id(&self) -> u32 {
        self.0.as_ref().map_or(0, Child::id)
    }
    fn wait_with_output(mut self) -> std::process::Output {
        self.0
            .take()
            .expect("running")
            .wait_with_output()
            .expect("daemon exit")
    }
    fn wait(mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn daemon(home: &Path, logs: &Path) -> Daemon {
    Daemon(Some(spawn_daemon(home, logs)))
}

fn spawn_daemon(home: &Path, logs: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["daemon", "--watch", &format!("{}/*.json", logs.display())])
        .env("VIGIL_DATA", home.join("data"))
        .env("VIGIL_CONFIG", home.join("config"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start vigil daemon")
}

fn alert_line(id: u64) -> String {
    format!(
        r#"{{"timestamp":"2024-05-01T12:00:00.{:06}Z","flow_id":{id},"event_type":"alert","src_ip":"198.51.100.{}","src_port":{},"dest_ip":"10.1.0.5","dest_port":443,"proto":"TCP","alert":{{"action":"allowed","gid":1,"signature_id":{},"rev":1,"signature":"ET TROJAN harness beacon {id}","category":"A Network Trojan was detected","severity":1}}}}"#,
        id % 1_000_000,
        id % 250,
        1024 + id % 60000,
        2_000_000 + id % 7
    ) + "\n"
}

struct Db(PathBuf);

impl Db {
    fn query(&self, sql: &str) -> i64 {
        let conn = match rusqlite::Connection::open_with_flags(
            &self.0,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        ) {
            Ok(c) => c,
            Err(_) => return 0,
        };
        let _ = conn.busy_timeout(Duration::from_secs(5));
        conn.query_row(sql, [], |r| r.get(0)).unwrap_or(0)
    }
    fn alerts(&self) -> i64 {
        self.query("SELECT count(*) FROM alerts")
    }
    /// Alerts read a second time: each batch records how many of its alerts were already stored.
    fn reread(&self) -> i64 {
        self.query(
            "SELECT coalesce(sum(json_extract(detail, '$.summary.duplicates')), 0) FROM audit WHERE kind = 'ingest_batch'",
        )
    }
}

/// Block until `count()` reaches `target`, re-checking on every change in `dir`. Fails only
/// when the count stops moving for `stall` short of the target (so a slow machine is waited
/// for, and a loss still fails, naming how far it got).
fn wait_for_count(dir: &Path, stall: Duration, what: &str, count: impl Fn() -> i64, target: i64) {
    use notify::Watcher;
    let (tx, rx) = std::sync::mpsc::channel();
    let mut w = notify::recommended_watcher(move |_e| {
        let _ = tx.send(());
    })
    .expect("watcher");
    w.watch(dir, notify::RecursiveMode::NonRecursive)
        .expect("watch");
    let mut last = count();
    let mut deadline = Instant::now() + stall;
    while last < target {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "{what}: stuck at {last} of {target} for {stall:?}"
        );
        // A change in the database directory is the event; the timeout only bounds the wait.
        let _ = rx.recv_timeout(left.min(Duration::from_millis(500)));
        let now = count();
        if now > last {
            deadline = Instant::now() + stall;
        }
        last = now;
    }
}

#[test]
fn sigkill_at_random_moments_loses_and_duplicates_nothing() {
    let kills: u32 = std::env::var("VIGIL_KILL9_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    // A fixed amount, however long the kills take: on a slow machine the writer would
    // otherwise outrun the daemon for as long as the kills last.
    let alerts: u64 = std::env::var("VIGIL_KILL9_ALERTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30_000);
    let seed: u64 = std::env::var("VIGIL_KILL9_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(9);
    let home = tempfile::tempdir().expect("tempdir");
    let logs = home.path().join("logs");
    let data = home.path().join("data");
    std::fs::create_dir_all(&logs).expect("mkdir");
    std::fs::create_dir_all(&data).expect("mkdir");
    let db = Db(data.join("vigil.db"));

    // The load: 40 alerts every 10 ms (4,000/s), renamed aside every 3,000 alerts, until
    // `alerts` are written.
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let (written, logs) = (written.clone(), logs.clone());
        std::thread::spawn(move || {
            let mut id = 0u64;
            let mut rotations = 0;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(logs.join("eve.json"))
                .expect("open");
            while id < alerts {
                let mut buf = String::new();
                for _ in 0..40 {
                    buf.push_str(&alert_line(id));
                    id += 1;
                }
                f.write_all(buf.as_bytes()).expect("append");
                written.store(id, Ordering::Relaxed);
                if id.is_multiple_of(3000) {
                    rotations += 1;
                    std::fs::rename(
                        logs.join("eve.json"),
                        logs.join(format!("eve-{rotations}.json")),
                    )
                    .expect("rotate");
                    f = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(logs.join("eve.json"))
                        .expect("open");
                }
                // The pace: wait up to 10 ms for the stop signal (or a dropped sender).
                match stopped.recv_timeout(Duration::from_millis(10)) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    _ => break,
                }
            }
        })
    };

    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    for _ in 0..kills {
        // The kill moment: after a random number of further committed alerts.
        let target = (db.alerts() + rng.gen_range(0..400)).min(alerts as i64);
        let child = daemon(home.path(), &logs);
        wait_for_count(
            &data,
            Duration::from_secs(60),
            "alerts before a kill",
            || db.alerts(),
            target,
        );
        kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).expect("kill -9");
        child.wait();
    }
    let _ = stop.send(());
    writer.join().expect("writer");
    let total = written.load(Ordering::Relaxed) as i64;

    // One last run catches up, then stops cleanly on SIGTERM.
    let child = daemon(home.path(), &logs);
    // However slow the machine, the daemon keeps committing until it has caught up.
    wait_for_count(
        &data,
        Duration::from_secs(60),
        "the daemon catching up",
        || db.alerts(),
        total,
    );
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).expect("SIGTERM");
    let out = child.wait_with_output();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stopped: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stop line");
    assert_eq!(stopped["stopped"], "SIGTERM");
    assert_eq!(stopped["clean"], true, "{stopped}");

    let stored = db.alerts();
    let lost = total - stored;
    let reread = db.reread();
    println!(
        "{}",
        serde_json::json!({"kills": kills, "written": total, "stored": stored, "lost": lost,
                           "duplicated": reread, "stop_ms": stopped["stop_ms"]})
    );
    assert_eq!(lost, 0, "alerts lost");
    assert_eq!(reread, 0, "alerts read twice");
}

/// Two daemons on one database and one set of files: the checkpoint compare-and-set lets only
/// one of them commit each range, so nothing is stored or read twice.
#[test]
fn two_daemons_on_one_database_never_double_ingest() {
    let home = tempfile::tempdir().expect("tempdir");
    let logs = home.path().join("logs");
    let data = home.path().join("data");
    std::fs::create_dir_all(&logs).expect("mkdir");
    std::fs::create_dir_all(&data).expect("mkdir");
    let db = Db(data.join("vigil.db"));
    // Create the database first so both daemons open the same schema.
    let first = daemon(home.path(), &logs);
    wait_for_count(
        &data,
        Duration::from_secs(30),
        "the database",
        || i64::from(data.join("vigil.db").exists()),
        1,
    );
    let second = daemon(home.path(), &logs);
    let total = 6000u64;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(logs.join("eve.json"))
        .expect("open");
    for chunk in 0..(total / 500) {
        let mut buf = String::new();
        for id in chunk * 500..(chunk + 1) * 500 {
            buf.push_str(&alert_line(id));
        }
        f.write_all(buf.as_bytes()).expect("append");
    }
    wait_for_count(
        &data,
        Duration::from_secs(60),
        "both daemons",
        || db.alerts(),
        total as i64,
    );
    for c in [first, second] {
        kill(Pid::from_raw(c.id() as i32), Signal::SIGTERM).expect("SIGTERM");
        let out = c.wait_with_output();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(db.alerts(), total as i64);
    assert_eq!(db.reread(), 0, "a range was read by both daemons");
    // Both did take part: refused (conflicting) batches are how the loser learns to skip ahead.
    let committed_batches = db.query("SELECT count(*) FROM audit WHERE kind = 'ingest_batch'");
    assert!(committed_batches >= 1);
}
