//! What kind of alert file this is, and how to cut it into records. Owns per-file format
//! detection and framing state (a CSV header, Zeek's `#fields` line); turning one record into an
//! `Alert` is `normalize`'s job, reading the file is the tailer's.

use super::normalize::{normalize_line, Parsed, Reject};
use serde::{Deserialize, Serialize};

/// A producer format. `Auto` detects from the file's first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    #[default]
    Auto,
    /// JSON lines, each detected by shape (Suricata EVE, Wazuh, ...).
    JsonLines,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Format::Auto),
            "json-lines" | "jsonl" | "eve" | "wazuh" => Ok(Format::JsonLines),
            other => Err(format!(
                "unknown format `{other}` (known: auto, json-lines)"
            )),
        }
    }
}

/// Per-file framing state: detected once from the file's head, then used for every line.
#[derive(Debug, Clone, PartialEq)]
pub struct FileFormat {
    pub format: Format,
}

impl FileFormat {
    /// Detect from up to the first 64 KiB of the file (`forced` wins when given and not Auto).
    pub fn detect(_head: &[u8], forced: Format) -> FileFormat {
        let format = match forced {
            Format::Auto => Format::JsonLines,
            f => f,
        };
        FileFormat { format }
    }

    /// True when records are lines and the file can be followed as it grows; false for whole
    /// documents (a pretty-printed JSON array), which are read once they parse completely.
    pub fn is_line_oriented(&self) -> bool {
        true
    }

    /// One line (without its newline) to an alert, a skip (header, comment, non-alert event) or
    /// a reject naming the field.
    ///
    /// # Errors
    /// A `Reject` with a one-line reason.
    pub fn parse_line(&self, line: &[u8]) -> Result<Parsed, Reject> {
        normalize_line(line)
    }

    /// A whole document (only for formats where `is_line_oriented` is false): every record in
    /// it, in order, each with its 1-based record number.
    pub fn parse_document(&self, bytes: &[u8]) -> Vec<(u64, Result<Parsed, Reject>)> {
        vec![(1, self.parse_line(bytes))]
    }
}
