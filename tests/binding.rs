//! An approval binds the fully resolved call the approver saw, destination included. With the
//! real binary: a block is proposed while the blocklist is configured at A; the configuration
//! then moves the blocklist to B; approving must refuse to run (nothing written to A or B), and
//! the refusal is plain in the exit status, the message, `vigil actions` and `vigil audit`.

#[path = "common/cli.rs"]
mod cli;
mod common;
#[path = "common/tmux.rs"]
mod tmux;
#[path = "common/wait.rs"]
mod wait;

use cli::{ingest_fixture, json_lines};
use common::vigil;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn configure(home: &Path, blocklist: &Path) {
    std::fs::write(
        home.join("config/config.toml"),
        format!(
            "[playbooks]\ndir = \"{}\"\n[connectors.blocklist]\npath = \"{}\"\n",
            home.join("config/playbooks").display(),
            blocklist.display()
        ),
    )
    .expect("config");
}

fn setup(home: &Path, blocklist: &Path) {
    std::fs::create_dir_all(home.join("config/playbooks")).expect("mkdir");
    configure(home, blocklist);
    std::fs::write(
        home.join("config/playbooks/block.yaml"),
        "name: block\ndescription: test\nmatch:\n  all:\n    - field: rule.name\n      contains: Mirai\nsteps:\n  - id: block\n    title: Block the source\n    connector: blocklist\n    params:\n      entry: \"${alert.source.ip}\"\n",
    )
    .expect("playbook");
    ingest_fixture(home);
}

/// Blocklists `A/blocklist.txt` and `B/blocklist.txt` in `home`, their folders made.
fn two_blocklists(home: &Path) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(home.join("A")).expect("mkdir A");
    std::fs::create_dir_all(home.join("B")).expect("mkdir B");
    (home.join("A/blocklist.txt"), home.join("B/blocklist.txt"))
}

#[test]
fn an_approval_made_for_one_destination_never_runs_against_another() {
    let home = tempfile::tempdir().expect("tempdir");
    let h = home.path();
    let (a, b) = two_blocklists(h);
    setup(h, &a);

    // What the approver sees names the resolved destination.
    let pending = json_lines(&vigil(h, &["actions"]));
    assert_eq!(pending.len(), 1, "{pending:?}");
    let shown = &pending[0];
    let id = shown["id"].as_i64().expect("id");
    let a_text = a.display().to_string();
    assert_eq!(shown["destination"], Value::String(a_text.clone()));
    assert!(
        shown["rendered"]
            .as_str()
            .is_some_and(|r| r.contains(&a_text)),
        "{shown}"
    );

    // The configuration moves the blocklist; the analyst approves what was shown (A).
    configure(h, &b);
    let out = vigil(h, &["approve", &id.to_string(), "--reason", "block it"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("changed after approval") && stderr.contains(&a_text),
        "{stderr}"
    );
    assert!(stderr.contains(&b.display().to_string()), "{stderr}");
    assert!(!a.exists(), "nothing written to A");
    assert!(!b.exists(), "nothing written to B");

    let all = json_lines(&vigil(h, &["actions", "--all"]));
    let row = all.iter().find(|r| r["id"] == id).expect("action listed");
    assert_eq!(row["status"], "refused");
    assert!(
        row["outcome"]
            .as_str()
            .is_some_and(|o| o.contains("changed after approval")),
        "{row}"
    );

    let audit = json_lines(&vigil(h, &["audit"]));
    let refusal = audit
        .iter()
        .find(|r| r["kind"] == "refused" && r["action_id"] == id)
        .expect("the refusal is in the audit trail");
    assert!(
        refusal["reason"]
            .as_str()
            .is_some_and(|r| r.contains("changed after approval")),
        "{refusal}"
    );
    let detail = refusal["detail"].to_string();
    assert!(detail.contains(&a_text), "{detail}");
    assert!(detail.contains(&b.display().to_string()), "{detail}");
    let verify = vigil(h, &["audit", "verify"]);
    assert!(verify.status.success());
}

#[test]
fn an_unchanged_destination_runs_as_approved() {
    let home = tempfile::tempdir().expect("tempdir");
    let h = home.path();
    let a = h.join("A/blocklist.txt");
    std::fs::create_dir_all(h.join("A")).expect("mkdir A");
    setup(h, &a);
    let id = json_lines(&vigil(h, &["actions"]))[0]["id"]
        .as_i64()
        .expect("id");
    let out = vigil(h, &["approve", &id.to_string(), "--reason", "block it"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = &json_lines(&out)[0];
    assert_eq!(row["status"], "succeeded");
    assert_eq!(
        std::fs::read_to_string(&a).expect("blocklist A"),
        "41.108.52.138\n"
    );

    // Approving it again is refused, and the refusal names who asked and why.
    let again = vigil(h, &["approve", &id.to_string(), "--reason", "once more"]);
    assert_eq!(again.status.code(), Some(1));
    let audit = json_lines(&vigil(h, &["audit"]));
    let refusal = audit
        .iter()
        .find(|r| r["kind"] == "decision_refused" && r["action_id"] == id)
        .expect("the refused approval is in the audit trail");
    assert_eq!(
        refusal["actor_uid"],
        u64::from(nix::unistd::getuid().as_raw())
    );
    assert!(
        refusal["reason"]
            .as_str()
            .is_some_and(|r| r.contains("not pending")),
        "{refusal}"
    );
}

/// The same refusal in the TUI at 80x24: the actions pane shows the destination the approver
/// is agreeing to, and after approving under the moved configuration it shows REFUSED and why.
#[cfg(feature = "tui")]
#[test]
fn the_tui_shows_the_destination_and_the_refusal() {
    if !tmux::available() {
        eprintln!("tmux is not installed: the terminal tests need it (apt-get install tmux)");
        return;
    }
    let home = tempfile::tempdir().expect("tempdir");
    let h = home.path();
    let (a, b) = two_blocklists(h);
    setup(h, &a);
    configure(h, &b);
    let dir = |d: &str| h.join(d).display().to_string();
    let t = tmux::Tmux::start(
        &[env!("CARGO_BIN_EXE_vigil")],
        &[
            ("VIGIL_DATA", &dir("data")),
            ("VIGIL_CONFIG", &dir("config")),
            ("VIGIL_CACHE", &dir("cache")),
        ],
        Path::new(env!("CARGO_MANIFEST_DIR")),
        80,
        24,
    );
    // A screen is read whole once it shows both: tmux may be read half-way through a frame.
    t.wait_for(
        "the pending block and where it goes",
        std::time::Duration::from_secs(60),
        |s| s.contains("PENDING Block the source") && s.contains("/A/blocklist.txt"),
    );
    t.keys(&["Tab"]);
    t.keys(&["a"]);
    t.wait_text("Reason:", std::time::Duration::from_secs(30));
    t.type_text("block it");
    t.keys(&["Enter"]);
    t.wait_for(
        "the refusal and why",
        std::time::Duration::from_secs(60),
        |s| s.contains("REFUSED Block the source") && s.contains("the call changed after"),
    );
    assert!(!a.exists() && !b.exists(), "nothing written");
    t.keys(&["q"]);
    // Quitting is covered by the terminal tests; here it only has to end.
    t.wait_exit(std::time::Duration::from_secs(30));
}
