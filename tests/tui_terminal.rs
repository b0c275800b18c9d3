//! The real binary in a real terminal at 80x24: what an analyst sees on start and that `q` quits.

#[path = "common/tmux.rs"]
mod tmux;

use std::time::Duration;

#[test]
fn the_queue_of_shipped_samples_shows_at_80x24_and_q_quits() {
    if !tmux::available() {
        eprintln!("tmux is not installed: the terminal tests need it (apt-get install tmux)");
        return;
    }
    let home = tempfile::tempdir().expect("home");
    let data = home.path().join("data");
    let config = home.path().join("config");
    let cache = home.path().join("cache");
    let t = tmux::Tmux::start(
        &[env!("CARGO_BIN_EXE_vigil")],
        &[
            ("VIGIL_DATA", &data.display().to_string()),
            ("VIGIL_CONFIG", &config.display().to_string()),
            ("VIGIL_CACHE", &cache.display().to_string()),
        ],
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")),
        80,
        24,
    );
    let screen = t.wait_for("the queue with a risk band", Duration::from_secs(60), |s| {
        ["CRIT", "HIGH", "MED", "LOW"].iter().any(|b| s.contains(b)) && s.contains("alerts")
    });
    assert!(screen.contains("vigil"), "title missing:\n{screen}");
    assert!(screen.lines().count() <= 24, "more than 24 rows:\n{screen}");
    t.keys(&["q"]);
    assert_eq!(t.wait_exit(Duration::from_secs(30)), 0, "{}", t.screen());
}
