//! Who may read what vigil writes: the database, its journals and the log are the owner's alone,
//! or a configured team group's; a database that fails its integrity check is never written to,
//! and a daemon on one stops with one clear message instead of filling its log.

mod common;
#[path = "common/daemon.rs"]
mod daemon;
#[path = "common/wait.rs"]
mod wait;

use common::vigil;
use daemon::Daemon;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use wait::{poll_for, wait_until};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// `vigil ARGS` under the umask most systems ship (022), which is what left the files
/// world-readable.
fn vigil_umask_022(home: &Path, args: &[&str]) -> Command {
    let umask = [
        "-c",
        "umask 022; exec \"$@\"",
        "sh",
        env!("CARGO_BIN_EXE_vigil"),
    ];
    common::command_for("sh", home, umask.iter().chain(args))
}

#[test]
fn the_database_its_journals_and_the_log_are_private() {
    let home = tempfile::tempdir().expect("home");
    let data = home.path().join("data");
    // The daemon keeps the database open, so its -wal and -shm exist while it runs.
    let mut cmd = vigil_umask_022(
        home.path(),
        &["--watch", "samples/suricata-eve.json", "daemon"],
    );
    cmd.stdout(Stdio::null());
    let daemon = Daemon::spawn(cmd);
    let files = ["vigil.db", "vigil.db-wal", "vigil.db-shm", "vigil.log"];
    wait_until(
        Duration::from_secs(60),
        &format!("vigil to create all of {files:?}"),
        || files.iter().all(|f| data.join(f).exists()),
    );
    for f in files {
        assert_eq!(mode(&data.join(f)), 0o600, "{f}");
    }
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(daemon.wait().success());
    assert_eq!(mode(&data.join("vigil.db")), 0o600);
}

#[test]
fn a_team_database_is_readable_and_writable_by_its_group_only() {
    let home = tempfile::tempdir().expect("home");
    let group = nix::unistd::Group::from_gid(nix::unistd::getegid())
        .expect("group db")
        .expect("own group");
    std::fs::create_dir_all(home.path().join("config")).expect("config dir");
    std::fs::write(
        home.path().join("config/config.toml"),
        format!("[store]\ngroup = \"{}\"\n", group.name),
    )
    .expect("config");
    let team = home.path().join("team.db");
    let out = vigil_umask_022(
        home.path(),
        &[
            "--db",
            &team.display().to_string(),
            "ingest",
            "samples/suricata-eve.json",
        ],
    )
    .output()
    .expect("ingest");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode(&team), 0o660);
    assert_eq!(
        std::fs::metadata(&team).expect("team db").gid(),
        group.gid.as_raw()
    );
}

#[test]
fn an_unknown_team_group_is_a_configuration_error() {
    let home = tempfile::tempdir().expect("home");
    std::fs::create_dir_all(home.path().join("config")).expect("config dir");
    std::fs::write(
        home.path().join("config/config.toml"),
        "[store]\ngroup = \"no-such-group-here\"\n",
    )
    .expect("config");
    let out = vigil(home.path(), &["ingest", "samples/suricata-eve.json"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-group-here"), "{err}");
    assert!(!home.path().join("data/vigil.db").exists());
}

/// A case database with a run of pages in the middle overwritten, as a bad disk or a careless
/// copy leaves it.
fn corrupted_case(home: &Path) -> std::path::PathBuf {
    let out = vigil(home, &["ingest", "samples/wazuh-alerts.json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let db = home.join("broken.db");
    std::fs::copy(home.join("data/vigil.db"), &db).expect("copy");
    let mut bytes = std::fs::read(&db).expect("read");
    let page = 4096;
    let pages = bytes.len() / page;
    assert!(
        pages > 40,
        "the case is too small to corrupt: {pages} pages"
    );
    for p in pages / 3..pages / 3 + 20 {
        bytes[p * page..(p + 1) * page].fill(0xde);
    }
    std::fs::write(&db, bytes).expect("write");
    db
}

#[test]
fn ingest_refuses_a_database_that_fails_its_integrity_check() {
    let home = tempfile::tempdir().expect("home");
    let db = corrupted_case(home.path());
    let before = std::fs::read(&db).expect("read");
    let out = vigil(
        home.path(),
        &[
            "--db",
            &db.display().to_string(),
            "ingest",
            "samples/suricata-eve.json",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("integrity check"), "{err}");
    assert!(err.contains(&db.display().to_string()), "{err}");
    assert_eq!(
        std::fs::read(&db).expect("read"),
        before,
        "ingest wrote into it"
    );
}

#[test]
fn a_daemon_on_a_corrupted_database_stops_with_one_clear_message() {
    let home = tempfile::tempdir().expect("home");
    let db = corrupted_case(home.path());
    let run = tempfile::tempdir().expect("run home");
    let mut daemon = Daemon::start_piped(
        run.path(),
        &[
            "--db",
            &db.display().to_string(),
            "--watch",
            "samples/suricata-eve.json",
            "daemon",
        ],
    );
    let status = poll_for(Duration::from_secs(60), || daemon.try_wait()).unwrap_or_else(|| {
        let log = std::fs::read_to_string(run.path().join("data/vigil.log")).unwrap_or_default();
        let n = log.lines().count();
        panic!("the daemon kept running on a corrupted database ({n} log lines)");
    });
    let mut err = String::new();
    std::io::Read::read_to_string(&mut daemon.take_stderr(), &mut err).expect("stderr");
    assert_eq!(status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("malformed") || err.contains("corrupt"),
        "{err}"
    );
    let log = std::fs::read_to_string(run.path().join("data/vigil.log")).expect("log");
    let errors = log.lines().filter(|l| l.contains("ERROR")).count();
    assert!(errors <= 10, "{errors} error lines:\n{log}");
}
