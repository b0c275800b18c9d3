//! How busy the tailer has been since it started: scans of the watch set and what caused them.
//! Owns the counters only; the daemon prints them on SIGUSR1 so an analyst (or a test) can see
//! that an idle vigil looks at its files once a second and not more.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters the tailer task bumps and anyone holding the handle may read.
#[derive(Debug, Default)]
pub struct TailerActivity {
    scans: AtomicU64,
    polls: AtomicU64,
    file_events: AtomicU64,
    chunks: AtomicU64,
    followed: AtomicU64,
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ActivitySnapshot {
    /// Looks at the watch set (directory listing, identity and truncation checks).
    pub scans: u64,
    /// Ticks of the fallback poll timer (one a second).
    pub polls: u64,
    /// Wake-ups from filesystem notifications (each may stand for many coalesced events).
    pub file_events: u64,
    /// Chunks of records handed to the writer.
    pub chunks: u64,
    /// Files followed at the last scan.
    pub followed: u64,
}

impl TailerActivity {
    pub(super) fn scanned(&self, followed: usize) {
        self.scans.fetch_add(1, Ordering::Relaxed);
        self.followed.store(followed as u64, Ordering::Relaxed);
    }

    pub(super) fn polled(&self) {
        self.polls.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn woken(&self) {
        self.file_events.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn submitted(&self) {
        self.chunks.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> ActivitySnapshot {
        ActivitySnapshot {
            scans: self.scans.load(Ordering::Relaxed),
            polls: self.polls.load(Ordering::Relaxed),
            file_events: self.file_events.load(Ordering::Relaxed),
            chunks: self.chunks.load(Ordering::Relaxed),
            followed: self.followed.load(Ordering::Relaxed),
        }
    }
}
