//! Follows alert files as they grow. Owns file discovery, identity and reading; never parses a
//! line (the pipeline does) and never writes the database (it sends batches to the writer with
//! the checkpoint each one ends at).
//!
//! A file is known by device, inode and a hash of its first line, not by path, so a rename
//! rotation is followed: the old file is read to its end through the handle already open,
//! then the new file at the path is read from its start. `notify` only wakes the loop; a slow
//! poll backs it up because inotify misses events on some filesystems.

use super::pipeline::{split_lines, Pipeline};
use super::store::{self, Checkpoint, WriteOp};
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;

/// File name endings the tailer picks up inside a watched directory (a file named explicitly
/// is always read).
pub const ALERT_FILE_SUFFIXES: &[&str] = &[".json", ".jsonl", ".ndjson", ".eve", ".log"];

/// Most bytes read from one file per round, so one huge file cannot starve the others.
const READ_CHUNK: usize = 4 * 1024 * 1024;
/// Bytes of the first line hashed into a file's identity.
const ID_PREFIX: usize = 256;
/// Poll interval when no filesystem event arrives.
const POLL: Duration = Duration::from_millis(1000);

#[derive(Debug)]
struct Tracked {
    path: PathBuf,
    file: File,
    file_id: String,
    format: super::format::FileFormat,
    offset: u64,
    line_no: u64,
}

/// Files under `watch` to follow: named files, and alert files directly inside named
/// directories.
pub fn discover(watch: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for w in watch {
        if w.is_dir() {
            if let Ok(rd) = std::fs::read_dir(w) {
                let mut files: Vec<PathBuf> = rd
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_file())
                    .filter(|p| {
                        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                        !name.starts_with('.')
                            && ALERT_FILE_SUFFIXES.iter().any(|s| name.ends_with(s))
                    })
                    .collect();
                files.sort();
                out.extend(files);
            }
        } else {
            out.push(w.clone());
        }
    }
    out
}

/// The identity of an open file: `dev:ino:hash(first line prefix)`, or `None` until its first
/// line is complete (an identity that changed as the file grew would lose the checkpoint).
fn identify(file: &mut File, dev: u64, ino: u64) -> std::io::Result<Option<String>> {
    let mut head = vec![0u8; ID_PREFIX];
    file.seek(SeekFrom::Start(0))?;
    let mut n = 0;
    while n < head.len() {
        let r = file.read(&mut head[n..])?;
        if r == 0 {
            break;
        }
        n += r;
    }
    head.truncate(n);
    let prefix = match head.iter().position(|b| *b == b'\n') {
        Some(i) => &head[..i],
        None if n == ID_PREFIX => &head[..],
        None => return Ok(None),
    };
    Ok(Some(format!(
        "{dev}:{ino}:{}",
        &super::alert::sha256_hex(prefix)[..16]
    )))
}

/// The tailer task: runs until `stop` fires or the writer goes away.
pub struct Tailer {
    pub watch: Vec<PathBuf>,
    pub db: PathBuf,
    pub pipeline: Pipeline,
    pub writer: mpsc::Sender<WriteOp>,
}

impl Tailer {
    /// Follow the watch set until the writer channel closes or `stop` is signalled.
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let (wake_tx, mut wake_rx) = mpsc::channel::<()>(1);
        let _watcher = self.start_watcher(wake_tx);
        let mut tracked: HashMap<(u64, u64), Tracked> = HashMap::new();
        loop {
            if *stop.borrow() {
                break;
            }
            let more = match self.round(&mut tracked).await {
                Ok(more) => more,
                Err(()) => break,
            };
            if more {
                continue;
            }
            tokio::select! {
                _ = wake_rx.recv() => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = stop.changed() => {}
            }
        }
        tracing::info!("tailer stopped");
    }

    fn start_watcher(&self, wake: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
        use notify::Watcher;
        let mut w = notify::recommended_watcher(move |_res: notify::Result<notify::Event>| {
            // A full channel already holds a wake-up: nothing is lost by dropping this one.
            let _ = wake.try_send(());
        })
        .map_err(|e| tracing::warn!("file watcher unavailable, polling only: {e}"))
        .ok()?;
        for p in &self.watch {
            let target = if p.is_dir() {
                p.clone()
            } else {
                p.parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| PathBuf::from("."))
            };
            if let Err(e) = w.watch(&target, notify::RecursiveMode::NonRecursive) {
                tracing::warn!("cannot watch {}: {e}; polling it", target.display());
            }
        }
        Some(w)
    }

    /// One pass over every file. Returns `Ok(true)` when some file had more to read than one
    /// chunk, `Err` when the writer is gone.
    async fn round(&self, tracked: &mut HashMap<(u64, u64), Tracked>) -> Result<bool, ()> {
        let mut seen_at_path: HashMap<PathBuf, (u64, u64)> = HashMap::new();
        for path in discover(&self.watch) {
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let key = (meta.dev(), meta.ino());
            seen_at_path.insert(path.clone(), key);
            if tracked.contains_key(&key) {
                if let Some(t) = tracked.get_mut(&key) {
                    t.path = path;
                }
                continue;
            }
            match self.open_tracked(&path, key) {
                Ok(Some(t)) => {
                    tracing::info!(path = %path.display(), offset = t.offset, "following");
                    tracked.insert(key, t);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(path = %path.display(), "cannot open: {e}; will retry"),
            }
        }
        let mut more = false;
        let keys: Vec<(u64, u64)> = tracked.keys().copied().collect();
        for key in keys {
            let Some(t) = tracked.get_mut(&key) else {
                continue;
            };
            let (n, full) = match self.read_some(t).await {
                Ok(r) => r,
                Err(ReadError::WriterGone) => return Err(()),
                Err(ReadError::Io(e)) => {
                    tracing::warn!(path = %t.path.display(), "read failed: {e}; will retry");
                    (0, false)
                }
            };
            more |= full;
            // A file no longer at any watched path (rotated away or deleted) is released once
            // it has been read to its end.
            let still_there = seen_at_path.get(&t.path) == Some(&key);
            if !still_there && n == 0 && !full {
                tracing::info!(path = %t.path.display(), "released (rotated or deleted)");
                tracked.remove(&key);
            }
        }
        Ok(more)
    }

    fn open_tracked(&self, path: &Path, key: (u64, u64)) -> std::io::Result<Option<Tracked>> {
        let mut file = File::open(path)?;
        let Some(file_id) = identify(&mut file, key.0, key.1)? else {
            return Ok(None);
        };
        let conn = store::open(&self.db).map_err(std::io::Error::other)?;
        let (offset, line_no) = store::checkpoint(&conn, &file_id)
            .map_err(std::io::Error::other)?
            .unwrap_or((0, 0));
        let mut head = vec![0u8; 64 * 1024];
        file.seek(SeekFrom::Start(0))?;
        let n = file.read(&mut head)?;
        head.truncate(n);
        let format = super::format::FileFormat::detect(&head, super::format::Format::Auto);
        Ok(Some(Tracked {
            path: path.to_path_buf(),
            file,
            file_id,
            format,
            offset,
            line_no,
        }))
    }

    /// Read what is new in one file and send it as a batch. Returns bytes consumed and whether
    /// a full chunk was read (there may be more).
    async fn read_some(&self, t: &mut Tracked) -> Result<(u64, bool), ReadError> {
        let len = t.file.metadata().map_err(ReadError::Io)?.len();
        if len < t.offset {
            // Truncated in place (copytruncate): start over from the top.
            tracing::warn!(path = %t.path.display(), "truncated from {} to {len} bytes; reading from the start", t.offset);
            t.offset = 0;
            t.line_no = 0;
        }
        if len == t.offset {
            return Ok((0, false));
        }
        let want = ((len - t.offset) as usize).min(READ_CHUNK);
        let mut buf = vec![0u8; want];
        t.file
            .seek(SeekFrom::Start(t.offset))
            .map_err(ReadError::Io)?;
        let mut got = 0;
        while got < want {
            let r = t.file.read(&mut buf[got..]).map_err(ReadError::Io)?;
            if r == 0 {
                break;
            }
            got += r;
        }
        buf.truncate(got);
        let (lines, used) = split_lines(&buf, t.offset, t.line_no + 1);
        if used == 0 {
            // Only a partial line so far: wait for its newline.
            return Ok((0, false));
        }
        let n_lines = lines.len() as u64;
        let pipeline = self.pipeline.clone();
        let label = t.path.display().to_string();
        let format = t.format.clone();
        let mut batch =
            tokio::task::spawn_blocking(move || pipeline.process(&label, &format, lines))
                .await
                .map_err(|e| ReadError::Io(std::io::Error::other(e)))?;
        let from = t.offset;
        batch.checkpoint = Some(Checkpoint {
            file_id: t.file_id.clone(),
            path: t.path.display().to_string(),
            from_offset: from,
            to_offset: from + used as u64,
            to_line: t.line_no + n_lines,
        });
        // Wait for the commit before moving on: the in-memory position never runs ahead of
        // the committed checkpoint, so a failed commit is retried, not skipped.
        let (reply, committed) = tokio::sync::oneshot::channel();
        self.writer
            .send(WriteOp::Ingest(batch, Some(reply)))
            .await
            .map_err(|_| ReadError::WriterGone)?;
        match committed.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(ReadError::Io(std::io::Error::other(e))),
            Err(_) => return Err(ReadError::WriterGone),
        }
        t.offset += used as u64;
        t.line_no += n_lines;
        Ok((used as u64, got == READ_CHUNK))
    }
}

enum ReadError {
    Io(std::io::Error),
    WriterGone,
}
