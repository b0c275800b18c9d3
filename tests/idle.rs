//! An idle vigil looks at its files once a second and does nothing else: the real daemon on a
//! file and on a folder, and the real TUI in tmux at 80x24, after they have read everything.
//!
//! Idle is counted, not timed: the daemon prints its tailer counters on SIGUSR1, and across a
//! window of fallback-poll ticks the watch set may be scanned once per tick (plus one for a
//! scan already under way), never more. Its own reads and directory listings must not wake it.
//! CPU figures are `benches/idle_cpu.sh`'s job.

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

use db::alerts;
use nix::sys::signal::Signal;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};
use wait::wait_until;

const ALERTS: i64 = 40;

fn write_alerts(path: &Path, ids: std::ops::Range<u64>) {
    std::fs::write(path, eve::alert_lines(ids, "ET TROJAN idle check", 2)).expect("write alerts");
}

fn quarantined(db: &Path) -> Vec<(String, String)> {
    db::query(db, "SELECT file, reason FROM quarantine", |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
    .unwrap_or_default()
}

/// Whether `pid` has a handler for SIGUSR1 (signal 10: bit 9 of `SigCgt` in /proc/PID/status).
fn catches_usr1(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .is_some_and(|m| m & (1 << 9) != 0)
}

/// A daemon whose status lines (its stdout) are read as they come.
struct Watching {
    daemon: daemon::Daemon,
    lines: Receiver<String>,
}

impl Watching {
    fn start(home: &Path, watch: &Path) -> Watching {
        let mut cmd = common::command(home, &["daemon", "--watch", &watch.display().to_string()]);
        cmd.stdout(Stdio::piped()).stderr(Stdio::null());
        let mut daemon = daemon::Daemon::spawn(cmd);
        let out = daemon.take_stdout();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let pid = daemon.pid();
        // A SIGUSR1 sent before vigil listens for it would end the process.
        wait_until(
            Duration::from_secs(30),
            "the daemon to listen for SIGUSR1",
            || catches_usr1(pid),
        );
        Watching { daemon, lines }
    }

    /// The tailer counters, asked for with SIGUSR1 as an analyst would.
    fn activity(&self) -> serde_json::Value {
        self.daemon.signal(Signal::SIGUSR1);
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(10))
                .expect("a status line after SIGUSR1");
            let v: serde_json::Value = serde_json::from_str(&line).expect("status line is JSON");
            if v.get("tailer").is_some() {
                return v;
            }
        }
    }
}

fn count(v: &serde_json::Value, field: &str) -> u64 {
    v["tailer"][field]
        .as_u64()
        .unwrap_or_else(|| panic!("tailer.{field} in {v}"))
}

/// Count scans across five poll ticks: at most one per tick, plus one already under way.
fn assert_idle(daemon: &Watching, what: &str) {
    // Enrichment and playbooks commit for a moment after the alerts land: start counting once
    // two poll ticks pass with no commit. An engine that keeps committing never gets there.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let a = daemon.activity();
        wait_until(Duration::from_secs(30), "two poll ticks", || {
            count(&daemon.activity(), "polls") >= count(&a, "polls") + 2
        });
        let b = daemon.activity();
        if a["commits"] == b["commits"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "idle daemon on {what} kept committing: {a} then {b}"
        );
    }
    let before = daemon.activity();
    let mut after = before.clone();
    wait_until(Duration::from_secs(30), "five poll ticks", || {
        after = daemon.activity();
        count(&after, "polls") >= count(&before, "polls") + 5
    });
    let scans = count(&after, "scans") - count(&before, "scans");
    let polls = count(&after, "polls") - count(&before, "polls");
    assert!(
        scans <= polls + 1,
        "idle daemon on {what} scanned {scans} times across {polls} poll ticks \
         (before {before}, after {after})"
    );
    assert_eq!(
        before["commits"], after["commits"],
        "idle daemon on {what} committed to the database with nothing arriving"
    );
}

#[test]
fn idle_daemon_on_a_file_scans_once_per_poll() {
    let home = tempfile::tempdir().expect("tempdir");
    let logs = home.path().join("logs");
    std::fs::create_dir_all(&logs).expect("mkdir");
    let db = home.path().join("data").join("vigil.db");
    // A sensor's file exists before its first alert: empty, nothing appended yet.
    let eve = logs.join("eve.json");
    std::fs::write(&eve, "").expect("create eve.json");
    // Another file in the same directory, not watched: its presence must not matter.
    write_alerts(&logs.join("other.json"), 1000..1010);
    let daemon = Watching::start(home.path(), &eve);
    assert_idle(&daemon, "an empty file");

    write_alerts(&eve, 0..ALERTS as u64);
    wait_until(Duration::from_secs(60), "the alerts to be stored", || {
        alerts(&db) >= ALERTS
    });
    assert_idle(&daemon, "a file read to its end");
    assert_eq!(alerts(&db), ALERTS, "nothing read twice");
}

#[test]
fn idle_daemon_on_a_folder_scans_once_per_poll() {
    let home = tempfile::tempdir().expect("tempdir");
    let logs = home.path().join("logs");
    std::fs::create_dir_all(&logs).expect("mkdir");
    write_alerts(&logs.join("a.json"), 0..(ALERTS as u64 / 2));
    write_alerts(&logs.join("b.json"), (ALERTS as u64 / 2)..ALERTS as u64);
    let db = home.path().join("data").join("vigil.db");
    let daemon = Watching::start(home.path(), &logs);
    wait_until(Duration::from_secs(60), "the alerts to be stored", || {
        alerts(&db) >= ALERTS
    });
    assert_idle(&daemon, "a folder read to its end");
    assert_eq!(alerts(&db), ALERTS, "nothing read twice");
}

#[test]
fn idle_daemon_on_a_glob_scans_once_per_poll() {
    let home = tempfile::tempdir().expect("tempdir");
    let logs = home.path().join("logs");
    std::fs::create_dir_all(&logs).expect("mkdir");
    write_alerts(&logs.join("eve-1.json"), 0..ALERTS as u64);
    let db = home.path().join("data").join("vigil.db");
    let daemon = Watching::start(home.path(), &logs.join("eve-*.json"));
    wait_until(Duration::from_secs(60), "the alerts to be stored", || {
        alerts(&db) >= ALERTS
    });
    assert_idle(&daemon, "a glob read to its end");
}

#[test]
fn an_unclosed_json_array_is_quarantined_once_and_the_daemon_goes_idle() {
    let home = tempfile::tempdir().expect("tempdir");
    let logs = home.path().join("logs");
    std::fs::create_dir_all(&logs).expect("mkdir");
    write_alerts(&logs.join("eve.json"), 0..ALERTS as u64);
    // A big export cut off before its closing bracket.
    let records: Vec<String> = (0..20_000)
        .map(|i| format!(r#"{{"rule":{{"level":10,"description":"cut off export {i}"}}}}"#))
        .collect();
    std::fs::write(
        logs.join("export.json"),
        format!("[{}", records.join(",\n")),
    )
    .expect("write export");
    let db = home.path().join("data").join("vigil.db");
    let daemon = Watching::start(home.path(), &logs);
    let is_break = |reason: &str| reason.contains("ends inside an array");
    wait_until(
        Duration::from_secs(60),
        "the alerts and the quarantined break of the export",
        || alerts(&db) >= ALERTS && quarantined(&db).iter().any(|(_, r)| is_break(r)),
    );
    assert_idle(&daemon, "a folder with an unclosed JSON array");
    let q = quarantined(&db);
    assert!(
        q.iter().all(|(f, _)| f.ends_with("export.json")),
        "{:?}",
        &q[..1]
    );
    // The records before the break are kept (here each is quarantined as unrecognised), the
    // break itself once, and nothing is read twice however often the daemon looked.
    let breaks = q.iter().filter(|(_, r)| is_break(r)).count();
    assert_eq!(breaks, 1, "the break is quarantined once");
    assert_eq!(
        q.len(),
        records.len(),
        "every line of the export quarantined exactly once"
    );
    let distinct: std::collections::HashSet<&String> = q.iter().map(|(_, r)| r).collect();
    assert_eq!(distinct.len(), q.len(), "no line quarantined twice");
}

#[cfg(feature = "tui")]
/// The TUI's activity as SIGUSR1 writes it to `vigil.log` (the terminal is the TUI's).
fn tui_activity(pid: u32, log: &Path, asked: &mut usize) -> serde_json::Value {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGUSR1)
        .expect("kill -USR1");
    *asked += 1;
    let mut found = None;
    wait_until(
        Duration::from_secs(10),
        "the activity line in vigil.log",
        || {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let lines: Vec<&str> = text
                .lines()
                .filter_map(|l| l.split_once(" activity ").map(|(_, j)| j))
                .collect();
            found = (lines.len() >= *asked).then(|| lines[*asked - 1].to_string());
            found.is_some()
        },
    );
    serde_json::from_str(&found.expect("activity line")).expect("activity is JSON")
}

#[cfg(feature = "tui")]
#[test]
fn idle_tui_at_80x24_neither_scans_commits_nor_redraws() {
    if !tmux::available() {
        eprintln!("tmux is not installed; skipping the TUI idle check");
        return;
    }
    let home = tempfile::tempdir().expect("tempdir");
    let logs = home.path().join("logs");
    std::fs::create_dir_all(&logs).expect("mkdir");
    write_alerts(&logs.join("eve.json"), 0..ALERTS as u64);
    let data = home.path().join("data");
    let (data_s, config_s, logs_s) = (
        data.display().to_string(),
        home.path().join("config").display().to_string(),
        logs.display().to_string(),
    );
    let t = tmux::Tmux::start(
        &[env!("CARGO_BIN_EXE_vigil"), "--watch", &logs_s],
        &[("VIGIL_DATA", &data_s), ("VIGIL_CONFIG", &config_s)],
        Path::new(env!("CARGO_MANIFEST_DIR")),
        80,
        24,
    );
    t.wait_text("idle check", Duration::from_secs(60));
    let db = data.join("vigil.db");
    wait_until(Duration::from_secs(60), "the alerts to be stored", || {
        alerts(&db) >= ALERTS
    });
    let pid = t.pid();
    wait_until(
        Duration::from_secs(30),
        "the TUI to listen for SIGUSR1",
        || catches_usr1(pid),
    );
    let log = data.join("vigil.log");
    let mut asked = 0;
    let polls = |v: &serde_json::Value| count(v, "polls");
    // Settle as the daemon test does: two poll ticks with no commit and no frame.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let a = tui_activity(pid, &log, &mut asked);
        let mut b = a.clone();
        wait_until(Duration::from_secs(30), "two poll ticks", || {
            b = tui_activity(pid, &log, &mut asked);
            polls(&b) >= polls(&a) + 2
        });
        if a["commits"] == b["commits"] && a["frames"] == b["frames"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the TUI never settled: {a} then {b}"
        );
    }
    let before = tui_activity(pid, &log, &mut asked);
    let mut after = before.clone();
    wait_until(Duration::from_secs(30), "five poll ticks", || {
        after = tui_activity(pid, &log, &mut asked);
        polls(&after) >= polls(&before) + 5
    });
    let scans = count(&after, "scans") - count(&before, "scans");
    let ticks = polls(&after) - polls(&before);
    assert!(
        scans <= ticks + 1,
        "idle TUI scanned {scans} times across {ticks} poll ticks ({before} / {after})"
    );
    assert_eq!(before["commits"], after["commits"], "idle TUI committed");
    assert_eq!(
        before["frames"], after["frames"],
        "idle TUI redrew an unchanged screen"
    );
    let screen = t.screen();
    assert!(
        screen.contains("idle check"),
        "alerts still shown:\n{screen}"
    );
    t.keys(&["q"]);
    assert_eq!(t.wait_exit(Duration::from_secs(10)), 0);
}
