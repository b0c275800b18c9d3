//! Key bindings: the embedded `keymap.toml` with the user's file merged over it per key.
//! Owns parsing, validation and lookup. Every mistake is a start-up error naming the file, the
//! table and the key; the help overlay is generated from the bindings in force.

use super::text_input::Edit;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

const DEFAULT: &str = include_str!("../../keymap.toml");

/// What a key can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    Quit,
    Help,
    FocusNext,
    Next,
    Prev,
    First,
    Last,
    PageDown,
    PageUp,
    Approve,
    Reject,
    Rollback,
    Edit,
    Dispose,
    NextChoice,
    Confirm,
    Cancel,
    ToggleEnrichment,
    /// Scroll an overlay (the help) down or up one line.
    ScrollDown,
    ScrollUp,
    /// A change to the prompt field under the cursor; printable characters no binding claims
    /// arrive as `Text(Edit::Insert(c))`.
    Text(Edit),
}

impl Action {
    pub const ALL: &'static [Action] = &[
        Action::Quit,
        Action::Help,
        Action::FocusNext,
        Action::Next,
        Action::Prev,
        Action::First,
        Action::Last,
        Action::PageDown,
        Action::PageUp,
        Action::Approve,
        Action::Reject,
        Action::Rollback,
        Action::Edit,
        Action::Dispose,
        Action::NextChoice,
        Action::Confirm,
        Action::Cancel,
        Action::ToggleEnrichment,
        Action::ScrollDown,
        Action::ScrollUp,
        Action::Text(Edit::DeleteBack),
        Action::Text(Edit::DeleteForward),
        Action::Text(Edit::Left),
        Action::Text(Edit::Right),
        Action::Text(Edit::Home),
        Action::Text(Edit::End),
        Action::Text(Edit::Clear),
    ];

    pub fn name(self) -> &'static str {
        match self {
            Action::Quit => "quit",
            Action::Help => "help",
            Action::FocusNext => "focus_next",
            Action::Next => "next",
            Action::Prev => "prev",
            Action::First => "first",
            Action::Last => "last",
            Action::PageDown => "page_down",
            Action::PageUp => "page_up",
            Action::Approve => "approve",
            Action::Reject => "reject",
            Action::Rollback => "rollback",
            Action::Edit => "edit",
            Action::Dispose => "disposition",
            Action::NextChoice => "next_choice",
            Action::Confirm => "confirm",
            Action::Cancel => "cancel",
            Action::ToggleEnrichment => "enrichment",
            Action::ScrollDown => "scroll_down",
            Action::ScrollUp => "scroll_up",
            Action::Text(Edit::Insert(_)) => "insert",
            Action::Text(Edit::DeleteBack) => "delete_back",
            Action::Text(Edit::DeleteForward) => "delete_forward",
            Action::Text(Edit::Left) => "cursor_left",
            Action::Text(Edit::Right) => "cursor_right",
            Action::Text(Edit::Home) => "line_start",
            Action::Text(Edit::End) => "line_end",
            Action::Text(Edit::Clear) => "clear_field",
        }
    }

    /// One line for the help overlay; short enough to read whole beside its keys at 80 columns.
    pub fn describe(self) -> &'static str {
        match self {
            Action::Quit => "quit vigil",
            Action::Help => "show this help",
            Action::FocusNext => "switch between queue and actions",
            Action::Next => "next row",
            Action::Prev => "previous row",
            Action::First => "first row",
            Action::Last => "last row",
            Action::PageDown => "page down",
            Action::PageUp => "page up",
            Action::Approve => "approve the selected action (asks for a reason)",
            Action::Reject => "reject the selected action (asks for a reason)",
            Action::Rollback => "run the action's rollback call (asks for a reason)",
            Action::Edit => "edit params, then approve the action (asks a reason)",
            Action::Dispose => "record a verdict on the alert: tp/fp/benign, with a reason",
            Action::NextChoice => "next verdict (tp, fp, benign) / next field",
            Action::Confirm => "confirm",
            Action::Cancel => "cancel / close",
            Action::ToggleEnrichment => "switch the detail pane: alert / enrichment",
            Action::ScrollDown => "scroll down",
            Action::ScrollUp => "scroll up",
            Action::Text(Edit::Insert(_)) => "type text",
            Action::Text(Edit::DeleteBack) => "delete the character before the cursor",
            Action::Text(Edit::DeleteForward) => "delete the character under the cursor",
            Action::Text(Edit::Left) => "cursor left",
            Action::Text(Edit::Right) => "cursor right",
            Action::Text(Edit::Home) => "cursor to the start of the field",
            Action::Text(Edit::End) => "cursor to the end of the field",
            Action::Text(Edit::Clear) => "clear the field",
        }
    }

    fn parse(s: &str) -> Option<Action> {
        Action::ALL.iter().copied().find(|a| a.name() == s)
    }
}

/// The tables a keymap may have, in help order.
pub const TABLES: &[&str] = &["global", "queue", "actions", "prompt", "help"];

/// A key with modifiers, normalised so that `G` and `shift-g` are the same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub code: KeyCode,
    pub mods: KeyModifiers,
}

impl Key {
    fn normalised(code: KeyCode, mods: KeyModifiers) -> Key {
        match code {
            // The character already carries the shift.
            KeyCode::Char(c) => {
                let m = mods - KeyModifiers::SHIFT;
                let c = if mods.contains(KeyModifiers::SHIFT) && c.is_ascii_lowercase() {
                    c.to_ascii_uppercase()
                } else {
                    c
                };
                Key {
                    code: KeyCode::Char(c),
                    mods: m,
                }
            }
            KeyCode::BackTab => Key {
                code,
                mods: mods - KeyModifiers::SHIFT,
            },
            _ => Key { code, mods },
        }
    }

    pub fn from_event(ev: &KeyEvent) -> Key {
        Key::normalised(ev.code, ev.modifiers)
    }

    /// Parse `ctrl-c`, `G`, `pagedown`, `f5`, `?`.
    ///
    /// # Errors
    /// A short reason when the text names no key.
    pub fn parse(s: &str) -> Result<Key, String> {
        if s.is_empty() {
            return Err("empty key".into());
        }
        let mut mods = KeyModifiers::NONE;
        let mut rest = s;
        loop {
            let lower = rest.to_ascii_lowercase();
            let (m, len) = if lower.starts_with("ctrl-") {
                (KeyModifiers::CONTROL, 5)
            } else if lower.starts_with("alt-") {
                (KeyModifiers::ALT, 4)
            } else if lower.starts_with("shift-") {
                (KeyModifiers::SHIFT, 6)
            } else {
                break;
            };
            if rest.len() == len {
                break;
            }
            mods |= m;
            rest = &rest[len..];
        }
        let mut chars = rest.chars();
        let code = match (chars.next(), chars.next()) {
            (Some(c), None) => KeyCode::Char(c),
            _ => match rest.to_ascii_lowercase().as_str() {
                "enter" | "return" => KeyCode::Enter,
                "esc" | "escape" => KeyCode::Esc,
                "tab" => KeyCode::Tab,
                "backtab" => KeyCode::BackTab,
                "up" => KeyCode::Up,
                "down" => KeyCode::Down,
                "left" => KeyCode::Left,
                "right" => KeyCode::Right,
                "home" => KeyCode::Home,
                "end" => KeyCode::End,
                "pageup" => KeyCode::PageUp,
                "pagedown" => KeyCode::PageDown,
                "space" => KeyCode::Char(' '),
                "backspace" => KeyCode::Backspace,
                "delete" | "del" => KeyCode::Delete,
                "insert" => KeyCode::Insert,
                f if f.starts_with('f') => match f[1..].parse::<u8>() {
                    Ok(n @ 1..=12) => KeyCode::F(n),
                    _ => return Err(format!("no key named {f:?}")),
                },
                other => return Err(format!("no key named {other:?}")),
            },
        };
        Ok(Key::normalised(code, mods))
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mods.contains(KeyModifiers::CONTROL) {
            f.write_str("ctrl-")?;
        }
        if self.mods.contains(KeyModifiers::ALT) {
            f.write_str("alt-")?;
        }
        if self.mods.contains(KeyModifiers::SHIFT) {
            f.write_str("shift-")?;
        }
        match self.code {
            KeyCode::Char(' ') => f.write_str("space"),
            KeyCode::Char(c) => write!(f, "{c}"),
            KeyCode::F(n) => write!(f, "f{n}"),
            KeyCode::PageUp => f.write_str("pageup"),
            KeyCode::PageDown => f.write_str("pagedown"),
            KeyCode::BackTab => f.write_str("backtab"),
            other => write!(f, "{}", format!("{other:?}").to_lowercase()),
        }
    }
}

/// A keymap problem, one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeymapError(pub String);

/// The bindings in force: per table, key → action.
#[derive(Debug, Clone)]
pub struct Keymap {
    tables: BTreeMap<String, HashMap<Key, Action>>,
}

/// One table of one file, parsed and checked, with `None` for "noop" (unbind).
fn parse_file(
    text: &str,
    file: &str,
) -> Result<BTreeMap<String, HashMap<Key, Option<Action>>>, KeymapError> {
    let doc: toml::Table = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| {
                format!(
                    ":{}",
                    text[..s.start.min(text.len())].lines().count().max(1)
                )
            })
            .unwrap_or_default();
        KeymapError(format!("{file}{line}: {}", e.message().trim()))
    })?;
    let mut out = BTreeMap::new();
    for (table, v) in doc {
        if !TABLES.contains(&table.as_str()) {
            return Err(KeymapError(format!(
                "{file}: unknown table [{table}] (known: {})",
                TABLES.join(", ")
            )));
        }
        let toml::Value::Table(entries) = v else {
            return Err(KeymapError(format!(
                "{file}: [{table}] must be a table of key = \"action\""
            )));
        };
        let mut keys: HashMap<Key, Option<Action>> = HashMap::new();
        let mut names: HashMap<Key, String> = HashMap::new();
        for (k, a) in entries {
            let at = format!("{file}: [{table}] key \"{k}\"");
            let key = Key::parse(&k)
                .map_err(|why| KeymapError(format!("{at}: unparsable key: {why}")))?;
            let toml::Value::String(a) = a else {
                return Err(KeymapError(format!("{at}: the action must be a string")));
            };
            let action = if a == "noop" {
                None
            } else {
                Some(Action::parse(&a).ok_or_else(|| {
                    KeymapError(format!(
                        "{at}: unknown action \"{a}\" (known: noop, {})",
                        Action::ALL
                            .iter()
                            .map(|a| a.name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?)
            };
            if let Some(other) = names.get(&key) {
                return Err(KeymapError(format!(
                    "{at}: duplicate binding (same key as \"{other}\")"
                )));
            }
            names.insert(key, k.clone());
            keys.insert(key, action);
        }
        out.insert(table, keys);
    }
    Ok(out)
}

impl Keymap {
    /// The embedded default keymap with `user` (name and text) merged over it.
    ///
    /// # Errors
    /// Any problem in either file.
    pub fn from_texts(user: Option<(&str, &str)>) -> Result<Keymap, KeymapError> {
        let mut tables: BTreeMap<String, HashMap<Key, Action>> = BTreeMap::new();
        let mut layers = vec![parse_file(DEFAULT, "keymap.toml (built in)")?];
        if let Some((name, text)) = user {
            layers.push(parse_file(text, name)?);
        }
        for layer in layers {
            for (table, keys) in layer {
                let t = tables.entry(table).or_default();
                for (k, a) in keys {
                    match a {
                        Some(a) => t.insert(k, a),
                        None => t.remove(&k),
                    };
                }
            }
        }
        Ok(Keymap { tables })
    }

    /// Load the user's keymap file if it exists.
    ///
    /// # Errors
    /// An unreadable or invalid file.
    pub fn load(path: &Path) -> Result<Keymap, KeymapError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Keymap::from_texts(Some((&path.display().to_string(), &text))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Keymap::from_texts(None),
            Err(e) => Err(KeymapError(format!("{}: cannot read: {e}", path.display()))),
        }
    }

    /// The action for a key in `table`, falling back to `[global]` (except in the prompt,
    /// where unbound keys are text).
    pub fn lookup(&self, table: &str, key: Key) -> Option<Action> {
        if let Some(a) = self.tables.get(table).and_then(|t| t.get(&key)) {
            return Some(*a);
        }
        if table == "prompt" || table == "help" {
            return None;
        }
        self.tables.get("global").and_then(|t| t.get(&key)).copied()
    }

    /// `(table, keys, action)` for the help overlay: keys bound to the same action in one table
    /// are listed together.
    pub fn help_lines(&self) -> Vec<(String, String, Action)> {
        let mut out = Vec::new();
        for table in TABLES {
            let Some(t) = self.tables.get(*table) else {
                continue;
            };
            let mut by_action: BTreeMap<Action, Vec<String>> = BTreeMap::new();
            for (k, a) in t {
                by_action.entry(*a).or_default().push(k.to_string());
            }
            for (a, mut keys) in by_action {
                keys.sort();
                out.push((table.to_string(), keys.join(" "), a));
            }
        }
        out
    }

    /// The first key bound to `action` in `table` (for hints in titles).
    pub fn key_for(&self, table: &str, action: Action) -> Option<String> {
        [table, "global"]
            .iter()
            .filter_map(|t| self.tables.get(*t))
            .find_map(|t| {
                t.iter()
                    .filter(|(_, a)| **a == action)
                    .map(|(k, _)| k.to_string())
                    .min_by_key(|k| (k.len(), k.clone()))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifted_letters_are_one_key() {
        assert_eq!(Key::parse("G"), Key::parse("shift-g"));
        let ev = KeyEvent::new(KeyCode::Char('G'), KeyModifiers::SHIFT);
        assert_eq!(Key::from_event(&ev), Key::parse("G").expect("key"));
        assert_eq!(Key::parse("ctrl-c").expect("key").to_string(), "ctrl-c");
    }
}
