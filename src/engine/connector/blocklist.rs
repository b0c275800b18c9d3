//! The blocklist connector: an EDL-style file of one IP, CIDR or host name per line that
//! firewalls poll. Owns entry validation and the atomic, serialised rewrite of that file (an
//! entry added, or removed by a rollback); never writes anything but a validated entry.

use super::{ConnectorError, Params};
use serde::Deserialize;
use std::fmt;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `[connectors.blocklist]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The list approved blocks are added to; empty: `blocklist.txt` in the data directory.
    pub path: String,
}

/// The configured list. Writes within one process are serialised by a mutex and across
/// processes by an exclusive lock on `PATH.lock`, so concurrent blocks are never lost.
#[derive(Debug, Clone)]
pub(crate) struct Blocklist {
    path: PathBuf,
    writing: Arc<tokio::sync::Mutex<()>>,
}

/// One entry to add or remove, already validated and in canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlocklistCall {
    pub path: PathBuf,
    pub entry: String,
    /// A rollback takes the entry out again.
    pub remove: bool,
}

impl fmt::Display for BlocklistCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The entry is validated to [0-9a-z.:/-] so it needs no quoting.
        if self.remove {
            write!(
                f,
                "remove {} from blocklist {}",
                self.entry,
                self.path.display()
            )
        } else {
            write!(f, "add {} to blocklist {}", self.entry, self.path.display())
        }
    }
}

impl Blocklist {
    pub(crate) fn new(path: PathBuf) -> Self {
        Blocklist {
            path,
            writing: Arc::default(),
        }
    }

    pub(crate) fn from_config(c: &Config, default_path: PathBuf) -> Self {
        Self::new(
            crate::engine::connector::non_empty(&c.path)
                .map(PathBuf::from)
                .unwrap_or(default_path),
        )
    }

    /// Params: `entry` (text) and optionally `op`: `add` (the default) or `remove`.
    pub(crate) fn prepare(&self, p: &mut Params<'_>) -> Result<BlocklistCall, ConnectorError> {
        let raw = p.text("entry")?;
        let remove = match p.optional_text("op")?.as_deref() {
            None | Some("add") => false,
            Some("remove") => true,
            Some(_) => {
                return Err(ConnectorError::bad(
                    "op",
                    "must be add or remove".to_string(),
                ))
            }
        };
        Ok(BlocklistCall {
            path: self.path.clone(),
            entry: entry(&raw)?,
            remove,
        })
    }

    pub(crate) async fn add(&self, call: &BlocklistCall) -> Result<String, String> {
        let _one_writer = self.writing.lock().await;
        let c = call.clone();
        tokio::task::spawn_blocking(move || rewrite(&c.path, &c.entry, c.remove))
            .await
            .unwrap_or_else(|e| Err(format!("blocklist task failed: {e}")))
    }
}

/// A blocklist entry: an IP, a CIDR or a host name, validated so nothing else (no spaces, no
/// newlines, no comments) can enter a file firewalls parse.
///
/// # Errors
/// Anything that is not an IP address, a CIDR with an in-range prefix, or a DNS host name.
pub fn entry(s: &str) -> Result<String, ConnectorError> {
    let bad = |why: &str| ConnectorError::bad("entry", format!("{why}: {}", super::shown(s)));
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(ip.to_string());
    }
    if let Some((ip, len)) = s.split_once('/') {
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| bad("not an IP, CIDR or host name"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let len: u8 = len
            .parse()
            .ok()
            .filter(|l| *l <= max && !len.starts_with('+'))
            .ok_or_else(|| bad("prefix length out of range"))?;
        return Ok(format!("{ip}/{len}"));
    }
    let host_ok = !s.is_empty()
        && s.len() <= 253
        && !s.starts_with(['-', '.'])
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if host_ok {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(bad("not an IP, CIDR or host name"))
    }
}

/// Add `entry` to (or remove it from) the list at `path` by writing a new file beside it and
/// renaming it over the old one, so a firewall polling the list never reads half a file.
fn rewrite(path: &Path, entry: &str, remove: bool) -> Result<String, String> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("{}: {e}", Path::new(&lock_path).display()))?;
    lock.lock()
        .map_err(|e| format!("{}: cannot lock: {e}", Path::new(&lock_path).display()))?;
    let existing = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("{}: cannot read: {e}", path.display())),
    };
    let present = existing.lines().any(|l| l.trim() == entry);
    if present != remove {
        let how = if remove { "not in" } else { "already in" };
        return Ok(format!("{entry} {how} {}", path.display()));
    }
    let mut tmp =
        tempfile::NamedTempFile::new_in(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut text = if remove {
        existing
            .lines()
            .filter(|l| l.trim() != entry)
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    } else {
        existing
    };
    if !remove {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(entry);
        text.push('\n');
    }
    keep_access(tmp.as_file(), path).map_err(|e| format!("{}: {e}", path.display()))?;
    tmp.write_all(text.as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| format!("{}: {}", path.display(), e.error))?;
    let n = text.lines().filter(|l| !l.trim().is_empty()).count();
    let did = if remove { "removed" } else { "added" };
    let prep = if remove { "from" } else { "to" };
    Ok(format!(
        "{did} {entry} {prep} {} ({n} entries)",
        path.display()
    ))
}

/// Give the new list the mode, owner and group of the one it replaces, so whatever publishes
/// the list to firewalls (a web server in the list's group) can still read it. A first list is
/// world-readable: it holds addresses to block, nothing secret. Where this process may not
/// give the file away to the old owner, the group and mode are kept all the same.
fn keep_access(new: &std::fs::File, old: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let Ok(m) = std::fs::metadata(old) else {
        return new.set_permissions(std::fs::Permissions::from_mode(0o644));
    };
    if std::os::unix::fs::fchown(new, Some(m.uid()), Some(m.gid())).is_err() {
        if let Err(e) = std::os::unix::fs::fchown(new, None, Some(m.gid())) {
            tracing::warn!(list = %old.display(), "cannot keep the blocklist's group: {e}");
        }
    }
    new.set_permissions(std::fs::Permissions::from_mode(m.mode() & 0o7777))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::connector::Connectors;
    use serde_json::{json, Map, Value};

    fn p(entry: &str) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("entry".into(), json!(entry));
        m
    }

    #[test]
    fn entries_are_validated_and_canonical() {
        assert_eq!(entry("10.0.0.1"), Ok("10.0.0.1".into()));
        assert_eq!(entry("2001:0db8:0000::1"), Ok("2001:db8::1".into()));
        assert_eq!(entry("10.0.0.0/8"), Ok("10.0.0.0/8".into()));
        assert_eq!(entry("Evil.Example.com"), Ok("evil.example.com".into()));
        for bad in [
            "1.2.3.4\n5.6.7.8",
            "a b",
            "$(reboot)",
            "-rf",
            "10.0.0.0/33",
            "10.0.0.0/+8",
            "",
            "x;y",
            "../etc/passwd",
            "# comment",
        ] {
            assert!(entry(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[tokio::test]
    async fn blocklist_appends_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = Connectors::new(dir.path().join("bl.txt"));
        let first = c.execute("blocklist", &p("192.0.2.7"), "k1").await;
        assert!(first.ok, "{}", first.detail);
        let again = c.execute("blocklist", &p("192.0.2.7"), "k2").await;
        assert!(again.ok);
        assert!(again.detail.contains("already"));
        let text = std::fs::read_to_string(dir.path().join("bl.txt")).expect("list");
        assert_eq!(text, "192.0.2.7\n");
    }

    #[tokio::test]
    async fn concurrent_blocks_are_all_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = Connectors::new(dir.path().join("bl.txt"));
        let runs: Vec<_> = (1..=20)
            .map(|i| {
                let c = c.clone();
                tokio::spawn(async move {
                    c.execute("blocklist", &p(&format!("192.0.2.{i}")), "k")
                        .await
                })
            })
            .collect();
        for r in runs {
            let out = r.await.expect("task");
            assert!(out.ok, "{}", out.detail);
        }
        let text = std::fs::read_to_string(dir.path().join("bl.txt")).expect("list");
        assert_eq!(text.lines().count(), 20, "{text}");
    }

    #[tokio::test]
    async fn a_rewrite_keeps_the_lists_mode_owner_and_group() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = tempfile::tempdir().expect("tempdir");
        let list = dir.path().join("bl.txt");
        std::fs::write(&list, "192.0.2.1\n").expect("list");
        std::fs::set_permissions(&list, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        // As root, hand the list to another user and group, as a web server's would be.
        let (uid, gid) = if nix::unistd::geteuid().is_root() {
            (65534, 65534)
        } else {
            let m = std::fs::metadata(&list).expect("meta");
            (m.uid(), m.gid())
        };
        std::os::unix::fs::chown(&list, Some(uid), Some(gid)).expect("chown");
        let c = Connectors::new(list.clone());
        let added = c.execute("blocklist", &p("192.0.2.8"), "k").await;
        assert!(added.ok, "{}", added.detail);
        let m = std::fs::metadata(&list).expect("meta");
        assert_eq!(m.permissions().mode() & 0o7777, 0o644);
        assert_eq!((m.uid(), m.gid()), (uid, gid));
        assert_eq!(
            std::fs::read_to_string(&list).expect("list"),
            "192.0.2.1\n192.0.2.8\n"
        );
    }
}
