//! vigil.log that cannot be written (a second analyst's file on a shared data folder): every
//! command still does its work, with one warning line, the same exit code and the same output.

mod common;
use common::vigil;
use std::path::PathBuf;

fn repo(p: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(p)
        .display()
        .to_string()
}

/// A home whose `vigil.log` no one can open for writing, not even root: it is a directory.
fn home_with_unwritable_log() -> tempfile::TempDir {
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(home.path().join("data").join("vigil.log")).expect("blocker");
    home
}

fn stderr_lines(o: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .map(str::to_string)
        .collect()
}

fn stdout_lines(o: &std::process::Output) -> usize {
    String::from_utf8_lossy(&o.stdout).lines().count()
}

#[test]
fn every_command_works_with_one_warning_when_the_log_cannot_be_written() {
    let blocked = home_with_unwritable_log();
    let normal = tempfile::tempdir().expect("tempdir");
    let eve = repo("samples/suricata-eve.json");
    let commands: Vec<Vec<&str>> = vec![
        vec!["ingest", &eve],
        vec!["export"],
        vec!["audit", "verify"],
        vec!["actions", "--all"],
        vec!["iocs", &eve, "--counts"],
        vec!["playbook", "check"],
        vec!["export", "--db", "/nonexistent/x.db"],
    ];
    for args in commands {
        let got = vigil(blocked.path(), &args);
        let want = vigil(normal.path(), &args);
        let shown = format!(
            "vigil {args:?}: status {:?}\nstderr: {}",
            got.status,
            String::from_utf8_lossy(&got.stderr)
        );
        assert_ne!(got.status.code(), Some(101), "panicked: {shown}");
        assert_eq!(got.status.code(), want.status.code(), "{shown}");
        let warnings: Vec<String> = stderr_lines(&got)
            .into_iter()
            .filter(|l| l.contains("vigil.log"))
            .collect();
        assert_eq!(warnings.len(), 1, "one warning naming the log: {shown}");
        assert!(
            warnings[0].starts_with("vigil: ") && warnings[0].contains("not writing a log"),
            "{shown}"
        );
        // Apart from that warning, stderr is what a normal run prints.
        assert_eq!(
            stderr_lines(&got).len(),
            stderr_lines(&want).len() + 1,
            "{shown}"
        );
        // Same work done: ids and times differ between homes, the number of records does not.
        assert_eq!(stdout_lines(&got), stdout_lines(&want), "{shown}");
    }
}

#[test]
fn a_writable_log_gets_the_session_and_no_warning() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = vigil(home.path(), &["playbook", "check"]);
    assert!(out.status.success());
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("vigil.log"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = std::fs::read_to_string(home.path().join("data").join("vigil.log")).expect("log");
    assert!(log.contains("start"), "{log}");
}
