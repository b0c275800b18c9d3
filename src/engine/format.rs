//! What kind of alert file this is, and how to cut it into records. Owns per-file format
//! detection, framing state (a CSV header, Zeek's `#fields` line), the size, nesting and UTF-8
//! limits every record passes first, and the `[ingest]` settings; turning one record into an
//! `Alert` is `normalize`'s job, reading the file is the tailer's.

mod document;
mod settings;
mod table;
mod tsv;

pub use settings::{CsvConfig, FormatSettings, IngestConfig, MappingConfig};

use super::normalize::{
    normalize_cef, normalize_json, normalize_zeek, JsonProducer, Parsed, Reject,
};
use super::pipeline::RawLine;
use super::reader::AlertFile;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use table::CsvHeader;
use tsv::ZeekHeader;

/// How much of a file's head detection looks at.
pub const HEAD_BYTES: usize = 64 * 1024;

/// A producer format. `Auto` detects from the file's first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    #[default]
    Auto,
    /// JSON lines, each recognised by its shape (Suricata EVE, Wazuh, Zeek, ECS, GuardDuty,
    /// Security Hub, a configured mapping); a CEF line among them is read as CEF.
    JsonLines,
    /// One JSON document (a pretty-printed array, a `findings` list, a search response)
    /// holding any number of records, each recognised by its shape.
    JsonDocument,
    Suricata,
    Wazuh,
    /// Zeek logs: TSV with its `#fields` header, or JSON lines.
    Zeek,
    /// Zeek TSV; without a `#fields` header every line is refused.
    ZeekTsv,
    /// ECS documents and Elastic Security alerts.
    Ecs,
    #[serde(rename = "guardduty")]
    GuardDuty,
    /// AWS Security Hub findings (ASFF).
    SecurityHub,
    Cef,
    /// CSV with a header row, columns mapped by `[ingest.csv]`.
    Csv,
}

impl Format {
    const NAMES: &'static str = "auto, json-lines, json-document, suricata, wazuh, zeek, zeek-tsv, ecs, guardduty, security-hub, cef, csv";

    /// The name `--format` takes and summaries print.
    pub fn name(self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::JsonLines => "json-lines",
            Format::JsonDocument => "json-document",
            Format::Suricata => "suricata",
            Format::Wazuh => "wazuh",
            Format::Zeek => "zeek",
            Format::ZeekTsv => "zeek-tsv",
            Format::Ecs => "ecs",
            Format::GuardDuty => "guardduty",
            Format::SecurityHub => "security-hub",
            Format::Cef => "cef",
            Format::Csv => "csv",
        }
    }

    fn producer(self) -> JsonProducer {
        match self {
            Format::Suricata => JsonProducer::Suricata,
            Format::Wazuh => JsonProducer::Wazuh,
            Format::Zeek | Format::ZeekTsv => JsonProducer::Zeek,
            Format::Ecs => JsonProducer::Ecs,
            Format::GuardDuty => JsonProducer::GuardDuty,
            Format::SecurityHub => JsonProducer::SecurityHub,
            _ => JsonProducer::Any,
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "auto" => Format::Auto,
            "json-lines" | "jsonl" | "json" => Format::JsonLines,
            "json-document" | "json-array" => Format::JsonDocument,
            "suricata" | "eve" => Format::Suricata,
            "wazuh" => Format::Wazuh,
            "zeek" | "zeek-json" => Format::Zeek,
            "zeek-tsv" => Format::ZeekTsv,
            "ecs" | "elastic" => Format::Ecs,
            "guardduty" => Format::GuardDuty,
            "security-hub" | "securityhub" | "asff" => Format::SecurityHub,
            "cef" => Format::Cef,
            "csv" => Format::Csv,
            other => {
                return Err(format!(
                    "unknown format `{other}` (known: {})",
                    Format::NAMES
                ))
            }
        })
    }
}

/// How records are cut out of the file.
#[derive(Debug, Clone, PartialEq)]
enum Framing {
    JsonLines(JsonProducer),
    JsonDocument(JsonProducer),
    ZeekTsv(Arc<ZeekHeader>),
    Csv(Arc<CsvHeader>),
    Cef,
    /// A forced format whose header is not in the file: every line is refused with this.
    Unreadable(String),
}

/// Per-file framing state: detected once from the file's head, then used for every line.
#[derive(Debug, Clone, PartialEq)]
pub struct FileFormat {
    /// What was detected (or forced): `json-lines`, `zeek-tsv`, `csv`, ...
    pub format: Format,
    framing: Framing,
    settings: Arc<FormatSettings>,
    provisional: bool,
    /// Why auto-detection fell back to JSON lines, added to the reason a non-JSON line is
    /// refused (a CSV header whose columns map to nothing, say).
    hint: Option<Arc<str>>,
}

/// One record of a whole document, where it sits in the file, and what it became.
#[derive(Debug)]
pub struct DocumentRecord {
    /// 1-based record number in the document.
    pub record: u64,
    /// 1-based line the record starts on.
    pub line_no: u64,
    pub byte_offset: u64,
    /// The record's bytes within the document (for quarantine).
    pub span: std::ops::Range<usize>,
    pub parsed: Result<Parsed, Reject>,
}

/// The first line of `head` that is not blank (nor a `#` comment when `skip_comments`), without
/// its line ending, whether a newline ended it inside `head`, and what follows it.
fn first_line(head: &[u8], skip_comments: bool) -> (&[u8], bool, &[u8]) {
    let mut rest = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    loop {
        match rest.iter().position(|b| *b == b'\n') {
            Some(i) => {
                let line = trim_cr(&rest[..i]);
                if line.iter().all(u8::is_ascii_whitespace)
                    || (skip_comments && line.trim_ascii_start().starts_with(b"#"))
                {
                    rest = &rest[i + 1..];
                    continue;
                }
                return (line, true, &rest[i + 1..]);
            }
            None => return (trim_cr(rest), false, &[]),
        }
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// True when the head is a JSON document spread over lines rather than JSON lines: it opens
/// with `[`, or its first line is an unfinished object and so is its second.
fn is_json_document(line: &[u8], complete: bool, rest: &[u8]) -> bool {
    let t = line.trim_ascii_start();
    if t.starts_with(b"[") {
        return true;
    }
    if !complete {
        return false;
    }
    match serde_json::from_slice::<serde::de::IgnoredAny>(t) {
        // One line holding a whole findings list (and nothing after it) is a document too.
        Ok(_) => {
            rest.len() < HEAD_BYTES
                && rest.iter().all(u8::is_ascii_whitespace)
                && std::str::from_utf8(t).is_ok_and(document::is_wrapper)
        }
        Err(e) if e.is_eof() => {
            let (second, _, _) = first_line(rest, false);
            serde_json::from_slice::<serde_json::Map<String, Value>>(second.trim_ascii()).is_err()
        }
        Err(_) => false,
    }
}

impl FileFormat {
    /// Detect from up to the first 64 KiB of the file (`forced` wins when given and not Auto),
    /// with the built-in `[ingest]` settings.
    pub fn detect(head: &[u8], forced: Format) -> FileFormat {
        Self::detect_with(head, forced, &FormatSettings::builtin())
    }

    /// Detect from up to the first 64 KiB of the file with the configured settings (CSV
    /// columns, mappings, limits).
    pub fn detect_with(head: &[u8], forced: Format, settings: &Arc<FormatSettings>) -> FileFormat {
        let head = &head[..head.len().min(HEAD_BYTES)];
        let opens_with_zeek_header = {
            let (first, _, _) = first_line(head, false);
            let t = first.trim_ascii_start();
            t.starts_with(b"#separator") || t.starts_with(b"#fields")
        };
        // Past any `#` comment block (abuse.ch and others put one above a CSV header).
        let (line, complete, rest) = first_line(head, true);
        let provisional = !complete && head.len() < HEAD_BYTES;
        let zeek = || ZeekHeader::parse(head).map(Arc::new);
        let mut hint = None;
        let json = |producer| {
            if is_json_document(line, complete, rest) {
                (Format::JsonDocument, Framing::JsonDocument(producer))
            } else {
                (Format::JsonLines, Framing::JsonLines(producer))
            }
        };
        let (format, framing) = match forced {
            Format::Auto => {
                let t = line.trim_ascii_start();
                if opens_with_zeek_header {
                    match zeek() {
                        Some(h) => (Format::ZeekTsv, Framing::ZeekTsv(h)),
                        None => (Format::JsonLines, Framing::JsonLines(JsonProducer::Any)),
                    }
                } else if t.starts_with(b"{") || t.starts_with(b"[") {
                    json(JsonProducer::Any)
                } else if contains(line, b"CEF:") {
                    (Format::Cef, Framing::Cef)
                } else if let Some(h) = CsvHeader::parse(line, &settings.csv, true) {
                    (Format::Csv, Framing::Csv(Arc::new(h)))
                } else {
                    hint = Some(unrecognised_hint(line, &settings.csv));
                    (Format::JsonLines, Framing::JsonLines(JsonProducer::Any))
                }
            }
            Format::JsonLines => (Format::JsonLines, Framing::JsonLines(JsonProducer::Any)),
            Format::JsonDocument => (
                Format::JsonDocument,
                Framing::JsonDocument(JsonProducer::Any),
            ),
            Format::Zeek | Format::ZeekTsv => match zeek() {
                Some(h) => (Format::ZeekTsv, Framing::ZeekTsv(h)),
                None if forced == Format::Zeek => {
                    (Format::Zeek, Framing::JsonLines(JsonProducer::Zeek))
                }
                None => (
                    Format::ZeekTsv,
                    Framing::Unreadable(
                        "no Zeek `#fields` header in the file's first 64 KiB".into(),
                    ),
                ),
            },
            Format::Cef => (Format::Cef, Framing::Cef),
            Format::Csv => match CsvHeader::parse(line, &settings.csv, false) {
                Some(h) => (Format::Csv, Framing::Csv(Arc::new(h))),
                None => (
                    Format::Csv,
                    Framing::Unreadable(
                        "no CSV header (two or more columns) on the file's first line".into(),
                    ),
                ),
            },
            f @ (Format::Suricata
            | Format::Wazuh
            | Format::Ecs
            | Format::GuardDuty
            | Format::SecurityHub) => {
                let (_, framing) = json(f.producer());
                (f, framing)
            }
        };
        FileFormat {
            format,
            framing,
            settings: settings.clone(),
            provisional,
            hint,
        }
    }

    /// True when detection saw no complete first line (an empty or still-growing file): the
    /// caller should detect again once the file has a full line.
    pub fn is_provisional(&self) -> bool {
        self.provisional
    }

    /// True when records are lines and the file can be followed as it grows; false for whole
    /// documents (a pretty-printed JSON array), which are read once they parse completely.
    pub fn is_line_oriented(&self) -> bool {
        !matches!(self.framing, Framing::JsonDocument(_))
    }

    /// One line (without its newline) to an alert, a skip (header, comment, non-alert event) or
    /// a reject naming the field.
    ///
    /// # Errors
    /// A `Reject` with a one-line reason.
    pub fn parse_line(&self, line: &[u8]) -> Result<Parsed, Reject> {
        let line = trim_cr(line);
        let limit = self.settings.max_record_bytes;
        if line.len() > limit {
            return Err(Reject(super::reader::lines::too_long(
                "line",
                line.len() as u64,
                limit,
            )));
        }
        match &self.framing {
            Framing::JsonLines(p) | Framing::JsonDocument(p) => {
                let t = line.trim_ascii_start();
                if *p == JsonProducer::Any && !t.starts_with(b"{") && contains(t, b"CEF:") {
                    return self.cef_line(line);
                }
                let looks_json = t.starts_with(b"{") || t.starts_with(b"[");
                self.json_record(line, *p).map_err(|r| match &self.hint {
                    Some(h) if !looks_json && r.0.starts_with("not valid JSON") => {
                        Reject(format!("not JSON, and the file {h}"))
                    }
                    _ => r,
                })
            }
            Framing::ZeekTsv(h) => {
                if line.starts_with(b"#") {
                    return Ok(Parsed::Skipped);
                }
                if !h.has_notes() {
                    return Ok(Parsed::Skipped);
                }
                let text = utf8(line, |at| {
                    let before = &line[..at];
                    let i = before.iter().filter(|b| **b == h.separator).count();
                    h.fields.get(i).cloned()
                })?;
                let doc = h.row(text).map_err(|n| {
                    Reject(format!(
                        "row has {n} fields, the `#fields` header has {}",
                        h.fields.len()
                    ))
                })?;
                normalize_zeek(&doc, text)
            }
            Framing::Csv(h) => {
                if line == trim_cr(&h.raw) || line.trim_ascii_start().starts_with(b"#") {
                    return Ok(Parsed::Skipped);
                }
                let text = utf8(line, |at| h.column_at(line, at).map(str::to_string))?;
                let doc = h.row(text)?;
                h.mapping.normalize(&doc, text)
            }
            Framing::Cef => self.cef_line(line),
            Framing::Unreadable(why) => Err(Reject(why.clone())),
        }
    }

    fn cef_line(&self, line: &[u8]) -> Result<Parsed, Reject> {
        let text = utf8(line, |_| {
            super::normalize::cef_field_at(&String::from_utf8_lossy(line))
        })?;
        normalize_cef(text)
    }

    /// One JSON record: size was checked by the caller; UTF-8 and nesting are checked here
    /// before serde_json sees it.
    fn json_record(&self, bytes: &[u8], producer: JsonProducer) -> Result<Parsed, Reject> {
        let text = match std::str::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => return Err(json_utf8_error(bytes, e.valid_up_to())),
        };
        check_depth(bytes, self.settings.max_depth)?;
        let doc: Value =
            serde_json::from_str(text).map_err(|e| Reject(format!("not valid JSON: {e}")))?;
        normalize_json(&doc, text, producer, &self.settings.mappings)
    }

    /// One record as the reader cut it: refused by the reader (too long, unreadable), or
    /// parsed as a line of this file.
    ///
    /// # Errors
    /// A `Reject` with a one-line reason.
    pub fn parse_record(&self, record: &RawLine) -> Result<Parsed, Reject> {
        match &record.refused {
            Some(why) => Err(Reject(why.clone())),
            None => self.parse_line(&record.bytes),
        }
    }

    /// The `[ingest]` settings this file is read with.
    pub fn settings(&self) -> &FormatSettings {
        &self.settings
    }

    /// Every record of a whole file held in memory, in order, each with where it sits in it:
    /// the records of a JSON document, or the non-blank lines of a line-oriented file, cut
    /// as `reader` cuts a file it streams.
    pub fn parse_records(&self, bytes: &[u8]) -> Vec<DocumentRecord> {
        let limit = self.settings.max_document_bytes;
        if !self.is_line_oriented() && bytes.len() > limit {
            return vec![DocumentRecord {
                record: 1,
                line_no: 1,
                byte_offset: 0,
                span: 0..bytes.len(),
                parsed: Err(Reject(format!(
                    "document is {} bytes, over the {limit} byte limit ([ingest] max_document_bytes)",
                    bytes.len()
                ))),
            }];
        }
        AlertFile::of_bytes(bytes, self)
            .filter(|r| r.refused.is_some() || !r.bytes.iter().all(u8::is_ascii_whitespace))
            .enumerate()
            .map(|(i, r)| {
                let start = usize::try_from(r.byte_offset).unwrap_or(bytes.len());
                DocumentRecord {
                    record: i as u64 + 1,
                    line_no: r.line_no,
                    byte_offset: r.byte_offset,
                    span: start.min(bytes.len())..(start + r.bytes.len()).min(bytes.len()),
                    parsed: self.parse_record(&r),
                }
            })
            .collect()
    }

    /// A whole document (only for formats where `is_line_oriented` is false): every record in
    /// it, in order, each with its 1-based record number.
    pub fn parse_document(&self, bytes: &[u8]) -> Vec<(u64, Result<Parsed, Reject>)> {
        self.parse_records(bytes)
            .into_iter()
            .map(|r| (r.record, r.parsed))
            .collect()
    }
}

/// What to tell the analyst when a file's first line matched no format: name the columns when
/// it looks like a CSV header, so the fix (a `[ingest.csv.columns]` entry) is obvious.
fn unrecognised_hint(line: &[u8], csv: &settings::CsvSettings) -> Arc<str> {
    if contains(line, b"%ASA-") {
        return "holds Cisco ASA syslog messages (%ASA-…), which are not CEF and have no parser \
                in vigil: have the firewall send CEF, or convert them first"
            .into();
    }
    let header_like = |h: &CsvHeader| {
        h.columns
            .iter()
            .all(|c| !c.is_empty() && c.len() <= 64 && !c.contains(':'))
    };
    match CsvHeader::parse(line, csv, false).filter(header_like) {
        Some(h) => {
            let mut cols = h
                .columns
                .iter()
                .take(8)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
            if h.columns.len() > 8 {
                cols.push_str(", …");
            }
            format!(
                "starts with what looks like a CSV header ({cols}) with no column mapped to \
                 @timestamp plus one more field: map them under [ingest.csv.columns]"
            )
            .into()
        }
        None => "was not recognised as JSON lines, CEF, Zeek TSV or CSV".into(),
    }
}

/// The line as text, or a reject naming the field the first invalid byte sits in.
fn utf8(line: &[u8], field_at: impl FnOnce(usize) -> Option<String>) -> Result<&str, Reject> {
    std::str::from_utf8(line).map_err(|e| {
        let at = e.valid_up_to();
        match field_at(at) {
            Some(f) => Reject(format!(
                "field `{f}`: invalid UTF-8 (byte {at} of the line)"
            )),
            None => Reject(format!("invalid UTF-8 at byte {at} of the line")),
        }
    })
}

/// Invalid UTF-8 in a JSON record: name the key whose string holds it, found by parsing a
/// lossy copy (only on this error path).
fn json_utf8_error(bytes: &[u8], at: usize) -> Reject {
    fn find(v: &Value, path: &mut Vec<String>) -> bool {
        match v {
            Value::String(s) => s.contains('\u{FFFD}'),
            Value::Array(a) => a.iter().enumerate().any(|(i, x)| {
                path.push(i.to_string());
                let hit = find(x, path);
                if !hit {
                    path.pop();
                }
                hit
            }),
            Value::Object(m) => m.iter().any(|(k, x)| {
                path.push(k.clone());
                let hit = k.contains('\u{FFFD}') || find(x, path);
                if !hit {
                    path.pop();
                }
                hit
            }),
            _ => false,
        }
    }
    let lossy = String::from_utf8_lossy(bytes);
    let mut path = Vec::new();
    let named = serde_json::from_str::<Value>(&lossy)
        .ok()
        .filter(|v| find(v, &mut path));
    match named {
        Some(_) => Reject(format!(
            "field `{}`: invalid UTF-8 (byte {at} of the line)",
            path.join(".")
        )),
        None => Reject(format!("invalid UTF-8 at byte {at} of the line")),
    }
}

/// Refuse JSON nested deeper than `max` before parsing it: one pass over the bytes, tracking
/// strings so brackets inside them do not count.
fn check_depth(bytes: &[u8], max: usize) -> Result<(), Reject> {
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    for (i, b) in bytes.iter().enumerate() {
        if in_str {
            if escaped {
                escaped = false;
            } else if *b == b'\\' {
                escaped = true;
            } else if *b == b'"' {
                in_str = false;
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return Err(Reject(format!(
                        "nested deeper than {max} levels at byte {i} ([ingest] max_depth)"
                    )));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
