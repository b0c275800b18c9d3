//! API keys for online providers: from the environment (`VIGIL_<PROVIDER>_KEY`) or a secrets
//! file that only its owner can read. Owns loading and the permission check. A key never
//! reaches a log, the audit trail, an export or a `Debug` print: `Secret` hides it everywhere
//! but in the one request header it is meant for.

use std::collections::HashMap;
use std::path::Path;

/// An API key. `Debug` and `Display` print `***`; there is no `Serialize`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The key itself, for the request header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Keys by provider name.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    keys: HashMap<String, Secret>,
}

/// The environment variable that carries a provider's key.
pub fn env_var(provider: &str) -> String {
    format!("VIGIL_{}_KEY", provider.to_ascii_uppercase())
}

impl Secrets {
    /// The key for `provider`: the environment first, then the file.
    pub fn get(&self, provider: &str) -> Option<Secret> {
        match std::env::var(env_var(provider)) {
            Ok(v) if !v.trim().is_empty() => Some(Secret::new(v.trim())),
            _ => self.keys.get(provider).cloned(),
        }
    }

    /// Keys from a TOML file of `provider = "key"` lines (missing file: no keys).
    ///
    /// # Errors
    /// The file is readable by others than its owner, belongs to another user, is not a
    /// regular file, or is not valid TOML: one line naming the file and what to do.
    pub fn load(path: &Path) -> Result<Self, String> {
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Secrets::default()),
            Err(e) => return Err(format!("{}: cannot read: {e}", path.display())),
        };
        check_private(path, &meta)?;
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| {
            // Never echo the file's content: the message could quote a key.
            format!(
                "{}: not valid TOML ({} error)",
                path.display(),
                if e.span().is_some() {
                    "syntax"
                } else {
                    "format"
                }
            )
        })?;
        let mut keys = HashMap::new();
        for (k, v) in table {
            match v {
                toml::Value::String(s) if !s.trim().is_empty() => {
                    keys.insert(k, Secret::new(s.trim()));
                }
                toml::Value::String(_) => {}
                _ => {
                    return Err(format!(
                        "{}: `{k}` must be a string (the API key)",
                        path.display()
                    ))
                }
            }
        }
        Ok(Secrets { keys })
    }

    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Secrets {
            keys: pairs
                .iter()
                .map(|(p, k)| (p.to_string(), Secret::new(*k)))
                .collect(),
        }
    }
}

#[cfg(unix)]
fn check_private(path: &Path, meta: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    if !meta.is_file() {
        return Err(format!(
            "{}: not a regular file; refusing to read API keys from it",
            path.display()
        ));
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(format!(
            "{}: owned by uid {}, not by you (uid {me}); refusing to read API keys from it",
            path.display(),
            meta.uid()
        ));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{}: mode {mode:04o} lets other users read the API keys; run `chmod 600 {}`",
            path.display(),
            path.display()
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path, _meta: &std::fs::Metadata) -> Result<(), String> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn loose_files_are_refused_with_the_fix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("secrets.toml");
        std::fs::write(&f, "virustotal = \"vt-key-123\"\n").expect("write");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = Secrets::load(&f).expect_err("0644 refused");
        assert_eq!(
            e,
            format!(
                "{}: mode 0644 lets other users read the API keys; run `chmod 600 {}`",
                f.display(),
                f.display()
            )
        );
        assert!(!e.contains("vt-key-123"));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let s = Secrets::load(&f).expect("0600 accepted");
        assert_eq!(
            s.keys.get("virustotal").map(Secret::expose),
            Some("vt-key-123")
        );
        assert!(!format!("{s:?}").contains("vt-key-123"), "Debug hides keys");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o400)).expect("chmod");
        assert!(Secrets::load(&f).is_ok(), "read-only for the owner is fine");
    }

    #[test]
    fn a_file_owned_by_someone_else_is_refused() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED: changing a file's owner needs root");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("secrets.toml");
        std::fs::write(&f, "otx = \"k\"\n").expect("write");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        std::os::unix::fs::chown(&f, Some(65534), None).expect("chown");
        let e = Secrets::load(&f).expect_err("foreign owner");
        assert!(e.contains("owned by uid 65534, not by you"), "{e}");
    }

    #[test]
    fn missing_file_means_no_keys_and_bad_toml_never_echoes() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(Secrets::load(&dir.path().join("none.toml"))
            .expect("ok")
            .keys
            .is_empty());
        let f = dir.path().join("secrets.toml");
        std::fs::write(&f, "otx = \"abc-secret\n").expect("write");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let e = Secrets::load(&f).expect_err("syntax");
        assert!(!e.contains("abc-secret"), "{e}");
        let d = dir.path().join("dir.toml");
        std::fs::create_dir(&d).expect("mkdir");
        assert!(Secrets::load(&d)
            .expect_err("dir")
            .contains("not a regular file"));
    }
}
