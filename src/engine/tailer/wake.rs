//! Filesystem notifications that wake the tailer. Owns the watches on the watched directories
//! and listens only for what means new data or new files: a file created, written, moved in or
//! out, or deleted. Opens, reads and closes are left out: vigil's own scans cause them, and
//! waking on them made an idle tailer scan its own reads in a loop.

use std::path::PathBuf;

/// Change notifications for a set of directories. When the platform offers none (or a
/// directory cannot be watched yet), `changed` simply never fires for it and the tailer's
/// one-second poll does the work.
pub struct FileEvents {
    dirs: Vec<PathBuf>,
    inner: platform::Watch,
}

impl FileEvents {
    pub fn start(dirs: Vec<PathBuf>) -> FileEvents {
        let mut events = FileEvents {
            inner: platform::Watch::new(),
            dirs,
        };
        events.rewatch();
        events
    }

    /// Watch the directories not watched yet: ones that did not exist at start, or were
    /// deleted and made again. Called on every poll tick; a stat per missing directory.
    pub fn rewatch(&mut self) {
        for dir in &self.dirs {
            self.inner.ensure(dir);
        }
    }

    /// Wait until something changed in a watched directory. Everything already queued behind
    /// that first notification is taken with it: one wake-up per burst, not per write.
    pub async fn changed(&mut self) {
        self.inner.next().await;
        self.inner.drain();
    }
}

#[cfg(target_os = "linux")]
mod platform {
    use futures_util::{FutureExt, StreamExt};
    use inotify::{EventMask, EventStream, Inotify, WatchDescriptor, WatchMask};
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};

    /// New data or new files, and the directory itself going away.
    fn mask() -> WatchMask {
        WatchMask::CREATE
            | WatchMask::MODIFY
            | WatchMask::MOVED_FROM
            | WatchMask::MOVED_TO
            | WatchMask::DELETE
            | WatchMask::DELETE_SELF
            | WatchMask::MOVE_SELF
    }

    pub struct Watch {
        stream: Option<EventStream<Vec<u8>>>,
        watched: HashMap<WatchDescriptor, PathBuf>,
    }

    impl Watch {
        pub fn new() -> Watch {
            let stream = Inotify::init()
                .and_then(|i| i.into_event_stream(vec![0u8; 4096]))
                .map_err(|e| tracing::warn!("file notifications unavailable, polling only: {e}"))
                .ok();
            Watch {
                stream,
                watched: HashMap::new(),
            }
        }

        pub fn ensure(&mut self, dir: &Path) {
            let Some(stream) = &self.stream else {
                return;
            };
            if self.watched.values().any(|d| d == dir) || !dir.is_dir() {
                return;
            }
            match stream.watches().add(dir, mask()) {
                Ok(wd) => {
                    self.watched.insert(wd, dir.to_path_buf());
                }
                Err(e) => tracing::warn!("cannot watch {}: {e}; polling it", dir.display()),
            }
        }

        pub async fn next(&mut self) {
            let Some(stream) = &mut self.stream else {
                return std::future::pending().await;
            };
            match stream.next().await {
                Some(Ok(ev)) => {
                    // The kernel dropped the watch (directory deleted or moved): watch it
                    // again on a poll tick once it is back.
                    if ev.mask.contains(EventMask::IGNORED) {
                        self.watched.remove(&ev.wd);
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!("file notifications failed, polling only: {e}");
                    self.stream = None;
                }
                None => self.stream = None,
            }
        }

        pub fn drain(&mut self) {
            let Some(stream) = &mut self.stream else {
                return;
            };
            while let Some(Some(Ok(ev))) = stream.next().now_or_never() {
                if ev.mask.contains(EventMask::IGNORED) {
                    self.watched.remove(&ev.wd);
                }
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod platform {
    use notify::{EventKind, Watcher};
    use std::path::{Path, PathBuf};
    use tokio::sync::mpsc;

    pub struct Watch {
        watcher: Option<notify::RecommendedWatcher>,
        watched: Vec<PathBuf>,
        rx: mpsc::Receiver<()>,
    }

    impl Watch {
        pub fn new() -> Watch {
            let (tx, rx) = mpsc::channel(1);
            let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                let wanted = res.is_ok_and(|ev| {
                    !matches!(
                        ev.kind,
                        EventKind::Access(_)
                            | EventKind::Modify(notify::event::ModifyKind::Metadata(_))
                    )
                });
                // A full channel already holds a wake-up.
                if wanted {
                    let _ = tx.try_send(());
                }
            })
            .map_err(|e| tracing::warn!("file notifications unavailable, polling only: {e}"))
            .ok();
            Watch {
                watcher,
                watched: Vec::new(),
                rx,
            }
        }

        pub fn ensure(&mut self, dir: &Path) {
            let Some(w) = &mut self.watcher else {
                return;
            };
            if self.watched.iter().any(|d| d == dir) || !dir.is_dir() {
                return;
            }
            match w.watch(dir, notify::RecursiveMode::NonRecursive) {
                Ok(()) => self.watched.push(dir.to_path_buf()),
                Err(e) => tracing::warn!("cannot watch {}: {e}; polling it", dir.display()),
            }
        }

        pub async fn next(&mut self) {
            if self.rx.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
        }

        pub fn drain(&mut self) {
            while self.rx.try_recv().is_ok() {}
        }
    }
}
