//! Where vigil keeps its files. Owns path resolution only; creates directories but never opens
//! the files in them.

use std::path::{Path, PathBuf};

/// The directories vigil reads and writes, resolved once at start-up so every part of the
/// program (and `--version`) agrees on them.
#[derive(Debug, Clone)]
pub struct Paths {
    pub config_dir: PathBuf,
    pub data_dir: PathBuf,
    pub cache_dir: PathBuf,
}

impl Paths {
    /// Resolve from the platform conventions (XDG on Linux), with `VIGIL_CONFIG`, `VIGIL_DATA`
    /// and `VIGIL_CACHE` overriding each directory so tests and shared jump hosts can relocate
    /// them.
    pub fn resolve() -> Self {
        let dirs = directories::ProjectDirs::from("", "", "vigil");
        let fallback = || PathBuf::from(".vigil");
        let pick = |var: &str, f: fn(&directories::ProjectDirs) -> &Path| -> PathBuf {
            match std::env::var_os(var) {
                Some(v) if !v.is_empty() => PathBuf::from(v),
                _ => dirs
                    .as_ref()
                    .map(|d| f(d).to_path_buf())
                    .unwrap_or_else(fallback),
            }
        };
        Paths {
            config_dir: pick("VIGIL_CONFIG", |d| d.config_dir()),
            data_dir: pick("VIGIL_DATA", |d| d.data_local_dir()),
            cache_dir: pick("VIGIL_CACHE", |d| d.cache_dir()),
        }
    }

    pub fn config_file(&self) -> PathBuf {
        self.config_dir.join("config.toml")
    }
    pub fn keymap_file(&self) -> PathBuf {
        self.config_dir.join("keymap.toml")
    }
    pub fn default_db(&self) -> PathBuf {
        self.data_dir.join("vigil.db")
    }
    pub fn log_file(&self) -> PathBuf {
        self.data_dir.join("vigil.log")
    }
    pub fn default_blocklist(&self) -> PathBuf {
        self.data_dir.join("blocklist.txt")
    }

    /// Create the data directory (the only one vigil must write to before doing anything else).
    ///
    /// # Errors
    /// When the directory cannot be created.
    pub fn ensure_data_dir(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.data_dir)
    }
}

/// The samples shipped with the repository: `./samples` when run from a checkout, otherwise the
/// checkout the binary was built from. This is what makes `cargo run` work with no config.
pub fn shipped_samples() -> PathBuf {
    let here = PathBuf::from("samples");
    if here.is_dir() {
        return here;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("samples")
}
