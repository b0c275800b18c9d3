//! Crash harness: `vigil daemon` is killed with SIGKILL at random moments while a writer appends
//! alerts and rotates files at a steady rate; after the last restart every written alert must be
//! in the database exactly once, and no batch may have been read twice.
//!
//! Short run (part of `cargo test`): 5 kills over 30,000 alerts. Long run, with its figures in
//! the README:
//!   VIGIL_KILL9_KILLS=200 VIGIL_KILL9_ALERTS=200000 cargo test --release --test kill9 -- --nocapture
//!
//! Nothing here sleeps. The load generator is paced by a timed wait on its stop channel, each
//! kill comes once the daemon has committed a random number of further alerts (0 kills it
//! during start-up), and catching up is awaited the same way: filesystem notifications on the
//! database directory, re-checking the count, failing only when it stops moving.

mod common;
#[path = "common/daemon.rs"]
mod daemon;
#[path = "common/db.rs"]
mod db;
#[path = "common/eve.rs"]
mod eve;
#[path = "common/wait.rs"]
mod wait;

use daemon::Daemon;
use nix::sys::signal::Signal;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wait::{wait_for_change_in, wait_for_count_in};

/// The daemon on every `*.json` in `logs`, its stdout (the stop line) and stderr kept.
fn daemon(home: &Path, logs: &Path) -> Daemon {
    Daemon::start_piped(
        home,
        &["daemon", "--watch", &format!("{}/*.json", logs.display())],
    )
}

fn alert_line(id: u64) -> String {
    eve::alert_line(id, "ET TROJAN harness beacon", 1)
}

/// A private home with its `logs` and `data` folders made.
fn home_with_logs() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let home = tempfile::tempdir().expect("tempdir");
    let logs = home.path().join("logs");
    let data = home.path().join("data");
    std::fs::create_dir_all(&logs).expect("mkdir");
    std::fs::create_dir_all(&data).expect("mkdir");
    (home, logs, data)
}

struct Db(PathBuf);

impl Db {
    fn query(&self, sql: &str) -> i64 {
        db::number(&self.0, sql)
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
    let (home, logs, data) = home_with_logs();
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
        wait_for_count_in(
            &data,
            Duration::from_secs(60),
            "alerts before a kill",
            || db.alerts(),
            target,
        );
        child.signal(Signal::SIGKILL);
        child.wait();
    }
    let _ = stop.send(());
    writer.join().expect("writer");
    let total = written.load(Ordering::Relaxed) as i64;

    // One last run catches up, then stops cleanly on SIGTERM.
    let child = daemon(home.path(), &logs);
    // However slow the machine, the daemon keeps committing until it has caught up.
    wait_for_count_in(
        &data,
        Duration::from_secs(60),
        "the daemon catching up",
        || db.alerts(),
        total,
    );
    let out = child.stop();
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
    let (home, logs, data) = home_with_logs();
    let db = Db(data.join("vigil.db"));
    // Create the database first so both daemons open the same schema.
    let first = daemon(home.path(), &logs);
    wait_for_change_in(&data, Duration::from_secs(30), "the database", || {
        data.join("vigil.db").exists()
    });
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
    wait_for_count_in(
        &data,
        Duration::from_secs(60),
        "both daemons",
        || db.alerts(),
        total as i64,
    );
    for c in [first, second] {
        let out = c.stop();
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
