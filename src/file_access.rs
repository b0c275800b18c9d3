//! Who may read the files vigil creates. Alerts and the audit trail are created readable by
//! their owner only, or by one configured team group: never by every local user.

use std::fs::{OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Who besides the owner may read and write a file vigil creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sharing {
    /// The owner alone (0600).
    #[default]
    Owner,
    /// The owner and this group (0660): a team database.
    Group(u32),
}

impl Sharing {
    /// The sharing `[store] group` asks for: empty means the owner alone.
    ///
    /// # Errors
    /// A group the system does not know, named in the message.
    pub fn from_group_name(name: &str) -> Result<Self, String> {
        let name = name.trim();
        if name.is_empty() {
            return Ok(Sharing::Owner);
        }
        match nix::unistd::Group::from_name(name) {
            Ok(Some(g)) => Ok(Sharing::Group(g.gid.as_raw())),
            Ok(None) => Err(format!("[store] group {name:?}: no such group")),
            Err(e) => Err(format!("[store] group {name:?}: cannot look it up: {e}")),
        }
    }

    fn mode(self) -> u32 {
        match self {
            Sharing::Owner => 0o600,
            Sharing::Group(_) => 0o660,
        }
    }
}

/// Create `path` empty with the access `sharing` gives, unless it exists (an existing file
/// keeps the access its owner chose). SQLite gives a database's `-wal` and `-shm` the mode of
/// the database file, so creating the database this way covers its journals too.
///
/// # Errors
/// The file cannot be created, or its group or mode cannot be set.
pub fn create_if_missing(path: &Path, sharing: Sharing) -> io::Result<()> {
    let file = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(sharing.mode())
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    };
    if let Sharing::Group(gid) = sharing {
        std::os::unix::fs::fchown(&file, None, Some(gid))?;
    }
    // The umask may have taken bits the mode asked for (a team's write bit): set it outright.
    file.set_permissions(Permissions::from_mode(sharing.mode()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_new_file_is_the_owners_alone_and_an_existing_one_is_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let new = dir.path().join("new.db");
        create_if_missing(&new, Sharing::Owner).expect("create");
        assert_eq!(
            std::fs::metadata(&new).expect("meta").permissions().mode() & 0o777,
            0o600
        );
        let old = dir.path().join("old.db");
        std::fs::write(&old, b"kept").expect("old");
        std::fs::set_permissions(&old, Permissions::from_mode(0o640)).expect("chmod");
        create_if_missing(&old, Sharing::Owner).expect("existing");
        let m = std::fs::metadata(&old).expect("meta");
        assert_eq!(m.permissions().mode() & 0o777, 0o640);
        assert_eq!(std::fs::read(&old).expect("read"), b"kept");
    }

    #[test]
    fn a_team_file_is_group_read_write_for_that_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let gid = nix::unistd::getegid().as_raw();
        let team = dir.path().join("team.db");
        create_if_missing(&team, Sharing::Group(gid)).expect("create");
        let m = std::fs::metadata(&team).expect("meta");
        assert_eq!(m.permissions().mode() & 0o777, 0o660);
        assert_eq!(m.gid(), gid);
    }

    #[test]
    fn an_unknown_group_is_named() {
        let e = Sharing::from_group_name("no-such-group-here").expect_err("unknown");
        assert!(e.contains("no-such-group-here"), "{e}");
        assert_eq!(Sharing::from_group_name(" "), Ok(Sharing::Owner));
    }
}
