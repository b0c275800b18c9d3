//! Execution leases: which live process is carrying out an action. A lease is an exclusive lock
//! on a per-action file beside the database; the OS releases it when the holding process dies
//! (at death, before it is reaped), so whether a runner is alive never depends on process names
//! or pids. Owns the lease files only; the action's state lives in the store.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The lease files of one database: `DB.leases/ID.lock`.
#[derive(Debug, Clone)]
pub struct Leases {
    dir: PathBuf,
}

/// A lease this process holds; dropping it (or dying) releases it.
#[derive(Debug)]
pub struct Lease {
    _file: File,
}

/// Why a lease was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    /// A live process holds it; `holder` is what that process wrote when it took it.
    #[error("{holder} holds its execution lease")]
    Held { holder: String },
    #[error("lease file {path}: {why}")]
    Io { path: String, why: String },
}

impl Leases {
    /// The leases of the database at `db`, in a directory beside it.
    pub fn beside(db: &Path) -> Self {
        let mut name = db.file_name().unwrap_or_default().to_os_string();
        name.push(".leases");
        Leases {
            dir: db.with_file_name(name),
        }
    }

    fn path(&self, id: i64) -> PathBuf {
        self.dir.join(format!("{id}.lock"))
    }

    /// Take action `id`'s lease for `holder` (who this process is, as others will be told).
    ///
    /// # Errors
    /// Another live process holds it, or the file cannot be made or locked.
    pub fn take(&self, id: i64, holder: &str) -> Result<Lease, LeaseError> {
        let path = self.path(id);
        let io = |e: std::io::Error| LeaseError::Io {
            path: path.display().to_string(),
            why: e.to_string(),
        };
        self.make_dir().map_err(io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(self.file_mode())
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = text.trim();
                return Err(LeaseError::Held {
                    holder: if holder.is_empty() {
                        "another process".to_string()
                    } else {
                        holder.to_string()
                    },
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        // Written after locking, so whoever finds the lock held reads who holds it.
        file.set_len(0)
            .and_then(|()| file.write_all(holder.as_bytes()))
            .map_err(io)?;
        Ok(Lease { _file: file })
    }

    /// Whether a live process holds action `id`'s lease; `None` when this process cannot tell
    /// (the file exists but cannot be opened).
    pub fn is_held(&self, id: i64) -> Option<bool> {
        let file = match File::open(self.path(id)) {
            Ok(f) => f,
            // Never taken (or taken by a vigil from before leases): nobody holds it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(false),
            Err(_) => return None,
        };
        match file.try_lock_shared() {
            Ok(()) => Some(false),
            Err(TryLockError::WouldBlock) => Some(true),
            Err(TryLockError::Error(_)) => None,
        }
    }

    /// The directory, made with the permissions of the database's own directory: whoever may
    /// write the database may take a lease on its actions.
    fn make_dir(&self) -> std::io::Result<()> {
        if self.dir.is_dir() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.dir)?;
        if let Some(parent) = self.dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            let mode = std::fs::metadata(parent)?.permissions().mode() & 0o7777;
            std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(mode))?;
        }
        Ok(())
    }

    fn file_mode(&self) -> u32 {
        let parent_mode = self
            .dir
            .parent()
            .and_then(|p| std::fs::metadata(p).ok())
            .map(|m| m.permissions().mode())
            .unwrap_or(0o700);
        // Read and write for whoever may enter the directory; the umask still applies.
        let mut mode = 0o600;
        if parent_mode & 0o010 != 0 {
            mode |= 0o060;
        }
        if parent_mode & 0o001 != 0 {
            mode |= 0o006;
        }
        mode
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lease_names_its_holder_and_is_free_once_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let leases = Leases::beside(&dir.path().join("vigil.db"));
        assert_eq!(leases.is_held(7), Some(false));
        let lease = leases.take(7, "alice@soc-1:100").expect("take");
        assert_eq!(leases.is_held(7), Some(true));
        assert_eq!(
            leases.take(7, "bob@soc-2:200").map(|_| ()),
            Err(LeaseError::Held {
                holder: "alice@soc-1:100".into()
            })
        );
        assert_eq!(leases.is_held(8), Some(false), "one lease per action");
        drop(lease);
        assert_eq!(leases.is_held(7), Some(false));
        let again = leases.take(7, "bob@soc-2:200").expect("free again");
        drop(again);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("vigil.db.leases/7.lock")).expect("file"),
            "bob@soc-2:200"
        );
    }
}
