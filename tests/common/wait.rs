//! Waiting for what a test needs to see, with a deadline: the condition is looked at again
//! every few milliseconds (or on every change in a folder), never after a fixed sleep, so a
//! test goes on as soon as it holds and fails naming what never came. Include it with
//! `#[path = "common/wait.rs"] mod wait;`.
#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

/// How long a poll rests before looking again.
const POLL: Duration = Duration::from_millis(20);

/// Wait until `done` holds; fail naming `what` after `limit`.
pub fn wait_until(limit: Duration, what: &str, done: impl FnMut() -> bool) {
    let held = until(limit, done, |left| std::thread::sleep(left.min(POLL)));
    assert!(held, "timed out waiting for {what}");
}

/// The first value `look` finds within `limit`, or `None`: for waits that go on with what they
/// found, or whose failure message shows what was last seen (a screen, a log).
pub fn poll_for<T>(limit: Duration, mut look: impl FnMut() -> Option<T>) -> Option<T> {
    let mut found = None;
    until(
        limit,
        || {
            found = look();
            found.is_some()
        },
        |left| std::thread::sleep(left.min(POLL)),
    );
    found
}

/// As `wait_until`, looking again on every change in `dir` (and at least every half second)
/// rather than on a timer: for a condition only a write into `dir` can change.
pub fn wait_for_change_in(dir: &Path, limit: Duration, what: &str, done: impl FnMut() -> bool) {
    let changes = Changes::in_dir(dir);
    let held = until(limit, done, |left| changes.wait(left));
    assert!(held, "timed out waiting for {what}");
}

/// Wait, on every change in `dir`, until `count` reaches `target`. Only a count that stops
/// moving for `stall` short of the target fails (naming how far it got): a slow machine is
/// waited for, a loss is not.
pub fn wait_for_count_in(
    dir: &Path,
    stall: Duration,
    what: &str,
    mut count: impl FnMut() -> i64,
    target: i64,
) {
    let changes = Changes::in_dir(dir);
    let mut last = count();
    while last < target {
        let mut now = last;
        let moved = until(
            stall,
            || {
                now = count();
                now > last || now >= target
            },
            |left| changes.wait(left),
        );
        assert!(moved, "{what}: stuck at {last} of {target} for {stall:?}");
        last = now;
    }
}

/// Filesystem notifications for one folder, as wake-ups.
struct Changes {
    rx: std::sync::mpsc::Receiver<()>,
    _watcher: notify::RecommendedWatcher,
}

impl Changes {
    fn in_dir(dir: &Path) -> Changes {
        use notify::Watcher;
        let (tx, rx) = std::sync::mpsc::channel();
        let mut watcher = notify::recommended_watcher(move |_| {
            let _ = tx.send(());
        })
        .expect("watcher");
        watcher
            .watch(dir, notify::RecursiveMode::NonRecursive)
            .expect("watch");
        Changes {
            rx,
            _watcher: watcher,
        }
    }

    /// Until the next change, or at most half a second (and never past `left`).
    fn wait(&self, left: Duration) {
        let _ = self.rx.recv_timeout(left.min(Duration::from_millis(500)));
    }
}

/// Look at `done` until it holds (true) or `limit` passes (false), calling `pause` with the
/// time left between looks.
fn until(limit: Duration, mut done: impl FnMut() -> bool, mut pause: impl FnMut(Duration)) -> bool {
    let deadline = Instant::now() + limit;
    while !done() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        pause(left);
    }
    true
}
