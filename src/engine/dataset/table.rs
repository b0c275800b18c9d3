//! Labelled tables: CSV with a header and a named label column, and NSL-KDD (fixed column
//! order, no header). Owns column typing, the categorical encodings (ordinal or one-hot, recorded
//! in the model card so eval applies exactly the same mapping) and per-row error reporting.

use super::{check_bad_fraction, parse_label, InputFormat, InputSpec, Labelled, ReadOptions};
use crate::engine::alert::sha256_hex;
use crate::engine::features::MISSING;
use crate::engine::model::DataSource;
use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::Path;

/// How one raw column becomes features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// The number as written.
    Numeric,
    /// The category's index in `categories` (sorted); an unseen category is `MISSING` (-1).
    Ordinal,
    /// One 0/1 feature per category; an unseen category sets none.
    OneHot,
}

/// One raw column's encoding, as recorded in the model card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnEncoding {
    pub name: String,
    pub encoding: Encoding,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
}

/// How text columns are encoded when a model is trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum CategoricalPolicy {
    /// One-hot up to `one_hot_max` categories, ordinal above.
    Auto,
    OneHot,
    Ordinal,
}

/// NSL-KDD's 41 feature columns in file order; the label follows, then (optionally) the
/// difficulty level, which is never a feature (it was derived from classifier results).
pub const NSL_KDD_COLUMNS: [&str; 41] = [
    "duration",
    "protocol_type",
    "service",
    "flag",
    "src_bytes",
    "dst_bytes",
    "land",
    "wrong_fragment",
    "urgent",
    "hot",
    "num_failed_logins",
    "logged_in",
    "num_compromised",
    "root_shell",
    "su_attempted",
    "num_root",
    "num_file_creations",
    "num_shells",
    "num_access_files",
    "num_outbound_cmds",
    "is_host_login",
    "is_guest_login",
    "count",
    "srv_count",
    "serror_rate",
    "srv_serror_rate",
    "rerror_rate",
    "srv_rerror_rate",
    "same_srv_rate",
    "diff_srv_rate",
    "srv_diff_host_rate",
    "dst_host_count",
    "dst_host_srv_count",
    "dst_host_same_srv_rate",
    "dst_host_diff_srv_rate",
    "dst_host_same_src_port_rate",
    "dst_host_srv_diff_host_rate",
    "dst_host_serror_rate",
    "dst_host_srv_serror_rate",
    "dst_host_rerror_rate",
    "dst_host_srv_rerror_rate",
];
const NSL_KDD_TEXT: [&str; 3] = ["protocol_type", "service", "flag"];

/// The feature names a list of column encodings produces, in vector order.
pub fn feature_names(columns: &[ColumnEncoding]) -> Vec<String> {
    let mut out = Vec::new();
    for c in columns {
        match c.encoding {
            Encoding::Numeric | Encoding::Ordinal => out.push(c.name.clone()),
            Encoding::OneHot => out.extend(c.categories.iter().map(|v| format!("{}={v}", c.name))),
        }
    }
    out
}

/// One data row before encoding.
struct RawRow {
    file: usize,
    line: u64,
    /// Feature column values, in the order of `Table::columns`.
    values: Vec<String>,
    label: bool,
    test: bool,
}

/// All rows of one read, before encoding.
struct Table {
    columns: Vec<String>,
    rows: Vec<RawRow>,
}

/// What to read and how labels look.
pub struct TableRead<'a> {
    pub format: InputFormat,
    pub label_column: Option<&'a str>,
    pub benign_values: &'a [String],
}

fn read_raw(
    paths: &[&Path],
    how: &TableRead<'_>,
    opts: &ReadOptions,
    into: &mut Labelled,
    bad_per_file: &mut [usize],
    rows_per_file: &mut [usize],
) -> anyhow::Result<Table> {
    let nsl = how.format == InputFormat::NslKdd;
    let mut columns: Option<Vec<String>> = None;
    let mut rows = Vec::new();
    let mut data_row = 0usize;
    for (fi, path) in paths.iter().enumerate() {
        let bytes = crate::engine::reader::read_maybe_gz(path)?;
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(!nsl)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(&bytes[..]);
        // Column layout of this file: indices of the feature columns and of the label.
        let (file_cols, feature_idx, label_idx, widths): (
            Vec<String>,
            Vec<usize>,
            usize,
            Vec<usize>,
        ) = if nsl {
            (
                NSL_KDD_COLUMNS.iter().map(|s| s.to_string()).collect(),
                (0..41).collect(),
                41,
                vec![42, 43],
            )
        } else {
            let header = rdr
                .headers()
                .with_context(|| format!("{}:1: cannot read the header row", path.display()))?
                .clone();
            let Some(label) = how.label_column else {
                bail!("CSV input needs --label COLUMN");
            };
            let Some(li) = header.iter().position(|h| h == label) else {
                bail!(
                    "{}:1: no column named `{label}` (columns: {})",
                    path.display(),
                    header.iter().collect::<Vec<_>>().join(", ")
                );
            };
            let idx: Vec<usize> = (0..header.len()).filter(|i| *i != li).collect();
            let names = idx.iter().map(|i| header[*i].to_string()).collect();
            (names, idx, li, vec![header.len()])
        };
        match &columns {
            None => columns = Some(file_cols),
            Some(c) if *c != file_cols => bail!(
                "{}:1: columns differ from {}",
                path.display(),
                paths[0].display()
            ),
            Some(_) => {}
        }
        let mut record = csv::StringRecord::new();
        loop {
            let line = rdr.position().line();
            match rdr.read_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => {
                    let line = e.position().map_or(line, |p| p.line());
                    rows_per_file[fi] += 1;
                    bad_per_file[fi] += 1;
                    into.bad_rows
                        .push(format!("{}:{line}: not a CSV row: {e}", path.display()));
                    if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                        break;
                    }
                    continue;
                }
            }
            let line = record.position().map_or(line, |p| p.line());
            if record.iter().all(str::is_empty) {
                continue;
            }
            rows_per_file[fi] += 1;
            let mut fail = |msg: String| {
                bad_per_file[fi] += 1;
                into.bad_rows
                    .push(format!("{}:{line}: {msg}", path.display()));
            };
            if !widths.contains(&record.len()) {
                fail(format!(
                    "expected {} fields, found {}",
                    widths
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(" or "),
                    record.len()
                ));
                continue;
            }
            let raw_label = &record[label_idx];
            let label = parse_label(
                &serde_json::Value::String(raw_label.to_string()),
                how.benign_values,
            );
            let Some(label) = label else {
                let col = how.label_column.unwrap_or("label");
                fail(if how.benign_values.is_empty() {
                    format!("column `{col}`: {raw_label:?} is not a label (malicious/benign/attack/normal/1/0; or pass --benign VALUE)")
                } else {
                    format!("column `{col}`: empty label")
                });
                continue;
            };
            data_row += 1;
            rows.push(RawRow {
                file: fi,
                line,
                values: feature_idx.iter().map(|i| record[*i].to_string()).collect(),
                label,
                test: opts.holdout_every > 0 && data_row.is_multiple_of(opts.holdout_every),
            });
        }
        into.sources.push(DataSource {
            path: path.display().to_string(),
            sha256: sha256_hex(&bytes),
            rows: 0,
            bad_rows: 0,
        });
    }
    Ok(Table {
        columns: columns.unwrap_or_default(),
        rows,
    })
}

fn parse_number(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Decide each column's encoding from the training rows.
fn fit_encodings(
    t: &Table,
    format: InputFormat,
    policy: CategoricalPolicy,
    one_hot_max: usize,
    max_bad_fraction: f64,
) -> Vec<ColumnEncoding> {
    t.columns
        .iter()
        .enumerate()
        .map(|(ci, name)| {
            let train = t.rows.iter().filter(|r| !r.test);
            let (mut filled, mut not_number) = (0usize, 0usize);
            let mut cats = BTreeSet::new();
            for r in train {
                let v = r.values[ci].as_str();
                if v.is_empty() {
                    continue;
                }
                filled += 1;
                if parse_number(v).is_none() {
                    not_number += 1;
                }
                cats.insert(v.to_string());
            }
            let text = if format == InputFormat::NslKdd {
                NSL_KDD_TEXT.contains(&name.as_str())
            } else {
                filled > 0 && not_number as f64 / filled as f64 > max_bad_fraction
            };
            if !text {
                return ColumnEncoding {
                    name: name.clone(),
                    encoding: Encoding::Numeric,
                    categories: vec![],
                };
            }
            let one_hot = match policy {
                CategoricalPolicy::OneHot => true,
                CategoricalPolicy::Ordinal => false,
                // NSL-KDD keeps its 41 features: the layout every published result uses.
                CategoricalPolicy::Auto => {
                    format != InputFormat::NslKdd && cats.len() <= one_hot_max
                }
            };
            ColumnEncoding {
                name: name.clone(),
                encoding: if one_hot {
                    Encoding::OneHot
                } else {
                    Encoding::Ordinal
                },
                categories: cats.into_iter().collect(),
            }
        })
        .collect()
}

/// Encode one row; the error names the column.
fn encode(
    columns: &[ColumnEncoding],
    pos: &[usize],
    values: &[String],
) -> Result<Vec<f64>, String> {
    let mut out = Vec::with_capacity(columns.len());
    for (c, &p) in columns.iter().zip(pos) {
        let v = values[p].as_str();
        match c.encoding {
            Encoding::Numeric => match parse_number(v) {
                Some(x) => out.push(x),
                None if v.is_empty() => return Err(format!("column `{}`: empty", c.name)),
                None => return Err(format!("column `{}`: {v:?} is not a number", c.name)),
            },
            Encoding::Ordinal => out.push(
                c.categories
                    .binary_search_by(|k| k.as_str().cmp(v))
                    .map_or(MISSING, |i| i as f64),
            ),
            Encoding::OneHot => {
                out.extend(c.categories.iter().map(|k| if k == v { 1.0 } else { 0.0 }))
            }
        }
    }
    Ok(out)
}

/// Read labelled tables. With `encodings` (from a model card) rows are encoded exactly as at
/// training time; without, the encodings are fitted on the training rows and returned.
///
/// # Errors
/// Unreadable files, a missing label column, files with different columns, a model column the
/// data lacks, or too many bad rows in a file.
#[allow(clippy::too_many_arguments)]
pub fn read_tables(
    paths: &[&Path],
    how: &TableRead<'_>,
    encodings: Option<&[ColumnEncoding]>,
    policy: CategoricalPolicy,
    one_hot_max: usize,
    opts: &ReadOptions,
    into: &mut Labelled,
) -> anyhow::Result<InputSpec> {
    let first_source = into.sources.len();
    let mut bad = vec![0usize; paths.len()];
    let mut rows_per_file = vec![0usize; paths.len()];
    let first_bad = into.bad_rows.len();
    let t = read_raw(paths, how, opts, into, &mut bad, &mut rows_per_file)?;
    let columns = match encodings {
        Some(e) => e.to_vec(),
        None => fit_encodings(&t, how.format, policy, one_hot_max, opts.max_bad_fraction),
    };
    let pos: Vec<usize> = columns
        .iter()
        .map(|c| {
            t.columns.iter().position(|n| *n == c.name).ok_or_else(|| {
                anyhow::anyhow!(
                    "mismatched data: the model reads column `{}`, which {} lacks",
                    c.name,
                    paths
                        .first()
                        .map_or(String::new(), |p| p.display().to_string())
                )
            })
        })
        .collect::<anyhow::Result<_>>()?;
    for r in &t.rows {
        match encode(&columns, &pos, &r.values) {
            Ok(x) => {
                into.x.push(x);
                into.y.push(r.label);
                into.test.push(r.test);
            }
            Err(msg) => {
                bad[r.file] += 1;
                into.bad_rows
                    .push(format!("{}:{}: {msg}", paths[r.file].display(), r.line));
            }
        }
    }
    for (i, path) in paths.iter().enumerate() {
        if let Some(s) = into.sources.get_mut(first_source + i) {
            s.rows = rows_per_file[i];
            s.bad_rows = bad[i];
        }
        let mine = format!("{}:", path.display());
        check_bad_fraction(
            &path.display().to_string(),
            rows_per_file[i],
            bad[i],
            into.bad_rows[first_bad..]
                .iter()
                .find(|b| b.starts_with(&mine))
                .map(String::as_str),
            opts.max_bad_fraction,
        )?;
    }
    Ok(InputSpec {
        holdout_every: opts.holdout_every,
        format: how.format,
        label_column: how.label_column.map(str::to_string),
        benign_values: how.benign_values.to_vec(),
        columns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(
        text: &str,
        how: &TableRead<'_>,
        opts: &ReadOptions,
    ) -> anyhow::Result<(InputSpec, Labelled)> {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("t.csv");
        std::fs::write(&f, text).expect("write");
        let mut set = Labelled::default();
        let spec = read_tables(&[&f], how, None, CategoricalPolicy::Auto, 4, opts, &mut set)?;
        Ok((spec, set))
    }

    #[test]
    fn csv_columns_are_typed_encoded_and_bad_rows_named() {
        let text = "proto,bytes,class\ntcp,10,normal\nudp,20,attack\ntcp,x,normal\nicmp,5,smurf\nudp,7,normal\n,9,normal\n";
        let how = TableRead {
            format: InputFormat::Csv,
            label_column: Some("class"),
            benign_values: &["normal".to_string()],
        };
        let opts = ReadOptions {
            holdout_every: 0,
            max_bad_fraction: 0.25,
            ..ReadOptions::default()
        };
        let (spec, set) = read(text, &how, &opts).expect("reads");
        assert_eq!(spec.columns[0].encoding, Encoding::OneHot);
        assert_eq!(spec.columns[0].categories, vec!["icmp", "tcp", "udp"]);
        assert_eq!(spec.columns[1].encoding, Encoding::Numeric);
        assert_eq!(
            feature_names(&spec.columns),
            vec!["proto=icmp", "proto=tcp", "proto=udp", "bytes"]
        );
        assert_eq!(set.x.len(), 5);
        assert_eq!(set.x[0], vec![0.0, 1.0, 0.0, 10.0]);
        assert_eq!(set.y, vec![false, true, true, false, false]);
        assert_eq!(set.bad_rows.len(), 1);
        assert!(
            set.bad_rows[0].ends_with("t.csv:4: column `bytes`: \"x\" is not a number"),
            "{:?}",
            set.bad_rows
        );
        let strict = ReadOptions {
            max_bad_fraction: 0.1,
            ..opts.clone()
        };
        let unlabelled = "proto,bytes,class\ntcp,1,normal\nudp,2,\nicmp,3,attack\n";
        let err = read(unlabelled, &how, &strict)
            .expect_err("over the limit")
            .to_string();
        assert!(err.contains("1 of 3 rows are bad"), "{err}");
        assert!(
            err.contains("t.csv:3: column `class`: empty label"),
            "{err}"
        );
        let missing = TableRead {
            label_column: Some("nope"),
            ..how
        };
        let err = read(text, &missing, &opts)
            .expect_err("no column")
            .to_string();
        assert!(err.contains("no column named `nope`"), "{err}");
    }

    #[test]
    fn nsl_kdd_rows_keep_41_features_with_ordinal_text_columns() {
        let row = |proto: &str, label: &str| {
            format!("0,{proto},http,SF,{},0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,0,0,2,2,0,0,0,0,1,0,0,9,9,1,0,0.1,0,0,0,0,0,{label},20\n", 100)
        };
        let text = format!(
            "{}{}{}0,tcp,http\n",
            row("tcp", "normal"),
            row("udp", "neptune"),
            row("icmp", "smurf")
        );
        let how = TableRead {
            format: InputFormat::NslKdd,
            label_column: None,
            benign_values: &["normal".to_string()],
        };
        let opts = ReadOptions {
            holdout_every: 0,
            max_bad_fraction: 0.5,
            ..ReadOptions::default()
        };
        let (spec, set) = read(&text, &how, &opts).expect("reads");
        assert_eq!(feature_names(&spec.columns).len(), 41);
        assert_eq!(spec.columns[1].encoding, Encoding::Ordinal);
        assert_eq!(set.x[0][1], 1.0, "tcp is the second of icmp, tcp, udp");
        assert_eq!(set.y, vec![false, true, true]);
        assert!(
            set.bad_rows[0].ends_with(":4: expected 42 or 43 fields, found 3"),
            "{:?}",
            set.bad_rows
        );
    }
}
