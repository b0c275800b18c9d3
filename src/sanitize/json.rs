//! The one way vigil writes JSON. serde_json escapes only what JSON requires (quotes, backslash,
//! below U+0020); this also escapes every character `is_unsafe` names (C1 controls, bidi,
//! zero-width, tag and other format characters) as `\uXXXX`, so the output is safe to show on a
//! terminal and still parses back to the very same strings.

use super::is_unsafe;
use serde::Serialize;
use std::io;

/// serde_json's compact layout with the extra escapes.
struct SafeFormatter;

impl serde_json::ser::Formatter for SafeFormatter {
    /// serde_json hands over runs that need no JSON escape; split out the unsafe characters.
    fn write_string_fragment<W>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()>
    where
        W: ?Sized + io::Write,
    {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if !is_unsafe(c) {
                continue;
            }
            writer.write_all(&fragment.as_bytes()[start..i])?;
            // JSON spells characters above U+FFFF as a UTF-16 surrogate pair.
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                write!(writer, "\\u{unit:04x}")?;
            }
            start = i + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

/// Write `value` as compact JSON.
///
/// # Errors
/// I/O errors, or a value serde cannot serialise (a map with non-string keys).
pub fn to_writer<W: io::Write, T: ?Sized + Serialize>(
    writer: W,
    value: &T,
) -> serde_json::Result<()> {
    let mut ser = serde_json::Serializer::with_formatter(writer, SafeFormatter);
    value.serialize(&mut ser)
}

/// `value` as compact JSON.
///
/// # Errors
/// A value serde cannot serialise (a map with non-string keys).
pub fn to_string<T: ?Sized + Serialize>(value: &T) -> serde_json::Result<String> {
    let mut out = Vec::with_capacity(128);
    to_writer(&mut out, value)?;
    // Only whole UTF-8 strings and ASCII escapes were written.
    String::from_utf8(out).map_err(<serde_json::Error as serde::ser::Error>::custom)
}

/// `value` as one line of JSON followed by a newline.
///
/// # Errors
/// I/O or serialisation errors.
pub fn write_line<W: io::Write, T: ?Sized + Serialize>(mut writer: W, value: &T) -> io::Result<()> {
    to_writer(&mut writer, value)?;
    writer.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::to_string;
    use serde_json::json;

    #[test]
    fn escapes_what_serde_json_leaves_raw() {
        let v = json!({"k\u{202e}": "a\u{85}b\u{200b}c\u{e0041}"});
        assert_eq!(
            to_string(&v).expect("json"),
            r#"{"k\u202e":"a\u0085b\u200bc\udb40\udc41"}"#
        );
    }

    #[test]
    fn keeps_what_serde_json_does() {
        let v = json!({"a": [1, 2.5, null, true], "s": "q\"\\\n\u{1b} é 日本 🚨"});
        assert_eq!(
            to_string(&v).expect("json"),
            serde_json::to_string(&v).expect("json")
        );
    }

    #[test]
    fn parses_back_to_the_same_value() {
        let all: String = (0u32..0x11_0000).filter_map(char::from_u32).collect();
        let text = to_string(&all).expect("json");
        assert!(text.chars().all(|c| !super::super::is_unsafe(c)));
        let back: String = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, all);
    }
}
