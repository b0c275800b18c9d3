//! Makes untrusted alert text safe to show on a terminal. Owns no I/O and no UI types so the
//! engine, exports and the TUI share one definition of "safe".
//!
//! Every character that could move the cursor, reorder text, hide text or smuggle data is shown
//! as a visible escape instead: C0/C1 controls and DEL, bidirectional controls, zero-width and
//! other format characters, Unicode tag characters, and private-use / noncharacters.

use std::borrow::Cow;
use std::fmt::Write;

/// True when `c` must not reach a terminal as itself.
fn is_unsafe(c: char) -> bool {
    let u = c as u32;
    c.is_control()
        || matches!(u,
            0x00AD                 // soft hyphen (invisible)
            | 0x061C               // Arabic letter mark
            | 0x115F | 0x1160 | 0x3164 | 0xFFA0 // Hangul fillers (render blank)
            | 0x180E               // Mongolian vowel separator
            | 0x200B..=0x200F      // zero-width space/joiners, LRM, RLM
            | 0x2028..=0x202E      // line/paragraph separators, bidi embeddings/overrides
            | 0x2060..=0x206F      // word joiner, invisible operators, bidi isolates
            | 0xFE00..=0xFE0F      // variation selectors
            | 0xFEFF               // zero-width no-break space / BOM
            | 0xFFF9..=0xFFFB      // interlinear annotation
            | 0xE0000..=0xE007F    // tag characters
            | 0xE0100..=0xE01EF    // variation selectors supplement
            | 0xE000..=0xF8FF | 0xF0000..=0xFFFFD | 0x100000..=0x10FFFD // private use
        )
        || (u & 0xFFFE) == 0xFFFE
        || (0xFDD0..=0xFDEF).contains(&u)
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
