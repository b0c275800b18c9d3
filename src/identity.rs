//! Who is acting: the OS user by uid (never `$USER`, which anyone can set) and the host name.
//! Owns identity lookup only.

use serde::{Deserialize, Serialize};

/// The analyst behind a decision, as the audit trail records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub uid: u32,
    pub name: String,
    pub host: String,
}

impl Actor {
    /// The user running this process, looked up by real uid in the system user database.
    pub fn current() -> Self {
        let uid = nix::unistd::getuid();
        let name = nix::unistd::User::from_uid(uid)
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| format!("uid{}", uid.as_raw()));
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "unknown-host".to_string());
        Actor {
            uid: uid.as_raw(),
            name,
            host,
        }
    }
}
