//! Zeek's TSV log framing: the `#separator`, `#set_separator`, `#empty_field`,
//! `#unset_field`, `#path`, `#fields` and `#types` header, and turning one row into the same
//! flat JSON object Zeek's JSON writer would have written (so one normaliser reads both).

use serde_json::{Map, Value};

/// A Zeek TSV header, read from the top of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct ZeekHeader {
    pub separator: u8,
    pub set_separator: String,
    pub empty_field: String,
    pub unset_field: String,
    pub path: Option<String>,
    pub fields: Vec<String>,
    pub types: Vec<String>,
}

impl ZeekHeader {
    /// True when the log can hold alerts (a notice log: it has a `note` field).
    pub fn has_notes(&self) -> bool {
        self.fields.iter().any(|f| f == "note")
    }

    /// Read the header from the leading `#` lines of `head`; `None` without a `#fields` line.
    pub fn parse(head: &[u8]) -> Option<ZeekHeader> {
        let mut h = ZeekHeader {
            separator: b'\t',
            set_separator: ",".into(),
            empty_field: "(empty)".into(),
            unset_field: "-".into(),
            path: None,
            fields: Vec::new(),
            types: Vec::new(),
        };
        let text = String::from_utf8_lossy(head);
        for line in text.split('\n') {
            let line = line.trim_end_matches('\r');
            if line.is_empty() {
                continue;
            }
            if !line.starts_with('#') {
                break;
            }
            if let Some(v) = line.strip_prefix("#separator ") {
                let bytes = unescape(v.trim());
                if let [b] = bytes[..] {
                    h.separator = b;
                }
                continue;
            }
            let sep = h.separator as char;
            let Some((key, rest)) = line.split_once(sep) else {
                continue;
            };
            let values = || rest.split(sep).map(str::to_string).collect::<Vec<_>>();
            match key {
                "#set_separator" => h.set_separator = rest.to_string(),
                "#empty_field" => h.empty_field = rest.to_string(),
                "#unset_field" => h.unset_field = rest.to_string(),
                "#path" => h.path = Some(rest.to_string()),
                "#fields" => h.fields = values(),
                "#types" => h.types = values(),
                _ => {}
            }
        }
        (!h.fields.is_empty()).then_some(h)
    }

    /// One data row to a flat JSON object: unset fields absent, sets and vectors as lists,
    /// values unescaped. Returns the column count on a mismatch.
    pub fn row(&self, line: &str) -> Result<Value, usize> {
        let cells: Vec<&str> = line.split(self.separator as char).collect();
        if cells.len() != self.fields.len() {
            return Err(cells.len());
        }
        let mut m = Map::with_capacity(cells.len());
        for (i, (name, cell)) in self.fields.iter().zip(&cells).enumerate() {
            if *cell == self.unset_field {
                continue;
            }
            let ty = self.types.get(i).map(String::as_str).unwrap_or("string");
            let is_list = ty.starts_with("set[") || ty.starts_with("vector[");
            let v = if is_list {
                if *cell == self.empty_field {
                    Value::Array(Vec::new())
                } else {
                    Value::Array(
                        cell.split(self.set_separator.as_str())
                            .map(|s| Value::String(text(s)))
                            .collect(),
                    )
                }
            } else if *cell == self.empty_field {
                Value::String(String::new())
            } else {
                Value::String(text(cell))
            };
            m.insert(name.clone(), v);
        }
        Ok(Value::Object(m))
    }
}

/// Zeek escapes the separator and unprintable bytes as `\xNN` and a backslash as `\\`.
fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            if b.get(i + 1) == Some(&b'\\') {
                out.push(b'\\');
                i += 2;
                continue;
            }
            if b.get(i + 1) == Some(&b'x') {
                if let Some(n) = b
                    .get(i + 2..i + 4)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    out.push(n);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// An unescaped value as text: Zeek escapes bytes that are not UTF-8, so a value may decode
/// to them; they show as U+FFFD while the original line keeps them exactly.
fn text(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    String::from_utf8_lossy(&unescape(s)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tnotice\n#fields\tts\tuid\tmsg\tactions\temail_dest\n#types\ttime\tstring\tstring\tset[enum]\tset[string]\n";

    #[test]
    fn header_and_row_follow_the_declared_separators() {
        let h = ZeekHeader::parse(HEAD.as_bytes()).expect("header");
        assert_eq!(h.path.as_deref(), Some("notice"));
        assert!(!h.has_notes(), "no `note` field in this header");
        let row = h
            .row("1521911720.629574\t-\ta\\x09b \\\\ c\tNotice::ACTION_LOG,Notice::ACTION_EMAIL\t(empty)")
            .expect("row");
        assert_eq!(
            row,
            serde_json::json!({"ts": "1521911720.629574", "msg": "a\tb \\ c",
                "actions": ["Notice::ACTION_LOG", "Notice::ACTION_EMAIL"], "email_dest": []})
        );
        assert_eq!(h.row("1\t2"), Err(2));
    }
}
