//! Follows alert files as they grow. Owns file discovery, identity, rotation and truncation
//! handling and read positions; never parses a record (the pipeline does) and never writes the
//! database (it hands chunks to the writer with the checkpoint each one ends at).
//!
//! `Follower` is the synchronous core, driven step by step by the model test; `Tailer` wraps it
//! in a task that `notify` wakes, keeping one chunk in flight at the writer while it reads and
//! parses the next.
//!
//! A file is known by device, inode and a hash of its first bytes, not by path. A renamed file
//! keeps its inode, so rename rotation is followed through the handle already open: the old
//! file is read to its end, then released, while the new file at the path starts from zero.
//! A file that shrinks below the committed position was truncated (copytruncate): reading
//! restarts at zero, and the bytes that could not be read are recorded. If the rotated copy is
//! itself in the watch set (same first bytes, new inode), it is read from where the original
//! had got to, so nothing is lost.

mod activity;
mod wake;

pub use activity::{ActivitySnapshot, TailerActivity};

use super::format::{FileFormat, Format};
use super::pipeline::RawLine;
use super::reader::{LastLine, LineReader};
use serde_json::json;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// File name endings picked up inside a watched directory (a file named explicitly, or matched
/// by a glob, is always read).
pub const ALERT_FILE_SUFFIXES: &[&str] =
    &[".json", ".jsonl", ".ndjson", ".eve", ".log", ".csv", ".cef"];

/// Bytes of the file head hashed into its identity.
const ID_PREFIX: usize = 256;
/// Bytes of the head given to format detection.
const DETECT_PREFIX: usize = 64 * 1024;
/// Bytes compared just before a position to tell a copy of a file from another file that
/// merely begins the same way (two sensors writing the same long CSV header).
const COMPARE_BYTES: u64 = 4096;
/// How long a file that left the watch set is still followed after it last grew. A writer
/// keeps appending to a file renamed away until it is told to reopen (logrotate's postrotate
/// HUP), and those lines are read from the file vigil still holds open.
const ROTATE_WAIT: Duration = Duration::from_secs(5);
/// Truncated heads remembered for adopting a rotated copy that shows up later.
const REMEMBERED_TRUNCATIONS: usize = 256;

type Key = (u64, u64);

/// Something the analyst should know about a file, recorded in the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TailNote {
    /// The file shrank below what was committed: it was truncated (copytruncate).
    Truncated {
        path: String,
        file_id: String,
        committed: u64,
        new_len: u64,
        /// Bytes seen in the file but not yet read when it was truncated: lost unless a
        /// rotated copy is in the watch set.
        unread_bytes: u64,
    },
    /// A new file in the watch set is a rotated copy of a file seen before: reading it resumes
    /// where the original had got to.
    AdoptedCopy {
        path: String,
        file_id: String,
        from: String,
        offset: u64,
        line: u64,
    },
    /// A file left the watch set (rotated away or deleted) and was read to its end.
    Released {
        path: String,
        file_id: String,
        offset: u64,
    },
    /// A file rotated away while vigil was not running, found under its new name and read on
    /// from its checkpoint.
    Recovered {
        path: String,
        file_id: String,
        was: String,
        offset: u64,
    },
    /// A file rotated away while vigil was not running and not found anywhere it could have
    /// gone (deleted, or compressed under another inode): what was not read is lost. Anything
    /// written to it after vigil's last look cannot be counted.
    Lost {
        path: String,
        file_id: String,
        /// Bytes read and stored from its start.
        read_to: u64,
        /// Its length at vigil's last look.
        len_seen: u64,
    },
    /// A file could not be opened or read; it is retried on the next pass.
    Unreadable { path: String, error: String },
}

impl TailNote {
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            TailNote::Truncated {
                path,
                file_id,
                committed,
                new_len,
                unread_bytes,
            } => json!({
                "event": "truncated", "path": path, "file_id": file_id, "committed": committed,
                "new_len": new_len, "unread_bytes": unread_bytes,
            }),
            TailNote::AdoptedCopy {
                path,
                file_id,
                from,
                offset,
                line,
            } => json!({
                "event": "adopted_copy", "path": path, "file_id": file_id, "copy_of": from,
                "offset": offset, "line": line,
            }),
            TailNote::Released {
                path,
                file_id,
                offset,
            } => {
                json!({"event": "released", "path": path, "file_id": file_id, "offset": offset})
            }
            TailNote::Recovered {
                path,
                file_id,
                was,
                offset,
            } => json!({
                "event": "recovered_rotated", "path": path, "file_id": file_id, "was": was,
                "offset": offset,
            }),
            TailNote::Lost {
                path,
                file_id,
                read_to,
                len_seen,
            } => json!({
                "event": "lost_rotated", "path": path, "file_id": file_id, "read_to": read_to,
                "len_seen": len_seen, "unread_bytes": len_seen.saturating_sub(*read_to),
                "unknown": "bytes written after vigil's last look",
            }),
            TailNote::Unreadable { path, error } => {
                json!({"event": "unreadable", "path": path, "error": error})
            }
        }
    }
}

/// Complete records read from one file, with the checkpoint they end at.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub key: (u64, u64),
    pub file_id: String,
    pub path: String,
    /// Where the stored checkpoint must be for this chunk to commit (compare-and-set).
    pub from_offset: u64,
    /// What to assume for `from_offset` when the database has no checkpoint for the file yet
    /// (0, or where the original had got to for an adopted copy).
    pub initial_offset: u64,
    pub to_offset: u64,
    pub to_line: u64,
    /// The file's length when the chunk was read.
    pub len_seen: u64,
    /// Hash of the bytes just before `to_offset`: after a restart, a file with the same head is
    /// a copy of this one only if it holds the same bytes there.
    pub tail_hash: Option<String>,
    pub format: FileFormat,
    pub lines: Vec<RawLine>,
    /// The whole file, for formats read as one document.
    pub document: Option<Vec<u8>>,
}

#[derive(Debug)]
struct Tracked {
    path: PathBuf,
    file: File,
    file_id: String,
    head: Head,
    format: FileFormat,
    /// Committed position (what the database has).
    offset: u64,
    line_no: u64,
    /// Read position: ahead of `offset` while chunks are in flight.
    read_offset: u64,
    read_line: u64,
    /// Where reading began when the database had no checkpoint.
    initial_offset: u64,
    /// File length at the last look, to count bytes lost to a truncation.
    len_seen: u64,
    /// Still at a watched path (false once rotated away or deleted).
    present: bool,
    /// Since when, and at what length, a file no longer at a watched path has not grown.
    quiet_since: Option<(Instant, u64)>,
    /// Length at which a whole-document file was last found unfinished (an array or object
    /// never closed), so it is parsed again only when it changes.
    unfinished_at: Option<u64>,
    /// Hash of the bytes just before the committed position: a later file is a copy of this
    /// one only if it holds the same bytes there.
    tail: Option<String>,
}

/// What a watch entry names.
#[derive(Debug, Clone)]
enum WatchSpec {
    Path(PathBuf),
    Glob(String),
}

impl WatchSpec {
    fn parse(p: &Path) -> WatchSpec {
        let s = p.to_string_lossy();
        if s.contains(['*', '?', '[']) {
            WatchSpec::Glob(s.into_owned())
        } else {
            WatchSpec::Path(p.to_path_buf())
        }
    }

    /// Whether `path` is a file this entry follows (whether or not it exists now).
    fn names(&self, path: &Path) -> bool {
        match self {
            WatchSpec::Path(p) if p.is_dir() => {
                path.parent() == Some(p.as_path()) && alert_file_name(path)
            }
            WatchSpec::Path(p) => p == path,
            WatchSpec::Glob(g) => glob::Pattern::new(g).is_ok_and(|g| g.matches_path(path)),
        }
    }

    /// The directory `notify` should watch for this entry.
    fn watch_dir(&self) -> PathBuf {
        let dir_of = |p: &Path| {
            p.parent()
                .filter(|d| !d.as_os_str().is_empty())
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."))
        };
        match self {
            WatchSpec::Path(p) if p.is_dir() => p.clone(),
            WatchSpec::Path(p) => dir_of(p),
            WatchSpec::Glob(g) => {
                // The longest leading part without glob characters.
                let fixed: PathBuf = Path::new(g)
                    .components()
                    .take_while(|c| !c.as_os_str().to_string_lossy().contains(['*', '?', '[']))
                    .collect();
                if fixed.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    fixed
                }
            }
        }
    }
}

/// Whether a file in a watched folder is read: not hidden, and named like an alert file.
fn alert_file_name(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    !name.starts_with('.') && ALERT_FILE_SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// Files the watch set names right now: named files, alert files directly inside named
/// directories, and glob matches.
pub fn discover(watch: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for w in watch {
        match WatchSpec::parse(w) {
            WatchSpec::Path(p) if p.is_dir() => {
                if let Ok(rd) = std::fs::read_dir(&p) {
                    let mut files: Vec<PathBuf> = rd
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.is_file() && alert_file_name(p))
                        .collect();
                    files.sort();
                    out.extend(files);
                }
            }
            WatchSpec::Path(p) => out.push(p),
            WatchSpec::Glob(g) => {
                if let Ok(paths) = glob::glob(&g) {
                    let mut files: Vec<PathBuf> = paths
                        .filter_map(Result::ok)
                        .filter(|p| p.is_file())
                        .collect();
                    files.sort();
                    out.extend(files);
                }
            }
        }
    }
    out.dedup();
    out
}

/// Directories to ask `notify` about.
pub fn watch_dirs(watch: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = watch
        .iter()
        .map(|w| WatchSpec::parse(w).watch_dir())
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

fn read_at(file: &mut File, offset: u64, max: usize) -> std::io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity(max.min(1 << 20));
    file.by_ref().take(max as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// A file's head: the hash of its first `ID_PREFIX` bytes, or of its first line while the
/// file is shorter than that. `None` until the first line is complete: an identity that changed
/// as the file grew would lose the checkpoint. Only a full-length head is distinctive enough to
/// recognise a rotated copy by (every Zeek log starts with the same `#separator` line).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Head {
    pub len: usize,
    pub hash: String,
}

impl Head {
    fn of(file: &mut File) -> std::io::Result<Option<Head>> {
        let head = read_at(file, 0, ID_PREFIX)?;
        let len = if head.len() == ID_PREFIX {
            ID_PREFIX
        } else {
            match head.iter().position(|b| *b == b'\n') {
                Some(i) => i,
                None => return Ok(None),
            }
        };
        Ok(Some(Head {
            len,
            hash: hash_prefix(&head[..len]),
        }))
    }

    /// The same-length head of another file, to compare with this one.
    fn of_len(file: &mut File, len: usize) -> Option<String> {
        let head = read_at(file, 0, len).ok()?;
        (head.len() == len).then(|| hash_prefix(&head))
    }

    pub fn full(&self) -> bool {
        self.len == ID_PREFIX
    }

    /// The identity text stored with checkpoints: `dev:ino:born:len:hash`. The birth time
    /// (nanoseconds, 0 where the filesystem keeps none) tells a new file from a deleted one
    /// whose inode it reuses: with the same head, nothing else would.
    fn file_id(&self, key: Key, born: u128) -> String {
        format!("{}:{}:{}:{}:{}", key.0, key.1, born, self.len, self.hash)
    }

    /// The identity as versions before birth times wrote it, to resume from their checkpoints.
    fn legacy_file_id(&self, key: Key) -> String {
        format!("{}:{}:{}:{}", key.0, key.1, self.len, self.hash)
    }
}

fn hash_prefix(b: &[u8]) -> String {
    super::alert::sha256_hex(b)[..16].to_string()
}

/// A checkpoint as the database holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    pub file_id: String,
    pub path: String,
    pub offset: u64,
    pub line: u64,
}

/// Checkpoints looked at on start-up for files rotated away while vigil was not running.
const RECOVER_CHECKPOINTS: usize = 64;

/// Where the database says files are. The tailer asks by identity, and by full-length head
/// when a file it has never seen might be a rotated copy of one it has.
pub trait Checkpoints {
    /// The most recently updated checkpoints, newest first: on start-up, the files they name
    /// are looked for under their rotated names to finish reading them.
    fn recent(&mut self, _limit: usize) -> Vec<StoredCheckpoint> {
        Vec::new()
    }
    /// The committed `(offset, line)` of this exact file.
    fn get(&mut self, file_id: &str) -> Option<(u64, u64)>;
    /// The furthest checkpoint of any file with this full-length head.
    fn by_head(&mut self, head_hash: &str) -> Option<StoredCheckpoint>;
    /// The file's length at the last commit, to say how much was never read when it goes
    /// missing.
    fn seen_len(&mut self, _file_id: &str) -> Option<u64> {
        None
    }
    /// Hash of the bytes just before the committed position, when the database has it.
    fn tail_hash(&mut self, _file_id: &str) -> Option<String> {
        None
    }
}

/// A file no longer followed, remembered so that a copy of it showing up later resumes where
/// it had got to.
#[derive(Debug, Clone)]
struct Finished {
    head: String,
    offset: u64,
    line: u64,
    path: String,
    /// Hash of the bytes before `offset` (see `Tracked::tail`).
    tail: Option<String>,
}

/// The synchronous core of the tailer.
pub struct Follower {
    watch: Vec<PathBuf>,
    forced: Format,
    settings: std::sync::Arc<super::format::FormatSettings>,
    files: HashMap<Key, Tracked>,
    /// Full-length heads of files no longer followed (truncated or released), with where they
    /// had got to (oldest first): a file that appears later with that head is a copy.
    finished: VecDeque<Finished>,
    /// Identities whose stored checkpoint is void because the file was truncated; the writer
    /// resets them with the note, this covers the time until it has.
    reset: HashSet<String>,
    /// Files holding the same bytes as a tracked file up to their own length: copies waiting
    /// to be adopted if the original is truncated (with their length when seen: one that
    /// grows is not a copy after all).
    copies: HashMap<Key, (PathBuf, Key, u64)>,
    next: usize,
    /// Whether files rotated away while vigil was down have been looked for (once, on the
    /// first scan).
    recovered: bool,
}

impl Follower {
    pub fn new(watch: Vec<PathBuf>, forced: Format) -> Self {
        Self::with_settings(watch, forced, super::format::FormatSettings::builtin())
    }

    /// A follower that frames files with the configured settings (CSV columns, mappings).
    pub fn with_settings(
        watch: Vec<PathBuf>,
        forced: Format,
        settings: std::sync::Arc<super::format::FormatSettings>,
    ) -> Self {
        Follower {
            watch,
            forced,
            settings,
            files: HashMap::new(),
            finished: VecDeque::new(),
            reset: HashSet::new(),
            copies: HashMap::new(),
            next: 0,
            recovered: false,
        }
    }

    pub fn watch(&self) -> &[PathBuf] {
        &self.watch
    }

    /// Number of files being followed.
    pub fn followed(&self) -> usize {
        self.files.len()
    }

    /// Look at the watch set: pick up new files (at their checkpoint from `checkpoint`), follow
    /// renames, notice truncation, deletion and rotated copies.
    pub fn scan(&mut self, checkpoints: &mut dyn Checkpoints) -> Vec<TailNote> {
        let mut notes = Vec::new();
        // Truncation first, so a rotated copy discovered in this pass knows its original.
        self.check_truncation(&mut notes);
        for t in self.files.values_mut() {
            t.present = false;
        }
        for path in discover(&self.watch) {
            let meta = match std::fs::metadata(&path) {
                Ok(m) if m.is_file() => m,
                _ => continue,
            };
            let key = (meta.dev(), meta.ino());
            if let Some(t) = self.files.get_mut(&key) {
                t.present = true;
                t.path = path;
                continue;
            }
            if self.copies.contains_key(&key) {
                continue;
            }
            match self.open(&path, key, checkpoints, &mut notes) {
                Ok(()) => {}
                Err(e) => notes.push(TailNote::Unreadable {
                    path: path.display().to_string(),
                    error: e.to_string(),
                }),
            }
        }
        if !self.recovered {
            self.recovered = true;
            self.recover_rotated(checkpoints, &mut notes);
        }
        // Release files that left the watch set once their writer has let go of them and
        // everything in them is committed.
        let now = Instant::now();
        for t in self.files.values_mut() {
            let len = t.file.metadata().map(|m| m.len()).unwrap_or(0);
            t.quiet_since = match t.quiet_since {
                _ if t.present => None,
                Some((since, seen)) if seen == len => Some((since, seen)),
                _ => Some((now, len)),
            };
        }
        let gone: Vec<Key> = self
            .files
            .iter()
            .filter(|(_, t)| {
                t.quiet_since.is_some_and(|(since, len)| {
                    now.duration_since(since) >= ROTATE_WAIT
                        && t.offset == t.read_offset
                        && !has_complete_line_after(&t.file, t.offset, len)
                })
            })
            .map(|(k, _)| *k)
            .collect();
        for k in gone {
            if let Some(t) = self.files.remove(&k) {
                self.remember(&t);
                notes.push(TailNote::Released {
                    path: t.path.display().to_string(),
                    file_id: t.file_id,
                    offset: t.offset,
                });
            }
        }
        self.copies.retain(|k, (p, _, len)| {
            std::fs::metadata(&*p).is_ok_and(|m| (m.dev(), m.ino()) == *k && m.len() == *len)
        });
        notes
    }

    /// Finish files that were rotated away (renamed out of the watch set) before their end was
    /// read, while vigil was not running: a checkpoint names the device, inode and head, so
    /// the file is looked for beside its old path and in the watched directories, and read on
    /// from the checkpoint to its end.
    fn recover_rotated(&mut self, checkpoints: &mut dyn Checkpoints, notes: &mut Vec<TailNote>) {
        let watched = watch_dirs(&self.watch);
        for cp in checkpoints.recent(RECOVER_CHECKPOINTS) {
            let Some(key) = key_of(&cp.file_id) else {
                continue;
            };
            // Only files this watch set follows: a case database opened elsewhere names files
            // that were never this run's to finish.
            let watched_name = self
                .watch
                .iter()
                .any(|w| WatchSpec::parse(w).names(Path::new(&cp.path)));
            if !watched_name {
                continue;
            }
            // Followed already under this identity, or a copy of a followed file. An inode
            // number reused by a new file is not the file the checkpoint speaks of.
            let followed = self
                .files
                .get(&key)
                .is_some_and(|t| t.file_id == cp.file_id);
            if followed || self.copies.contains_key(&key) {
                continue;
            }
            let beside = Path::new(&cp.path).parent().map(Path::to_path_buf);
            // Same inode and same head: the very file the checkpoint speaks of.
            let found = beside
                .iter()
                .chain(watched.iter())
                .filter_map(|dir| find_inode(dir, key))
                .find_map(|path| {
                    let mut file = File::open(&path).ok()?;
                    let head = Head::of(&mut file).ok().flatten()?;
                    (head.file_id(key, born(&file)) == cp.file_id).then_some((path, file))
                });
            let Some((path, file)) = found else {
                notes.push(TailNote::Lost {
                    path: cp.path.clone(),
                    file_id: cp.file_id.clone(),
                    read_to: cp.offset,
                    len_seen: checkpoints
                        .seen_len(&cp.file_id)
                        .unwrap_or(0)
                        .max(cp.offset),
                });
                continue;
            };
            if file.metadata().is_ok_and(|m| m.len() <= cp.offset) {
                continue;
            }
            match self.open(&path, key, checkpoints, notes) {
                Ok(()) => {
                    if let Some(t) = self.files.get_mut(&key) {
                        // Outside the watch set: released once read to its end. It was
                        // rotated while vigil was down, so its writer has had its time.
                        t.present = discover(&self.watch).contains(&path);
                        if !t.present {
                            let len = t.file.metadata().map_or(0, |m| m.len());
                            t.quiet_since =
                                Instant::now().checked_sub(ROTATE_WAIT).map(|at| (at, len));
                        }
                        notes.push(TailNote::Recovered {
                            path: path.display().to_string(),
                            file_id: t.file_id.clone(),
                            was: cp.path.clone(),
                            offset: t.offset,
                        });
                    }
                }
                Err(e) => notes.push(TailNote::Unreadable {
                    path: path.display().to_string(),
                    error: e.to_string(),
                }),
            }
        }
    }

    /// Whether a new file is a rotated copy of the file an earlier run's checkpoint speaks of.
    /// Only the head is known of that file, and two sensors may share a head, so device,
    /// inode and birth time decide first: while the file of that checkpoint is still there
    /// and unchanged, the new one is another file, read from its start. Once it is gone or
    /// truncated, the new file is taken for its copy if it holds the same bytes just before
    /// the checkpoint (reading it again from the start would duplicate everything); where the
    /// database does not have those bytes' hash, a line end just there has to do.
    fn copy_of_earlier_run(
        &self,
        file: &File,
        cp: &StoredCheckpoint,
        checkpoints: &mut dyn Checkpoints,
    ) -> bool {
        let Some(key) = key_of(&cp.file_id) else {
            return false;
        };
        let mut dirs = watch_dirs(&self.watch);
        dirs.extend(Path::new(&cp.path).parent().map(Path::to_path_buf));
        let intact = |mut f: File| {
            let head = Head::of(&mut f).ok().flatten();
            head.is_some_and(|h| h.file_id(key, born(&f)) == cp.file_id)
                && f.metadata().is_ok_and(|m| m.len() >= cp.offset)
        };
        let original_intact = self.files.values().any(|t| t.file_id == cp.file_id)
            || dirs
                .iter()
                .filter_map(|d| find_inode(d, key))
                .filter_map(|p| File::open(p).ok())
                .any(intact);
        if original_intact {
            return false;
        }
        if let Some(hash) = checkpoints.tail_hash(&cp.file_id) {
            return window_hash(file, cp.offset).as_ref() == Some(&hash);
        }
        let mut f = match file.try_clone() {
            Ok(f) => f,
            Err(_) => return false,
        };
        cp.offset == 0 || read_at(&mut f, cp.offset - 1, 1).is_ok_and(|b| b.as_slice() == b"\n")
    }

    fn open(
        &mut self,
        path: &Path,
        key: Key,
        checkpoints: &mut dyn Checkpoints,
        notes: &mut Vec<TailNote>,
    ) -> std::io::Result<()> {
        let mut file = File::open(path)?;
        let Some(head) = Head::of(&mut file)? else {
            return Ok(());
        };
        let file_id = head.file_id(key, born(&file));
        let stored = if self.reset.contains(&file_id) {
            Some((0, 0))
        } else {
            checkpoints.get(&file_id)
        };
        let mut initial = (0, 0);
        if stored.is_none() {
            if let Some(legacy) = checkpoints.get(&head.legacy_file_id(key)) {
                initial = legacy;
            }
        }
        if stored.is_none() && initial == (0, 0) && head.full() {
            // A copy of a file still being followed (the same bytes up to its own end, not
            // just the same head): everything in it is also in the original, so it is read
            // only once the original is truncated or gone.
            let len = file.metadata()?.len();
            let window = window_hash(&file, len);
            if let Some(orig) = self
                .files
                .iter()
                .filter(|(_, t)| t.head == head)
                .find(|(_, t)| {
                    t.file.metadata().is_ok_and(|m| m.len() >= len)
                        && window.is_some()
                        && window_hash(&t.file, len) == window
                })
                .map(|(k, _)| *k)
            {
                self.copies.insert(key, (path.to_path_buf(), orig, len));
                return Ok(());
            }
            let remembered = self
                .finished
                .iter()
                .rposition(|f| {
                    f.head == head.hash
                        && f.tail.is_some()
                        && window_hash(&file, f.offset) == f.tail
                })
                .and_then(|i| self.finished.remove(i))
                .map(|f| (f.offset, f.line, f.path));
            let adopted = remembered.or_else(|| {
                checkpoints
                    .by_head(&head.hash)
                    .filter(|cp| self.copy_of_earlier_run(&file, cp, checkpoints))
                    .map(|cp| (cp.offset, cp.line, "(earlier run)".to_string()))
            });
            if let Some((offset, line, from)) = adopted {
                let len = file.metadata()?.len();
                initial = if offset <= len {
                    (offset, line)
                } else {
                    (0, 0)
                };
                notes.push(TailNote::AdoptedCopy {
                    path: path.display().to_string(),
                    file_id: file_id.clone(),
                    from,
                    offset: initial.0,
                    line: initial.1,
                });
            }
        }
        let (offset, line_no) = stored.unwrap_or(initial);
        let detect = read_at(&mut file, 0, DETECT_PREFIX)?;
        let format = FileFormat::detect_with(&detect, self.forced, &self.settings);
        let len = file.metadata()?.len();
        let tail = window_hash(&file, offset);
        tracing::info!(path = %path.display(), offset, "following");
        self.files.insert(
            key,
            Tracked {
                path: path.to_path_buf(),
                file,
                file_id,
                head,
                format,
                offset,
                line_no,
                read_offset: offset,
                read_line: line_no,
                initial_offset: initial.0,
                len_seen: len,
                present: true,
                quiet_since: None,
                unfinished_at: None,
                tail,
            },
        );
        Ok(())
    }

    fn check_truncation(&mut self, notes: &mut Vec<TailNote>) {
        let mut truncated = Vec::new();
        for (k, t) in &mut self.files {
            let Ok(meta) = t.file.metadata() else {
                continue;
            };
            let len = meta.len();
            // Shorter than what was committed, or a different first line: the file was
            // truncated (and perhaps refilled past the old position before this look).
            let head_now = Head::of_len(&mut t.file, t.head.len);
            let refilled = head_now.as_deref().is_some_and(|h| h != t.head.hash);
            if len < t.offset || refilled {
                notes.push(TailNote::Truncated {
                    path: t.path.display().to_string(),
                    file_id: t.file_id.clone(),
                    committed: t.offset,
                    new_len: len,
                    unread_bytes: t.len_seen.saturating_sub(t.offset),
                });
                truncated.push(*k);
            } else {
                t.len_seen = t.len_seen.max(len);
            }
        }
        for k in truncated {
            // The truncated inode is a new file from now on: it is opened afresh at zero. A
            // waiting rotated copy, or one that appears later, resumes where it had got to.
            self.copies.retain(|_, (_, orig, _)| *orig != k);
            if let Some(t) = self.files.remove(&k) {
                self.remember(&t);
                self.reset.insert(t.file_id);
            }
        }
    }

    fn remember(&mut self, t: &Tracked) {
        if t.head.full() {
            self.finished.push_back(Finished {
                head: t.head.hash.clone(),
                offset: t.offset,
                line: t.line_no,
                path: t.path.display().to_string(),
                tail: t.tail.clone(),
            });
        }
        while self.finished.len() > REMEMBERED_TRUNCATIONS {
            self.finished.pop_front();
        }
        // A copy waiting on a file that is gone can now be opened (and adopted).
        let live: HashSet<Key> = self.files.keys().copied().collect();
        self.copies.retain(|_, (_, orig, _)| live.contains(orig));
    }

    /// The next chunk of complete records from some file (files take turns), at most `max`
    /// bytes, or `None` when nothing new is complete anywhere.
    ///
    /// # Errors
    /// A read failure on one file (it is retried on the next call).
    pub fn next_chunk(&mut self, max: usize) -> Result<Option<Chunk>, (PathBuf, std::io::Error)> {
        let mut keys: Vec<Key> = self.files.keys().copied().collect();
        keys.sort_unstable();
        for i in 0..keys.len() {
            let k = keys[(self.next + i) % keys.len()];
            let Some(t) = self.files.get_mut(&k) else {
                continue;
            };
            let chunk = read_chunk(k, t, max).map_err(|e| (t.path.clone(), e))?;
            if chunk.is_some() {
                self.next = (self.next + i + 1) % keys.len().max(1);
                return Ok(chunk);
            }
        }
        Ok(None)
    }

    /// The writer committed a chunk.
    pub fn committed(&mut self, key: Key, to_offset: u64, to_line: u64) {
        if let Some(t) = self.files.get_mut(&key) {
            t.offset = to_offset;
            t.line_no = to_line;
            t.tail = window_hash(&t.file, to_offset);
            if t.read_offset < to_offset {
                t.read_offset = to_offset;
                t.read_line = to_line;
            }
        }
    }

    /// A chunk did not commit: read again from the committed position (or from where the
    /// database says, when another process got there first).
    pub fn rewind(&mut self, key: Key, stored: Option<(u64, u64)>) {
        if let Some(t) = self.files.get_mut(&key) {
            if let Some((o, l)) = stored {
                t.offset = o;
                t.line_no = l;
            }
            t.read_offset = t.offset;
            t.read_line = t.line_no;
        }
    }
}

/// When the file was created, in nanoseconds since the epoch; 0 where unknown.
fn born(file: &File) -> u128 {
    file.metadata()
        .and_then(|m| m.created())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos())
}

/// `(device, inode)` from an identity `dev:ino:born:len:hash`.
fn key_of(file_id: &str) -> Option<Key> {
    let mut parts = file_id.split(':');
    let dev = parts.next()?.parse().ok()?;
    let ino = parts.next()?.parse().ok()?;
    Some((dev, ino))
}

/// The file in `dir` (not below it) with this device and inode, under whatever name.
fn find_inode(dir: &Path, key: Key) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file() && (m.dev(), m.ino()) == key)
        })
}

/// Hash of the `COMPARE_BYTES` (or fewer, from the start) ending at `end`; `None` when the
/// file is shorter than `end` or cannot be read.
fn window_hash(file: &File, end: u64) -> Option<String> {
    let start = end.saturating_sub(COMPARE_BYTES);
    let mut f = file.try_clone().ok()?;
    let b = read_at(&mut f, start, (end - start) as usize).ok()?;
    (b.len() as u64 == end - start).then(|| hash_prefix(&b))
}

fn has_complete_line_after(file: &File, offset: u64, len: u64) -> bool {
    if len <= offset {
        return false;
    }
    let mut f = match file.try_clone() {
        Ok(f) => f,
        Err(_) => return false,
    };
    read_at(&mut f, offset, (len - offset).min(1 << 20) as usize).is_ok_and(|b| b.contains(&b'\n'))
}

impl Tracked {
    /// A chunk of this file from `from` to the read position.
    fn chunk(&self, key: Key, from: u64, lines: Vec<RawLine>, document: Option<Vec<u8>>) -> Chunk {
        Chunk {
            key,
            file_id: self.file_id.clone(),
            path: self.path.display().to_string(),
            from_offset: from,
            initial_offset: self.initial_offset,
            to_offset: self.read_offset,
            to_line: self.read_line,
            len_seen: self.len_seen,
            tail_hash: window_hash(&self.file, self.read_offset),
            format: self.format.clone(),
            lines,
            document,
        }
    }
}

fn read_chunk(key: Key, t: &mut Tracked, max: usize) -> std::io::Result<Option<Chunk>> {
    let len = t.file.metadata()?.len();
    t.len_seen = t.len_seen.max(len);
    if !t.format.is_line_oriented() {
        // A whole document: read it when it has changed and parses completely.
        if len == t.read_offset || len == 0 {
            return Ok(None);
        }
        // Unfinished at this very length on the last look, and unchanged since: its writer
        // is done with it. It is handed over once as it is, for the pipeline to quarantine
        // with its parse error, and read again only if it changes.
        let stalled = t.unfinished_at == Some(len);
        let doc = read_at(&mut t.file, 0, len as usize)?;
        if !stalled && !document_complete(&doc) {
            t.unfinished_at = Some(len);
            return Ok(None);
        }
        t.unfinished_at = None;
        let from = t.read_offset;
        t.read_offset = doc.len() as u64;
        return Ok(Some(t.chunk(key, from, Vec::new(), Some(doc))));
    }
    if len <= t.read_offset {
        return Ok(None);
    }
    // Lines are cut by the same reader `vigil ingest` uses, so an over-long line is refused
    // whole, once, and nothing after its start is read as a record of its own.
    t.file.seek(SeekFrom::Start(t.read_offset))?;
    let src = std::io::BufReader::new((&t.file).take(len - t.read_offset));
    let limit = t.format.settings().max_record_bytes;
    let mut reader = LineReader::new(src, t.read_offset, t.read_line + 1, limit, LastLine::Wait);
    let mut lines = Vec::new();
    while reader.offset() - t.read_offset < max as u64 {
        match reader.next_line() {
            Ok(Some(line)) => lines.push(line),
            Ok(None) => break,
            Err(broken) => return Err(broken.error),
        }
    }
    if lines.is_empty() {
        return Ok(None); // a partial last line: wait for its newline
    }
    let from = t.read_offset;
    t.read_offset = reader.offset();
    t.read_line = reader.last_line_no();
    Ok(Some(t.chunk(key, from, lines, None)))
}

/// True when `doc` is a complete JSON document (an incomplete one is still being written).
fn document_complete(doc: &[u8]) -> bool {
    match serde_json::from_slice::<serde::de::IgnoredAny>(doc) {
        Ok(_) => true,
        Err(e) => !e.is_eof(),
    }
}

// ------------------------------------------------------------------------ the async task

use super::pipeline::Pipeline;
use super::store::{self, Checkpoint, IngestBatch, IngestOutcome, WriteOp};
use tokio::sync::{mpsc, oneshot};

/// Bytes read from one file per chunk: big enough to amortise a commit, small enough that one
/// file cannot starve the others.
pub const CHUNK_BYTES: usize = 2 * 1024 * 1024;
/// Poll interval when no filesystem event arrives (inotify misses events on some filesystems).
const POLL: Duration = Duration::from_millis(1000);

/// The tailer task.
pub struct Tailer {
    pub watch: Vec<PathBuf>,
    pub format: Format,
    pub format_settings: std::sync::Arc<super::format::FormatSettings>,
    pub db: PathBuf,
    pub pipeline: Pipeline,
    pub writer: mpsc::Sender<WriteOp>,
    pub activity: std::sync::Arc<TailerActivity>,
}

type InFlight = (
    Key,
    u64,
    u64,
    oneshot::Receiver<rusqlite::Result<IngestOutcome>>,
);

impl Tailer {
    /// Follow the watch set until the writer channel closes or `stop` is signalled.
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut file_events = wake::FileEvents::start(watch_dirs(&self.watch));
        let mut follower = Follower::with_settings(
            self.watch.clone(),
            self.format,
            self.format_settings.clone(),
        );
        let reader = match store::open(&self.db) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("tailer cannot open {}: {e}", self.db.display());
                return;
            }
        };
        let mut inflight: VecDeque<InFlight> = VecDeque::new();
        let mut reported: HashMap<String, String> = HashMap::new();
        let mut scan_due = true;
        let mut poll = tokio::time::interval(POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if *stop.borrow() {
                break;
            }
            if scan_due && inflight.is_empty() {
                let notes = follower.scan(&mut store::StoredCheckpoints(&reader));
                scan_due = false;
                self.activity.scanned(follower.followed());
                let notes: Vec<TailNote> = notes
                    .into_iter()
                    .filter(|n| match n {
                        // Say once per error, not once per second.
                        TailNote::Unreadable { path, error } => {
                            reported.insert(path.clone(), error.clone()).as_ref() != Some(error)
                        }
                        _ => true,
                    })
                    .collect();
                if !notes.is_empty() && self.send_notes(notes).await.is_err() {
                    break;
                }
            }
            // Keep one chunk at the writer while the next is read and parsed.
            let mut progressed = false;
            while inflight.len() < 2 {
                let chunk = match follower.next_chunk(CHUNK_BYTES) {
                    Ok(Some(c)) => c,
                    Ok(None) => break,
                    Err((path, e)) => {
                        tracing::warn!(path = %path.display(), "read failed: {e}; will retry");
                        break;
                    }
                };
                progressed = true;
                self.activity.submitted();
                match self.submit(chunk).await {
                    Some(f) => inflight.push_back(f),
                    None => return,
                }
            }
            if let Some((key, to, line, reply)) = inflight.pop_front() {
                match reply.await {
                    Ok(Ok(IngestOutcome::Committed(_))) => follower.committed(key, to, line),
                    Ok(Ok(IngestOutcome::Conflict { stored })) => {
                        follower.rewind(key, stored);
                        // Later chunks of this file were read past a position that did not
                        // commit: drop their results (the compare-and-set refuses them anyway).
                        scan_due = true;
                    }
                    Ok(Err(e)) => {
                        tracing::error!("commit failed: {e}; re-reading");
                        follower.rewind(key, None);
                    }
                    Err(_) => break,
                }
                continue;
            }
            if progressed {
                continue;
            }
            tokio::select! {
                _ = file_events.changed() => self.activity.woken(),
                _ = poll.tick() => {
                    self.activity.polled();
                    file_events.rewatch();
                }
                _ = stop.changed() => {}
            }
            scan_due = true;
        }
        // Let what is in flight commit before stopping, so a restart resumes after it.
        while let Some((key, to, line, reply)) = inflight.pop_front() {
            if let Ok(Ok(IngestOutcome::Committed(_))) = reply.await {
                follower.committed(key, to, line);
            }
        }
        tracing::info!("tailer stopped");
    }

    async fn submit(&self, chunk: Chunk) -> Option<InFlight> {
        let pipeline = self.pipeline.clone();
        let (key, to, line) = (chunk.key, chunk.to_offset, chunk.to_line);
        let batch = tokio::task::spawn_blocking(move || {
            let mut batch = match &chunk.document {
                Some(doc) => pipeline.process_document(&chunk.path, &chunk.format, doc),
                None => pipeline.process(&chunk.path, &chunk.format, chunk.lines),
            };
            batch.checkpoint = Some(Checkpoint {
                file_id: chunk.file_id,
                path: chunk.path,
                from_offset: chunk.from_offset,
                initial_offset: chunk.initial_offset,
                to_offset: chunk.to_offset,
                to_line: chunk.to_line,
                len_seen: chunk.len_seen,
                tail_hash: chunk.tail_hash,
            });
            batch
        })
        .await
        .ok()?;
        let (reply, rx) = oneshot::channel();
        self.writer
            .send(WriteOp::Ingest(batch, Some(reply)))
            .await
            .ok()?;
        Some((key, to, line, rx))
    }

    async fn send_notes(&self, notes: Vec<TailNote>) -> Result<(), ()> {
        for n in &notes {
            tracing::info!("{}", n.to_json());
        }
        let batch = IngestBatch {
            file: "(tailer)".into(),
            notes: notes.iter().map(TailNote::to_json).collect(),
            ..IngestBatch::default()
        };
        self.writer
            .send(WriteOp::Ingest(batch, None))
            .await
            .map_err(|_| ())
    }
}
