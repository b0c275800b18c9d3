//! CSV framing: the header line names the columns, `[ingest.csv]` maps them to ECS fields,
//! and each row becomes a flat JSON object that the compiled mapping reads.

use super::settings::CsvSettings;
use crate::engine::normalize::mapped::{EcsField, Mapping};
use crate::engine::normalize::Reject;
use serde_json::{Map, Value};

/// A CSV file's header and the mapping built from it.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvHeader {
    /// The header line exactly as written (without its newline), to recognise it again.
    pub raw: Vec<u8>,
    pub columns: Vec<String>,
    pub delimiter: u8,
    pub mapping: Mapping,
}

fn record(line: &[u8], delimiter: u8) -> Option<csv::ByteRecord> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(line);
    let mut rec = csv::ByteRecord::new();
    match r.read_byte_record(&mut rec) {
        Ok(true) => Some(rec),
        _ => None,
    }
}

impl CsvHeader {
    /// Read `line` as a header. `None` unless it has two or more columns; `strict` also
    /// requires a column mapped to `@timestamp` and one more mapped column (how auto-detection
    /// tells a CSV header from any other line).
    pub fn parse(line: &[u8], settings: &CsvSettings, strict: bool) -> Option<CsvHeader> {
        let bom_free = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        let rec = record(bom_free, settings.delimiter)?;
        if rec.len() < 2 {
            return None;
        }
        let columns: Vec<String> = rec
            .iter()
            .map(|c| String::from_utf8_lossy(c).trim().to_string())
            .collect();
        let fields: Vec<(String, EcsField)> = columns
            .iter()
            .filter_map(|c| {
                settings
                    .columns
                    .get(&c.to_ascii_lowercase())
                    .map(|f| (c.clone(), *f))
            })
            .collect();
        let has_time = fields.iter().any(|(_, f)| *f == EcsField::Timestamp);
        if strict && (!has_time || fields.len() < 2) {
            return None;
        }
        let fingerprint = settings
            .fingerprint
            .iter()
            .find_map(|want| {
                columns
                    .iter()
                    .find(|c| c.eq_ignore_ascii_case(want))
                    .cloned()
            })
            .into_iter()
            .collect();
        Some(CsvHeader {
            raw: line.to_vec(),
            columns,
            delimiter: settings.delimiter,
            mapping: Mapping {
                name: "csv".into(),
                module: settings.module.clone(),
                when: Vec::new(),
                fields,
                severity: settings.severity.clone(),
                default_severity: settings.default_severity,
                fingerprint,
            },
        })
    }

    /// One data row to a flat object keyed by column name (empty cells left out).
    ///
    /// # Errors
    /// A quote left open (a record spanning lines is not supported), or a column count that
    /// differs from the header's.
    pub fn row(&self, line: &str) -> Result<Value, Reject> {
        if line.bytes().filter(|b| *b == b'"').count() % 2 == 1 {
            return Err(Reject(
                "unterminated quoted field: a CSV record spanning lines is not supported".into(),
            ));
        }
        let Some(rec) = record(line.as_bytes(), self.delimiter) else {
            return Err(Reject("not a CSV record".into()));
        };
        if rec.len() != self.columns.len() {
            return Err(Reject(format!(
                "row has {} columns, the header has {}",
                rec.len(),
                self.columns.len()
            )));
        }
        let mut m = Map::with_capacity(rec.len());
        for (name, cell) in self.columns.iter().zip(rec.iter()) {
            let cell = String::from_utf8_lossy(cell);
            if cell.trim().is_empty() || m.contains_key(name) {
                continue;
            }
            m.insert(name.clone(), Value::String(cell.into_owned()));
        }
        Ok(Value::Object(m))
    }

    /// The column a byte offset of `line` falls in (for naming the culprit of bad UTF-8).
    pub fn column_at(&self, line: &[u8], offset: usize) -> Option<&str> {
        let cells_so_far = match offset.min(line.len()) {
            0 => 1,
            n => record(&line[..n], self.delimiter)?.len(),
        };
        self.columns
            .get(cells_so_far.saturating_sub(1))
            .map(String::as_str)
    }
}
