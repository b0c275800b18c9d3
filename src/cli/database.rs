//! The case database as the command line meets it: created with the access the config asks
//! for, refused for writing when it fails its integrity check, and opened for review read-only.

use super::{Failure, Setup};
use crate::engine::store;
use anyhow::anyhow;
use std::path::Path;
use std::process::ExitCode;

impl Setup {
    /// Create the database file, if it is new, readable by its owner alone or by the configured
    /// team group, before SQLite opens it (its `-wal` and `-shm` then get the same mode).
    ///
    /// # Errors
    /// The file cannot be created or given its group (named in the message).
    pub fn create_db(&self) -> Result<(), Failure> {
        if let Some(dir) = self.db.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| Failure::Runtime(anyhow!("{}: {e}", dir.display())))?;
        }
        crate::file_access::create_if_missing(&self.db, self.sharing)
            .map_err(|e| Failure::Runtime(anyhow!("{}: cannot create: {e}", self.db.display())))
    }

    /// Refuse to write into an existing database that fails SQLite's integrity check: writing
    /// into a damaged file spreads the damage.
    ///
    /// # Errors
    /// The check's first finding, with the database named.
    pub fn refuse_damaged_db(&self) -> Result<(), Failure> {
        let empty = std::fs::metadata(&self.db).map_or(true, |m| m.len() == 0);
        if empty {
            return Ok(());
        }
        let problem = match store::open_read_only(&self.db) {
            Ok(conn) => store::integrity_problem(&conn),
            Err(e) => Some(e.to_string()),
        };
        match problem {
            None => Ok(()),
            Some(p) => Err(Failure::Runtime(anyhow!(
                "{}: fails its integrity check ({p}); not writing into it",
                self.db.display()
            ))),
        }
    }
}

/// `vigil review PATH`: the whole TUI over a saved case, read-only.
#[cfg(feature = "tui")]
pub(super) fn review(setup: &Setup, path: &Path) -> Result<ExitCode, Failure> {
    if !path.is_file() {
        return Err(Failure::Usage(format!(
            "{}: no such database",
            path.display()
        )));
    }
    let keymap = crate::tui::keymap::Keymap::load(&setup.paths.keymap_file())
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let rt = super::runtime()?;
    let session = crate::tui::Session::Review;
    rt.block_on(crate::tui::run(session, keymap, path.to_path_buf()))
        .map_err(|e| anyhow!("{}: {e:#}", path.display()))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "tui"))]
pub(super) fn review(_setup: &Setup, _path: &Path) -> Result<ExitCode, Failure> {
    Err(Failure::Usage(
        "this vigil was built without the `tui` feature; use export, audit or actions to read a case".into(),
    ))
}
