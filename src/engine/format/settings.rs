//! The `[ingest]` configuration: size and nesting limits, the CSV column table and the JSON
//! mappings, as written in TOML (`IngestConfig`) and checked and compiled for the parsers
//! (`FormatSettings`). Owns validation with errors that name the table and key; loading and
//! merging the file is `config`'s job.

use crate::engine::alert::Severity;
use crate::engine::normalize::mapped::{EcsField, Mapping};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

/// `[ingest]` as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Longest line (or record of a JSON document) parsed; longer ones are quarantined.
    pub max_record_bytes: usize,
    /// Largest JSON document the live tailer reads whole (`vigil ingest` streams documents).
    pub max_document_bytes: usize,
    /// Deepest JSON nesting accepted (at most 128, serde_json's own limit).
    pub max_depth: usize,
    pub csv: CsvConfig,
    /// Named mappings for other JSON producers, tried in name order before the built-in ones.
    #[serde(default)]
    pub mappings: BTreeMap<String, MappingConfig>,
}

/// `[ingest.csv]`: how a CSV file's header columns become ECS fields.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvConfig {
    pub module: String,
    /// One ASCII character.
    pub delimiter: String,
    /// Severity (1-4) of a row with no severity column.
    pub default_severity: u8,
    /// Columns holding the producer's own alert id (any one present makes the fingerprint).
    pub fingerprint: Vec<String>,
    /// Column name (matched case-insensitively) → ECS field; `""` unmaps a default column.
    pub columns: BTreeMap<String, String>,
    /// Severity cell (matched case-insensitively) → 1-4.
    pub severity: BTreeMap<String, u8>,
}

/// `[ingest.mappings.NAME]`: one more JSON producer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingConfig {
    #[serde(default = "enabled")]
    pub enabled: bool,
    pub module: String,
    /// Field paths that must all be present for the mapping to apply.
    pub when: Vec<String>,
    /// Field path in the producer's document → ECS field.
    pub fields: BTreeMap<String, String>,
    /// Producer severity value (matched case-insensitively) → 1-4.
    #[serde(default)]
    pub severity: BTreeMap<String, u8>,
    /// Severity (1-4) of a document with no mapped severity field.
    #[serde(default = "low")]
    pub default_severity: u8,
    /// Paths of the producer's own alert id; when all are present they make the fingerprint.
    #[serde(default)]
    pub fingerprint: Vec<String>,
}

fn enabled() -> bool {
    true
}
fn low() -> u8 {
    1
}

/// The checked, ready-to-use form of `[ingest]`, shared by every `FileFormat`.
#[derive(Debug, Clone, PartialEq)]
pub struct FormatSettings {
    pub max_record_bytes: usize,
    pub max_document_bytes: usize,
    pub max_depth: usize,
    pub(crate) csv: CsvSettings,
    pub(crate) mappings: Vec<Mapping>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CsvSettings {
    pub module: String,
    pub delimiter: u8,
    pub default_severity: Severity,
    pub fingerprint: Vec<String>,
    pub columns: HashMap<String, EcsField>,
    pub severity: HashMap<String, Severity>,
}

/// serde_json refuses deeper documents on its own, so a larger limit could never apply.
const JSON_PARSER_DEPTH: usize = 128;

fn level(table: &str, key: &str, n: u8) -> Result<Severity, String> {
    match n {
        1 => Ok(Severity::Low),
        2 => Ok(Severity::Medium),
        3 => Ok(Severity::High),
        4 => Ok(Severity::Critical),
        _ => Err(format!(
            "[{table}] {key}: severity must be 1 (low) to 4 (critical), found {n}"
        )),
    }
}

fn ecs_field(table: &str, key: &str, name: &str) -> Result<EcsField, String> {
    EcsField::from_name(name).ok_or_else(|| {
        format!(
            "[{table}] `{key}` maps to `{name}`, which is not a field vigil has (known: {})",
            EcsField::names().join(", ")
        )
    })
}

fn severity_table(
    table: &str,
    src: &BTreeMap<String, u8>,
) -> Result<HashMap<String, Severity>, String> {
    src.iter()
        .map(|(k, n)| Ok((k.trim().to_ascii_lowercase(), level(table, k, *n)?)))
        .collect()
}

impl IngestConfig {
    /// Check every value and build the parsers' form.
    ///
    /// # Errors
    /// One line naming the `[ingest...]` table and key: a limit out of range, an unknown ECS
    /// field, a severity outside 1-4, a mapping with no condition or no timestamp, two
    /// producer fields mapped to one ECS field.
    pub fn compile(&self) -> Result<FormatSettings, String> {
        if !(1..=JSON_PARSER_DEPTH).contains(&self.max_depth) {
            return Err(format!(
                "[ingest] max_depth: must be 1 to {JSON_PARSER_DEPTH}, found {}",
                self.max_depth
            ));
        }
        if self.max_record_bytes < 1024 {
            return Err(format!(
                "[ingest] max_record_bytes: must be at least 1024, found {}",
                self.max_record_bytes
            ));
        }
        if self.max_document_bytes < self.max_record_bytes {
            return Err(format!(
                "[ingest] max_document_bytes: must be at least max_record_bytes ({}), found {}",
                self.max_record_bytes, self.max_document_bytes
            ));
        }
        let c = &self.csv;
        let delimiter = match c.delimiter.as_bytes() {
            [b] if b.is_ascii() && *b != b'"' && *b != b'\n' => *b,
            _ => {
                return Err(format!(
                    "[ingest.csv] delimiter: must be one ASCII character other than a quote or \
                     newline, found {:?}",
                    c.delimiter
                ))
            }
        };
        let mut columns = HashMap::new();
        for (col, ecs) in &c.columns {
            if ecs.is_empty() {
                continue;
            }
            columns.insert(
                col.trim().to_ascii_lowercase(),
                ecs_field("ingest.csv.columns", col, ecs)?,
            );
        }
        let csv = CsvSettings {
            module: c.module.clone(),
            delimiter,
            default_severity: level("ingest.csv", "default_severity", c.default_severity)?,
            fingerprint: c.fingerprint.clone(),
            columns,
            severity: severity_table("ingest.csv.severity", &c.severity)?,
        };
        let mut mappings = Vec::new();
        for (name, m) in &self.mappings {
            if !m.enabled {
                continue;
            }
            let table = format!("ingest.mappings.{name}");
            if m.when.is_empty() {
                return Err(format!(
                    "[{table}] when: list at least one field that must be present, or the \
                     mapping would claim every document"
                ));
            }
            let mut fields = Vec::new();
            let mut seen: HashMap<EcsField, &str> = HashMap::new();
            for (src, ecs) in &m.fields {
                let f = ecs_field(&format!("{table}.fields"), src, ecs)?;
                if let Some(prev) = seen.insert(f, src) {
                    return Err(format!(
                        "[{table}.fields] `{prev}` and `{src}` both map to `{ecs}`; keep one"
                    ));
                }
                fields.push((src.clone(), f));
            }
            if !seen.contains_key(&EcsField::Timestamp) {
                return Err(format!(
                    "[{table}.fields] no field maps to `@timestamp`: every alert needs a time"
                ));
            }
            mappings.push(Mapping {
                name: name.clone(),
                module: m.module.clone(),
                when: m.when.clone(),
                fields,
                severity: severity_table(&format!("{table}.severity"), &m.severity)?,
                default_severity: level(&table, "default_severity", m.default_severity)?,
                fingerprint: m.fingerprint.clone(),
            });
        }
        Ok(FormatSettings {
            max_record_bytes: self.max_record_bytes,
            max_document_bytes: self.max_document_bytes,
            max_depth: self.max_depth,
            csv,
            mappings,
        })
    }
}

const DEFAULT_CONFIG: &str = include_str!("../../default-config.toml");

impl FormatSettings {
    /// The settings of the built-in configuration (`src/default-config.toml`), parsed once.
    /// Used where no user configuration is at hand (`FileFormat::detect`, tests, fuzzing).
    pub fn builtin() -> Arc<FormatSettings> {
        static BUILTIN: OnceLock<Arc<FormatSettings>> = OnceLock::new();
        BUILTIN
            .get_or_init(|| {
                let parsed = toml::from_str::<toml::Table>(DEFAULT_CONFIG)
                    .ok()
                    .and_then(|t| t.get("ingest").cloned())
                    .and_then(|v| IngestConfig::deserialize(v).ok())
                    .and_then(|c| c.compile().ok());
                // A test proves the embedded file compiles; this fallback keeps a broken build
                // from panicking: limits only, no CSV columns, no mappings.
                Arc::new(parsed.unwrap_or_else(|| FormatSettings {
                    max_record_bytes: 1024 * 1024,
                    max_document_bytes: 64 * 1024 * 1024,
                    max_depth: 64,
                    csv: CsvSettings {
                        module: "csv".into(),
                        delimiter: b',',
                        default_severity: Severity::Low,
                        fingerprint: Vec::new(),
                        columns: HashMap::new(),
                        severity: HashMap::new(),
                    },
                    mappings: Vec::new(),
                }))
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn embedded() -> IngestConfig {
        let t: toml::Table = toml::from_str(DEFAULT_CONFIG).expect("default config parses");
        IngestConfig::deserialize(t.get("ingest").cloned().expect("[ingest] present"))
            .expect("[ingest] deserialises")
    }

    #[test]
    fn embedded_settings_compile() {
        let s = embedded().compile().expect("compiles");
        assert_eq!(s.max_record_bytes, 1024 * 1024);
        assert!(s.csv.columns.contains_key("src_ip"));
        assert!(s.mappings.iter().any(|m| m.name == "falco"));
        assert_eq!(*FormatSettings::builtin(), s);
    }

    #[test]
    fn errors_name_the_table_and_key() {
        let mut c = embedded();
        c.max_depth = 500;
        assert_eq!(
            c.compile().expect_err("too deep"),
            "[ingest] max_depth: must be 1 to 128, found 500"
        );
        let mut c = embedded();
        c.csv.columns.insert("who".into(), "user.nme".into());
        let e = c.compile().expect_err("unknown ECS field");
        assert!(
            e.starts_with("[ingest.csv.columns] `who` maps to `user.nme`, which is not a field"),
            "{e}"
        );
        let mut c = embedded();
        let falco = c.mappings.get_mut("falco").expect("falco mapping");
        falco.fields.insert("hostname2".into(), "host.name".into());
        assert_eq!(
            c.compile().expect_err("duplicate target"),
            "[ingest.mappings.falco.fields] `hostname` and `hostname2` both map to `host.name`; keep one"
        );
        let mut c = embedded();
        c.csv.severity.insert("bad".into(), 7);
        assert_eq!(
            c.compile().expect_err("level"),
            "[ingest.csv.severity] bad: severity must be 1 (low) to 4 (critical), found 7"
        );
    }
}
