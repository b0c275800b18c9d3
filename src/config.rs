//! Configuration: the embedded default (`src/default-config.toml`) with the user's
//! `config.toml` merged over it key by key. Owns parsing and validation; turning the values
//! into running parts is the caller's job.

use crate::engine::calibrate::CalibrationMethod;
use crate::engine::dataset::table::CategoricalPolicy;
use crate::engine::format::{FormatSettings, IngestConfig};
use crate::engine::model::TrainParams;
use crate::engine::score::Bands;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const DEFAULT: &str = include_str!("default-config.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub watch: Vec<PathBuf>,
    pub model: ModelConfig,
    pub risk: Bands,
    pub incidents: IncidentConfig,
    pub playbooks: PlaybookConfig,
    pub connectors: ConnectorConfig,
    pub ingest: IngestConfig,
    pub enrichment: EnrichmentConfig,
    pub train: TrainConfig,
    #[serde(default)]
    pub store: StoreConfig,
}

/// `[store]`: who may read the database files vigil creates.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// A group that shares new databases (created 0660 for it). Empty: the owner alone (0600).
    #[serde(default)]
    pub group: String,
}

/// `[enrichment]`: the engine owns its settings type.
pub use crate::engine::enrich::settings::EnrichmentConfig;

/// `[train]`: hyper-parameters and data handling for `vigil train` (flags override).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub trees: usize,
    pub max_depth: usize,
    pub feature_fraction: f64,
    pub sample_fraction: f64,
    pub min_weight_leaf: f32,
    pub min_weight_split: f32,
    pub balance_classes: bool,
    pub seed: u64,
    pub calibration: CalibrationMethod,
    pub threshold: f64,
    pub holdout_every: usize,
    pub max_bad_fraction: f64,
    pub categorical: CategoricalPolicy,
    pub one_hot_max: usize,
}

impl TrainConfig {
    /// The forest's parameters.
    pub fn params(&self) -> TrainParams {
        TrainParams {
            trees: self.trees,
            max_depth: self.max_depth,
            feature_fraction: self.feature_fraction,
            sample_fraction: self.sample_fraction,
            min_weight_leaf: self.min_weight_leaf,
            min_weight_split: self.min_weight_split,
            balance_classes: self.balance_classes,
            seed: self.seed,
            calibration: self.calibration,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub path: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentConfig {
    pub rules: Vec<crate::engine::incident::IncidentRule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaybookConfig {
    pub dir: String,
}

/// `[connectors.NAME]`: each connector owns its own settings type.
pub use crate::engine::connector::ConnectorConfig;

/// A configuration problem, one line naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

pub use crate::engine::settings::non_empty;

fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

impl Config {
    /// The built-in configuration alone.
    ///
    /// # Errors
    /// Only if the embedded file is broken (a test guards against that).
    pub fn embedded() -> Result<Self, ConfigError> {
        let c: Config = toml::from_str(DEFAULT)
            .map_err(|e| ConfigError(format!("embedded default config: {}", e.message())))?;
        c.ingest
            .compile()
            .map_err(|e| ConfigError(format!("embedded default config: {e}")))?;
        Ok(c)
    }

    /// The `[ingest]` settings in the form the parsers use.
    ///
    /// # Errors
    /// A value `load` would already have refused (kept fallible so no caller can panic).
    pub fn format_settings(&self) -> Result<Arc<FormatSettings>, ConfigError> {
        self.ingest.compile().map(Arc::new).map_err(ConfigError)
    }

    /// The built-in configuration with `file` merged over it, if `file` exists.
    ///
    /// # Errors
    /// Unreadable or invalid TOML, unknown keys, wrong types: one line naming the file (and the
    /// line for syntax errors).
    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Self::embedded(),
            Err(e) => return Err(ConfigError(format!("{}: cannot read: {e}", file.display()))),
        };
        let user: toml::Table = toml::from_str(&text).map_err(|e| {
            let line = e
                .span()
                .map(|s| {
                    format!(
                        ":{}",
                        text[..s.start.min(text.len())].lines().count().max(1)
                    )
                })
                .unwrap_or_default();
            ConfigError(format!("{}{line}: {}", file.display(), e.message().trim()))
        })?;
        let mut base: toml::Table = toml::from_str(DEFAULT)
            .map_err(|e| ConfigError(format!("embedded default config: {}", e.message())))?;
        merge(&mut base, user);
        let c = Config::deserialize(toml::Value::Table(base))
            .map_err(|e| ConfigError(format!("{}: {}", file.display(), e.message().trim())))?;
        for r in &c.incidents.rules {
            r.check()
                .map_err(|e| ConfigError(format!("{}: [[incidents.rules]] {e}", file.display())))?;
        }
        c.ingest
            .compile()
            .map_err(|e| ConfigError(format!("{}: {e}", file.display())))?;
        // Build the connectors once here so a bad URL or allowlist entry stops start-up with
        // the file's name, not the first approved action.
        crate::engine::connector::Connectors::from_config(&c.connectors, PathBuf::new())
            .map_err(|e| ConfigError(format!("{}: {e}", file.display())))?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_parses() {
        let c = Config::embedded().expect("default config");
        assert_eq!(c.incidents.rules[0].group_by, ["rule.id", "source.ip"]);
        assert_eq!(c.incidents.rules[0].window_minutes, 15);
        assert_eq!(c.incidents.rules[1].window_minutes, 60);
        assert_eq!(c.risk, Bands::default());
        let vt = &c.enrichment.providers.virustotal;
        assert_eq!(
            (vt.per_minute, vt.per_day),
            (4, 500),
            "VirusTotal's free tier"
        );
        assert!(
            !vt.enabled,
            "nothing leaves the machine until an analyst enables it"
        );
        assert_eq!(c.train.params(), TrainParams::default());
    }

    #[test]
    fn user_file_overrides_per_key_and_rejects_unknown_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("config.toml");
        std::fs::write(&f, "[risk]\nhigh = 60\n").expect("write");
        let c = Config::load(&f).expect("loads");
        assert_eq!(c.risk.high, 60);
        assert_eq!(c.risk.medium, 30, "untouched keys keep the default");
        std::fs::write(&f, "[risk]\nhihg = 60\n").expect("write");
        let e = Config::load(&f).expect_err("unknown key").0;
        assert!(
            e.starts_with(&format!("{}: unknown field `hihg`", f.display())),
            "{e}"
        );
        std::fs::write(&f, "watch = [\n").expect("write");
        let e = Config::load(&f).expect_err("syntax").0;
        assert!(e.starts_with(&format!("{}:", f.display())), "{e}");
    }

    #[test]
    fn connector_settings_merge_and_are_checked_at_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("config.toml");
        std::fs::write(
            &f,
            "[connectors.webhook]\nurl = \"https://hooks.example.com/v\"\n\
             [connectors.http.api.edr]\nbase_url = \"https://edr.example.com/api\"\ntoken_env = \"EDR\"\n",
        )
        .expect("write");
        let c = Config::load(&f).expect("loads");
        assert_eq!(c.connectors.webhook.timeout_seconds, 10, "default kept");
        assert_eq!(c.connectors.http.api["edr"].token_env, "EDR");
        assert_eq!(c.connectors.command.timeout_seconds, 30);
        std::fs::write(&f, "[connectors.command]\nallow = [\"printf\"]\n").expect("write");
        let e = Config::load(&f).expect_err("relative").0;
        assert_eq!(
            e,
            format!(
                "{}: [connectors.command] allow: \"printf\" is not an absolute path without `.` or `..`",
                f.display()
            )
        );
        std::fs::write(
            &f,
            "[connectors.email]\nrelay = \"smtp.example.com\"\ntls = \"maybe\"\n",
        )
        .expect("write");
        let e = Config::load(&f).expect_err("tls").0;
        assert!(e.contains("[connectors.email] tls \"maybe\""), "{e}");
        std::fs::write(&f, "watch = [\n").expect("write");
        let e = Config::load(&f).expect_err("syntax").0;
        assert!(e.starts_with(&format!("{}:", f.display())), "{e}");
    }
}
