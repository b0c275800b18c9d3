//! `vigil playbook check`: the shipped playbooks pass; broken files fail with
//! file:line:column and what is wrong, one line each.

use std::path::Path;
use std::process::Command;

fn check(dir: &Path) -> (Option<i32>, String, String) {
    let home = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["playbook", "check", &dir.display().to_string()])
        .env("VIGIL_DATA", home.path().join("data"))
        .env("VIGIL_CONFIG", home.path().join("config"))
        .output()
        .expect("vigil");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn shipped_playbooks_pass() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks");
    let (code, out, err) = check(&dir);
    assert_eq!(code, Some(0), "{err}");
    let n = std::fs::read_dir(&dir)
        .expect("dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "yaml"))
        })
        .count();
    assert_eq!(
        out.lines().filter(|l| l.starts_with("ok ")).count(),
        n,
        "{out}"
    );
}

#[test]
fn broken_playbooks_name_file_line_and_column() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/playbooks/bad");
    let (code, _, err) = check(&dir);
    assert_eq!(code, Some(1));
    let d = dir.display();
    let expected = [
        format!("{d}/connector.yaml:10:16: playbook bad-connector: step one: unknown connector `telnet` (known: blocklist, webhook, slack, http, command, email)"),
        format!("{d}/duration.yaml:11:14: playbook bad-duration: step one: `soon` is not a duration like 90s, 15m, 1h or 2d"),
        format!("{d}/operators.yaml:5:14: playbook two-ops: match on `rule.name`: give exactly one of equals, one_of, contains, contains_any, gte, lte, exists"),
        format!("{d}/syntax.yaml:6:17: expected string scalar"),
        format!("{d}/template.yaml:12:14: playbook bad-template: step one: param `entry`: placeholder `env.HOME`: root must be one of [\"alert\", \"incident\", \"enrichment\", \"ioc\", \"vigil\"]"),
        format!("{d}/unknown-key.yaml:9:5: unknown field `aproval`, expected one of id, title, connector, when, for_each, params, approval, approval_expires, retry, timeout, on_error, rollback"),
    ];
    let got: Vec<&str> = err.lines().collect();
    assert_eq!(got, expected);
}
