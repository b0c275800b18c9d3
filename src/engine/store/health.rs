//! Whether the database can still be used. An error that means the file is damaged is recorded
//! once and stops the engine; any error that repeats is logged once per interval with a count,
//! so a broken store costs a few log lines, not thousands a second.

use rusqlite::ErrorCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Shortest time between two log lines of the same error.
const REPEAT_INTERVAL: Duration = Duration::from_secs(10);

/// Shared by everything in one process that reads or writes the database.
#[derive(Debug, Clone)]
pub struct StoreHealth {
    damaged: Arc<watch::Sender<Option<String>>>,
    repeats: Arc<Mutex<Repeats>>,
}

#[derive(Debug, Default)]
struct Repeats {
    last: Option<(String, Instant)>,
    suppressed: u64,
}

impl Default for StoreHealth {
    fn default() -> Self {
        Self::new()
    }
}

impl StoreHealth {
    pub fn new() -> Self {
        StoreHealth {
            damaged: Arc::new(watch::channel(None).0),
            repeats: Arc::default(),
        }
    }

    /// Changes once, to the first damage seen.
    pub fn subscribe(&self) -> watch::Receiver<Option<String>> {
        self.damaged.subscribe()
    }

    /// The first damage seen, if any.
    pub fn damage(&self) -> Option<String> {
        self.damaged.borrow().clone()
    }

    /// Log `e` (what was being done, then the error), at most once per interval while it
    /// repeats. Returns whether it means the database file is damaged, which is then recorded.
    pub fn note(&self, doing: &str, e: &rusqlite::Error) -> bool {
        let damaged = is_damage(e);
        if damaged {
            self.damaged.send_if_modified(|d| {
                let first = d.is_none();
                if first {
                    *d = Some(e.to_string());
                }
                first
            });
        }
        self.log(&format!("{doing}: {e}"));
        damaged
    }

    /// Log an error message at most once per interval while it repeats.
    pub fn log(&self, msg: &str) {
        let Ok(mut r) = self.repeats.lock() else {
            tracing::error!("{msg}");
            return;
        };
        let now = Instant::now();
        if let Some((last, at)) = &r.last {
            if last == msg && now.duration_since(*at) < REPEAT_INTERVAL {
                r.suppressed += 1;
                return;
            }
        }
        if r.suppressed > 0 {
            if let Some((last, _)) = &r.last {
                tracing::error!("{last} (repeated {} more times)", r.suppressed);
            }
        }
        tracing::error!("{msg}");
        r.last = Some((msg.to_string(), now));
        r.suppressed = 0;
    }
}

/// Errors after which the file cannot be trusted: SQLite found it malformed or not a database.
pub fn is_damage(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corrupt() -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
            Some("database disk image is malformed".into()),
        )
    }

    #[test]
    fn damage_is_recorded_once_and_other_errors_are_not_damage() {
        let h = StoreHealth::new();
        let mut rx = h.subscribe();
        let busy = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        );
        assert!(!h.note("reading", &busy));
        assert_eq!(h.damage(), None);
        assert!(h.note("reading", &corrupt()));
        assert!(rx.has_changed().expect("open"));
        let first = rx.borrow_and_update().clone();
        assert!(first.as_deref().is_some_and(|d| d.contains("malformed")));
        assert!(h.note("writing", &corrupt()));
        assert!(!rx.has_changed().expect("open"), "damage announced twice");
    }

    #[test]
    fn a_repeated_error_is_counted_not_logged_again() {
        let h = StoreHealth::new();
        for _ in 0..1000 {
            h.log("enrichment read: database disk image is malformed");
        }
        let r = h.repeats.lock().expect("lock");
        assert_eq!(r.suppressed, 999);
    }
}
