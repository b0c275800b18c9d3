//! Small rules every settings type in the engine follows.

/// Treat `""` (or only spaces) as "not set".
pub fn non_empty(s: &str) -> Option<&str> {
    (!s.trim().is_empty()).then_some(s)
}
