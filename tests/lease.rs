//! Who is running an action is known by its execution lease, which the OS releases when the
//! holder dies, never by process names. With the real binary and a receiver that never answers
//! (so a runner stays mid-call):
//! - a runner started through a symlink is alive to another vigil, which leaves its action
//!   running;
//! - a runner killed with SIGKILL and not yet reaped is dead: its action becomes "outcome
//!   unknown";
//! - `vigil approve` whose run finds the lease held elsewhere exits 3 and names the holder.

#[path = "common/cli.rs"]
mod cli;
mod common;
#[path = "common/daemon.rs"]
mod daemon;
#[path = "common/mock_http.rs"]
mod mock_http;
#[path = "common/wait.rs"]
mod wait;

use cli::{actions, ingest_fixture, status, vigil_ok};
use common::vigil;
use daemon::Daemon;
use mock_http::silent_receiver;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::Duration;
use wait::wait_until;

/// Two webhook steps for the one Mirai alert: two actions to run side by side.
fn setup(home: &Path, url: &str) -> Vec<i64> {
    std::fs::create_dir_all(home.join("config/playbooks")).expect("mkdir");
    std::fs::write(
        home.join("config/config.toml"),
        format!(
            "[playbooks]\ndir = \"{}\"\n[connectors.webhook]\nurl = \"{url}\"\ntimeout_seconds = 600\n",
            home.join("config/playbooks").display()
        ),
    )
    .expect("config");
    let step = |id: &str| {
        format!("  - id: {id}\n    title: Tell\n    connector: webhook\n    timeout: 10m\n    on_error: continue\n    params:\n      step: {id}\n      host: \"${{alert.source.ip}}\"\n")
    };
    std::fs::write(
        home.join("config/playbooks/notify.yaml"),
        format!(
            "name: notify\ndescription: test\nmatch:\n  all:\n    - field: rule.name\n      contains: Mirai\nsteps:\n{}{}",
            step("first"),
            step("second")
        ),
    )
    .expect("playbook");
    ingest_fixture(home);
    actions(home)
        .iter()
        .map(|a| a["id"].as_i64().expect("id"))
        .collect()
}

/// `vigil approve ID` through `program`, left running.
fn spawn_approve(program: &Path, home: &Path, id: i64) -> Daemon {
    let mut cmd = common::command_for(
        program,
        home,
        ["approve", &id.to_string(), "--reason", "go"],
    );
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    Daemon::spawn(cmd)
}

/// Another vigil touching the database: it recovers actions whose runner is gone.
fn another_vigil(home: &Path) {
    vigil_ok(home, &["audit", "checkpoint"]);
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

#[test]
fn a_live_runner_keeps_its_action_and_a_killed_one_loses_it() {
    let (url, seen) = silent_receiver();
    let home = tempfile::tempdir().expect("tempdir");
    let h = home.path();
    let ids = setup(h, &url);
    assert_eq!(ids.len(), 2);

    // The first runs through a symlink whose name is not "vigil".
    let link = h.join("soar-cli");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_vigil"), &link).expect("symlink");
    let linked = spawn_approve(&link, h, ids[0]);
    wait_until(Duration::from_secs(60), "the first call to arrive", || {
        seen.load(Ordering::SeqCst) == 1
    });
    // The second runs from the real path; it will be killed and left unreaped.
    let killed = spawn_approve(Path::new(env!("CARGO_BIN_EXE_vigil")), h, ids[1]);
    wait_until(Duration::from_secs(60), "the second call to arrive", || {
        seen.load(Ordering::SeqCst) == 2
    });

    another_vigil(h);
    assert_eq!(
        status(h, ids[0]),
        "running",
        "the symlinked runner is alive"
    );
    assert_eq!(status(h, ids[1]), "running");

    killed.signal(nix::sys::signal::Signal::SIGKILL);
    wait_until(
        Duration::from_secs(60),
        "the killed runner to be a zombie",
        || is_zombie(killed.pid()),
    );
    another_vigil(h);
    assert_eq!(
        status(h, ids[1]),
        "unknown",
        "a killed runner holds nothing"
    );
    assert_eq!(status(h, ids[0]), "running", "still alive");

    // Dropping a runner kills it (the symlinked one) and reaps it (the killed one).
    drop(linked);
    drop(killed);
    another_vigil(h);
    assert_eq!(status(h, ids[0]), "unknown");
    assert_eq!(seen.load(Ordering::SeqCst), 2, "nothing was sent again");
}

#[test]
fn approve_says_who_holds_the_lease_with_its_own_exit_status() {
    let (url, _seen) = silent_receiver();
    let home = tempfile::tempdir().expect("tempdir");
    let h = home.path();
    let ids = setup(h, &url);
    // Another process (this test) holds the first action's execution lease.
    let leases = vigil::engine::lease::Leases::beside(&h.join("data/vigil.db"));
    let _held = leases
        .take(ids[0], "carol@soc-2:4242")
        .expect("lease taken");
    let out = vigil(h, &["approve", &ids[0].to_string(), "--reason", "go"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "stderr: {stderr}");
    assert!(
        stderr.contains("carol@soc-2:4242") && stderr.contains("lease"),
        "{stderr}"
    );
    assert_eq!(status(h, ids[0]), "approved", "the approval stands");
}
