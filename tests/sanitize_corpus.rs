//! The sanitiser and the JSON writer against corpora checked in beside the tests:
//! `fixtures/unicode/invisible.txt` (every control, format and default-ignorable code point, from
//! the Unicode data by `generate.py`) must never pass through as itself, and
//! `fixtures/unicode/readable.txt` (ordinary text in many scripts) must pass unchanged.

use vigil::sanitize::{json, sanitize};

fn corpus(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/unicode/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("read corpus")
}

/// (code point, why) for every line of the invisible corpus.
fn invisible() -> Vec<(char, String)> {
    corpus("invisible.txt")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (hex, why) = l.split_once(' ').expect("code point then why");
            let cp = u32::from_str_radix(hex, 16).expect("hex code point");
            (char::from_u32(cp).expect("a scalar value"), why.to_string())
        })
        .collect()
}

fn readable() -> Vec<String> {
    corpus("readable.txt")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_corpora_are_the_ones_generated() {
    let all = invisible();
    assert!(all.len() > 4000, "{}", all.len());
    let format_chars = all.iter().filter(|(_, why)| why.starts_with("Cf")).count();
    assert!(format_chars >= 160, "{format_chars}");
    assert!(readable().len() >= 15);
}

#[test]
fn every_invisible_character_is_shown_as_a_visible_escape() {
    for (c, why) in invisible() {
        let s = format!("a{c}b");
        let shown = sanitize(&s);
        let want = if (c as u32) < 0x100 && !matches!(c, '\n' | '\r' | '\t') {
            format!("a\\x{:02x}b", c as u32)
        } else {
            match c {
                '\n' => "a\\nb".to_string(),
                '\r' => "a\\rb".to_string(),
                '\t' => "a\\tb".to_string(),
                _ => format!("a\\u{{{:x}}}b", c as u32),
            }
        };
        assert_eq!(shown, want, "U+{:04X} {why}", c as u32);
    }
}

#[test]
fn every_invisible_character_is_escaped_in_json_and_parses_back() {
    for (c, why) in invisible() {
        let s = format!("a{c}b");
        let text =
            json::to_string(&serde_json::json!({ "k": s, s.clone(): 1 })).expect("serialise");
        assert!(
            text.is_ascii(),
            "U+{:04X} {why} raw in JSON: {text}",
            c as u32
        );
        let back: serde_json::Value = serde_json::from_str(&text).expect("parses");
        assert_eq!(back["k"], s, "U+{:04X} {why}", c as u32);
        assert_eq!(back[&s], 1, "keys too: U+{:04X} {why}", c as u32);
    }
}

#[test]
fn readable_text_in_any_script_passes_unchanged() {
    for line in readable() {
        assert!(
            matches!(sanitize(&line), std::borrow::Cow::Borrowed(_)),
            "changed: {line} -> {}",
            sanitize(&line)
        );
        assert_eq!(
            json::to_string(&line).expect("serialise"),
            serde_json::to_string(&line).expect("serialise"),
            "JSON escapes readable text: {line}"
        );
    }
}

#[test]
fn emoji_joined_by_zwj_show_each_picture_and_the_joiner() {
    // Terminals disagree on the width of a joined emoji, so the joiner is shown, not obeyed.
    assert_eq!(sanitize("👩\u{200d}💻"), "👩\\u{200d}💻");
    assert_eq!(sanitize("👍🏽"), "👍🏽");
}
