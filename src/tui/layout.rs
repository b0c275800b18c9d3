//! Where things go on the screen, as numbers both the app (scrolling, paging) and the view
//! (drawing) need: the smallest usable terminal, how many queue rows fit, and the rows of the
//! help overlay.

use super::keymap::{Action, Keymap};

/// Smallest terminal vigil draws in.
pub const MIN_WIDTH: u16 = 40;
pub const MIN_HEIGHT: u16 = 10;

/// Below this the queue takes the whole body and the detail panes are not drawn.
pub fn compact(width: u16, height: u16) -> bool {
    width < 70 || height < 18
}

/// Height of the queue area (header row included).
pub fn queue_height(width: u16, height: u16) -> u16 {
    let body = height.saturating_sub(2);
    if compact(width, height) {
        body
    } else {
        body / 2
    }
}

/// Alert rows visible in the queue at this terminal size.
pub fn queue_rows(width: u16, height: u16) -> u16 {
    queue_height(width, height).saturating_sub(1).max(1)
}

/// One row of the help overlay.
pub enum HelpRow {
    /// A keymap table's name, above its keys.
    Table(String),
    /// The keys bound to an action in that table.
    Keys(String, Action),
}

/// The help overlay's rows: a heading per keymap table, then its keys and what they do.
pub fn help_rows(keymap: &Keymap) -> Vec<HelpRow> {
    let mut rows = Vec::new();
    let mut table_now = String::new();
    for (table, keys, action) in keymap.help_lines() {
        if table != table_now {
            rows.push(HelpRow::Table(table.clone()));
            table_now = table;
        }
        rows.push(HelpRow::Keys(keys, action));
    }
    rows
}

/// How many lines the help overlay has (for scrolling).
pub fn help_line_count(keymap: &Keymap) -> u16 {
    u16::try_from(help_rows(keymap).len()).unwrap_or(u16::MAX)
}
