//! Makes untrusted alert text safe to show on a terminal. Owns no I/O and no UI types so the
//! engine, exports and the TUI share one definition of "safe"; `json` writes JSON that is safe
//! by the same definition.
//!
//! Every character that could move the cursor, reorder text, hide text or smuggle data is shown
//! as a visible escape instead: controls (C0, C1, DEL), format characters (the whole Unicode Cf
//! category: bidirectional controls, zero-width characters, tag characters, prepended marks such
//! as U+0600), line and paragraph separators, every Default_Ignorable_Code_Point (U+034F,
//! the Hangul fillers, variation selectors), the Braille blank, private use, unassigned code
//! points and noncharacters.
//!
//! The zero-width joiner is escaped even between emoji: terminals disagree on how wide a joined
//! emoji is, so obeying it tears the row, while `👩\u{200d}💻` still shows both pictures.
//! Spaces of other widths (U+00A0, U+3000) are kept: they show as the blank they are.

pub mod json;

use icu_properties::props::{DefaultIgnorableCodePoint, GeneralCategory};
use icu_properties::{CodePointMapData, CodePointSetData};
use std::borrow::Cow;
use std::fmt::Write;

/// True when `c` must not reach a terminal, or a JSON output, as itself.
pub fn is_unsafe(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_control();
    }
    let category = CodePointMapData::<GeneralCategory>::new().get(c);
    matches!(
        category,
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
            | GeneralCategory::PrivateUse
            | GeneralCategory::Surrogate
            // No agreed glyph or width yet; noncharacters are in here too.
            | GeneralCategory::Unassigned
    ) || CodePointSetData::new::<DefaultIgnorableCodePoint>().contains(c)
        // A pattern with no dots: looks like an empty field that is not.
        || c == '\u{2800}'
}

/// Return `s` with every unsafe character replaced by a visible escape (`\n`, `\t`, `\x1b`,
/// `\u{202e}`). Borrowed when nothing needed escaping, which is the common case.
pub fn sanitize(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if !is_unsafe(c) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::sanitize;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        let s = "ET TROJAN Possible Zeus GameOver 10.0.0.1 → 8.8.8.8 ünïcode 日本";
        assert!(matches!(sanitize(s), std::borrow::Cow::Borrowed(_)));
        assert_eq!(sanitize(s), s);
    }

    #[test]
    fn escapes_terminal_controls() {
        assert_eq!(sanitize("a\x1b[2Jb"), "a\\x1b[2Jb");
        assert_eq!(sanitize("l1\nl2\r\t"), "l1\\nl2\\r\\t");
        assert_eq!(sanitize("\u{9b}31m"), "\\x9b31m");
        assert_eq!(sanitize("\x7f"), "\\x7f");
    }

    #[test]
    fn escapes_bidi_zero_width_and_tags() {
        assert_eq!(sanitize("evil\u{202e}gpj.exe"), "evil\\u{202e}gpj.exe");
        assert_eq!(sanitize("a\u{200b}b\u{2066}c"), "a\\u{200b}b\\u{2066}c");
        assert_eq!(sanitize("x\u{e0041}"), "x\\u{e0041}");
        assert_eq!(sanitize("\u{feff}bom"), "\\u{feff}bom");
    }

    #[test]
    fn output_never_contains_unsafe_characters() {
        let all: String = (0u32..0x11_0000).filter_map(char::from_u32).collect();
        let out = sanitize(&all);
        assert!(out.chars().all(|c| !super::is_unsafe(c)));
    }
}
