//! The command line: parses arguments, builds the engine's parts from config, and runs one
//! command. Errors are one line on stderr; exit 2 for usage and configuration errors, 1 for
//! failures at run time, 3 when `approve`/`rollback` finds another process holding the action's
//! execution lease (the decision is recorded; the call runs there).

mod log_lines;
#[macro_use]
mod output;

use crate::config::{non_empty, Config};
use crate::engine::calibrate::CalibrationMethod;
use crate::engine::connector::Connectors;
use crate::engine::dataset::table::CategoricalPolicy;
use crate::engine::dataset::{InputFormat, ReadOptions};
use crate::engine::enrich::task::{EnrichSetup, Enricher};
use crate::engine::eval::{EvalRequest, EvalSplit};
use crate::engine::features::FeatureContext;
use crate::engine::model::Model;
use crate::engine::pipeline::{IncidentSource, Pipeline};
use crate::engine::reader::AlertFile;
use crate::engine::score::Scorer;
use crate::engine::store::{self, Verdict, WriteOp, WriterConfig};
use crate::engine::{self, audit, features, incident, playbook, train};
use crate::identity::Actor;
use crate::paths::{self, Paths};
use anyhow::{anyhow, Context};
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

mod database;
mod ingest;

#[derive(Debug, Parser)]
#[command(
    name = "vigil",
    about = "Terminal-first SOAR: tail, score, approve, audit",
    disable_version_flag = true
)]
pub struct Cli {
    /// Print the version and the directories vigil uses.
    #[arg(short = 'V', long = "version", global = true)]
    pub version: bool,
    /// Database file (default: vigil.db in the data directory).
    #[arg(long, global = true, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Alert file, directory or glob to follow (repeatable). Default: config `watch`, else the
    /// shipped samples when no --db is given (a named database follows nothing by default).
    #[arg(long, global = true, value_name = "PATH")]
    pub watch: Vec<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Measure vigil on this machine; prints one JSON line.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
    /// Run the engine headless (for a jump host or systemd): follow the watch set until
    /// SIGTERM or SIGINT, then commit what is in flight and exit.
    Daemon,
    /// Open a saved case database read-only in the TUI: nothing is followed, written or
    /// decided, and the file is left byte-for-byte as it was.
    Review {
        #[arg(value_name = "PATH")]
        path: PathBuf,
    },
    /// Read files once, store their alerts, print a JSON summary.
    ///
    /// Exit status: 0 when every file was read to its end (bad records are quarantined and
    /// counted in the summary); 1 when a file could not be read, or not to its end (each named
    /// on stderr, counted as `unreadable`; what could be read is stored and the other files are
    /// read); 2 for a usage or configuration error.
    Ingest {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Input format; `auto` detects it per file from its first bytes.
        #[arg(long, default_value = "auto")]
        format: crate::engine::format::Format,
    },
    /// Print every stored alert as one ECS JSON object per line.
    Export {
        #[arg(long, default_value = "jsonl", value_parser = ["jsonl"])]
        format: String,
    },
    /// Train a random forest and write a model directory (forest.json + model.toml).
    Train(Box<TrainArgs>),
    /// Measure a model on labelled data; prints one JSON line of metrics.
    Eval {
        /// Model directory (default: config, else the embedded model).
        #[arg(long, value_name = "DIR")]
        model: Option<PathBuf>,
        #[arg(long, required = true, num_args = 1..)]
        data: Vec<PathBuf>,
        /// Input format (default: the one the model was trained on).
        #[arg(long, value_enum)]
        format: Option<InputFormat>,
        /// `test`: only the rows the training run held out.
        #[arg(long, value_enum, default_value = "all")]
        split: EvalSplit,
        /// Working threshold on the calibrated probability (default: the card's).
        #[arg(long)]
        threshold: Option<f64>,
    },
    /// Record an analyst's verdict on a stored alert (tp, fp or benign); audited.
    Disposition {
        alert_id: i64,
        /// tp (true positive), fp (false positive) or benign.
        verdict: String,
        #[arg(long, required = true)]
        reason: String,
    },
    /// Score the alerts in a file and print one JSON line per alert.
    Score {
        /// Model directory (default: config, else the embedded model).
        #[arg(long, value_name = "DIR")]
        model: Option<PathBuf>,
        file: PathBuf,
    },
    /// Print the indicators (IOCs) of each alert in a file as JSON lines.
    Iocs {
        file: PathBuf,
        /// Add a defanged copy of each value (safe to paste into tickets and chat).
        #[arg(long)]
        defang: bool,
        /// Print one JSON object of counts by indicator type (and IP class) instead.
        #[arg(long)]
        counts: bool,
    },
    /// Enrich stored alerts (threat feeds, GeoIP, online providers) and print a summary; or
    /// show each provider's budget and queue.
    Enrich {
        /// Show each provider's budget used, queue depth and key state instead.
        #[arg(long)]
        status: bool,
        /// Enrich every stored alert again, not only new ones (fresh answers come from the cache).
        #[arg(long)]
        all: bool,
        /// No online lookups in this run.
        #[arg(long)]
        offline: bool,
    },
    /// Print the audit trail as JSON lines, or verify its hash chain.
    Audit {
        #[command(subcommand)]
        action: Option<AuditCommand>,
    },
    /// Playbook tools.
    Playbook {
        #[command(subcommand)]
        action: PlaybookCommand,
    },
    /// List response actions as JSON lines (pending ones by default).
    Actions {
        /// Show actions in every state.
        #[arg(long)]
        all: bool,
    },
    /// Approve a pending action and run it.
    Approve {
        id: i64,
        #[arg(long, required = true)]
        reason: String,
    },
    /// Reject a pending action.
    Reject {
        id: i64,
        #[arg(long, required = true)]
        reason: String,
    },
    /// Undo a succeeded action with the rollback call shown when it was proposed.
    Rollback {
        id: i64,
        #[arg(long, required = true)]
        reason: String,
    },
    /// Replace a pending action's params (a JSON object); earlier approvals become void and the
    /// new call must be approved.
    Edit {
        id: i64,
        #[arg(long, required = true, value_name = "JSON")]
        params: String,
        #[arg(long, required = true)]
        reason: String,
    },
}

/// `vigil train` flags. Hyper-parameters default to the `[train]` config section.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Labelled data files (`.gz` too): alert JSON lines, CSV or NSL-KDD per --format.
    #[arg(long, num_args = 1..)]
    pub data: Vec<PathBuf>,
    /// alerts (default; `{"label": ..., "alert": {...}}` lines), csv (needs --label) or nsl-kdd.
    #[arg(long, value_enum)]
    pub format: Option<InputFormat>,
    /// The label column of a CSV table.
    #[arg(long, value_name = "COLUMN")]
    pub label: Option<String>,
    /// A label value meaning benign (repeatable); every other value is malicious.
    #[arg(long = "benign", value_name = "VALUE")]
    pub benign: Vec<String>,
    /// Also learn from analyst dispositions in the vigil database (--db).
    #[arg(long)]
    pub from_db: bool,
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Name written into the model card.
    #[arg(long, default_value = "custom")]
    pub name: String,
    #[arg(long)]
    pub trees: Option<usize>,
    #[arg(long)]
    pub max_depth: Option<usize>,
    #[arg(long)]
    pub feature_fraction: Option<f64>,
    #[arg(long)]
    pub sample_fraction: Option<f64>,
    #[arg(long)]
    pub min_weight_leaf: Option<f32>,
    #[arg(long)]
    pub min_weight_split: Option<f32>,
    #[arg(long)]
    pub seed: Option<u64>,
    #[arg(long, value_enum)]
    pub calibration: Option<CalibrationMethod>,
    #[arg(long)]
    pub threshold: Option<f64>,
    /// Hold out every Nth row for the card's metrics (0 = train on everything).
    #[arg(long)]
    pub holdout_every: Option<usize>,
    #[arg(long)]
    pub max_bad_fraction: Option<f64>,
    #[arg(long, value_enum)]
    pub categorical: Option<CategoricalPolicy>,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// End-to-end ingest rate (file → committed, scored rows), the raw SQLite insert rate of the
    /// same rows, their ratio, and append → commit latency at a steady rate.
    Ingest {
        #[arg(long, default_value_t = 100_000)]
        alerts: usize,
        /// Alerts per second for the latency run.
        #[arg(long, default_value_t = 5000)]
        rate: u32,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Rows/s of the compiled forest and of linfa's own predict on the same rows; one JSON line.
    Score {
        /// Labelled data to train the benchmark forest on (default: NSL-KDD from the shared
        /// data when present, else the shipped alert training set).
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long, value_enum)]
        format: Option<InputFormat>,
        /// Rows to predict (the data repeated).
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
        #[arg(long)]
        trees: Option<usize>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain against stored and given checkpoints; exit 1 naming the first
    /// bad record.
    Verify {
        /// A head kept elsewhere, as SEQ:HASH (repeatable): proves nothing up to it was removed
        /// or rewritten.
        #[arg(long, value_name = "SEQ:HASH")]
        checkpoint: Vec<crate::engine::audit::Checkpoint>,
        /// Verify an exported trail instead of the database.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Record the current head and print it as JSON: keep it elsewhere (a SIEM, a ticket).
    Checkpoint,
    /// Print the whole trail as JSON lines that verify on their own (`verify --file`).
    Export,
}

#[derive(Debug, Subcommand)]
pub enum PlaybookCommand {
    /// Validate every playbook in DIR (default: the configured or embedded playbooks).
    Check { dir: Option<PathBuf> },
}

/// An error with the exit code it deserves.
#[derive(Debug)]
pub enum Failure {
    /// Bad arguments or configuration: exit 2.
    Usage(String),
    /// Something failed while running: exit 1.
    Runtime(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Runtime(e)
    }
}

impl From<crate::config::ConfigError> for Failure {
    fn from(e: crate::config::ConfigError) -> Self {
        Failure::Usage(e.0)
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return output::argument_error(&e),
    };
    match run(cli) {
        Ok(code) => code,
        Err(Failure::Usage(msg)) => {
            errln!("vigil: {}", one_line(&msg));
            ExitCode::from(2)
        }
        Err(Failure::Runtime(e)) => {
            errln!("vigil: {}", one_line(&format!("{e:#}")));
            ExitCode::from(1)
        }
    }
}

fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Everything a command needs, resolved from paths, config and flags.
pub struct Setup {
    pub paths: Paths,
    pub config: Config,
    pub db: PathBuf,
    /// The database was named with --db: a saved case, not the default store.
    pub db_named: bool,
    /// Who may read the database files created.
    pub sharing: crate::file_access::Sharing,
}

impl Setup {
    /// # Errors
    /// Configuration errors.
    pub fn resolve(db: Option<PathBuf>) -> Result<Self, Failure> {
        let paths = Paths::resolve();
        let config = Config::load(&paths.config_file())?;
        let sharing = crate::file_access::Sharing::from_group_name(&config.store.group)
            .map_err(|e| Failure::Usage(format!("{}: {e}", paths.config_file().display())))?;
        let db_named = db.is_some();
        let db = db.unwrap_or_else(|| paths.default_db());
        Ok(Setup {
            paths,
            config,
            db,
            db_named,
            sharing,
        })
    }

    /// # Errors
    /// A connector setting that does not validate (normally caught when the config loads).
    pub fn connectors(&self) -> Result<Connectors, Failure> {
        Connectors::from_config(&self.config.connectors, self.paths.default_blocklist())
            .map_err(|e| Failure::Usage(format!("{}: {e}", self.paths.config_file().display())))
    }

    pub fn model(&self, flag: Option<&Path>) -> Result<Model, crate::engine::model::ModelError> {
        match flag.or(non_empty(&self.config.model.path).map(Path::new)) {
            Some(dir) => Model::load(dir),
            None => Model::embedded(),
        }
    }

    /// # Errors
    /// Broken playbooks (all of them listed, one per line joined).
    pub fn pipeline(&self, model_flag: Option<&Path>) -> Result<Pipeline, Failure> {
        let connectors = self.connectors()?;
        let dir = non_empty(&self.config.playbooks.dir).map(Path::new);
        let playbooks = playbook::load(dir, &connectors).map_err(|errs| {
            Failure::Usage(
                errs.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        let scorer = Scorer::new(self.model(model_flag), self.config.risk);
        if let Some(e) = scorer.model_error() {
            tracing::warn!("alerts will be stored unscored: {e}");
        }
        Ok(Pipeline {
            scorer,
            playbooks: Arc::new(playbooks),
            connectors: Arc::new(connectors),
            incidents: IncidentSource::new(
                Some(self.db.clone()),
                self.config.incidents.rules.clone(),
            ),
        })
    }

    /// What this session loads, with file hashes, for the audit trail.
    ///
    /// # Errors
    /// Broken playbooks.
    pub fn loaded(&self) -> Result<serde_json::Value, Failure> {
        let hash_file = |p: &Path| match std::fs::read(p) {
            Ok(b) => {
                serde_json::json!({"path": p.display().to_string(), "sha256": crate::engine::alert::sha256_hex(&b)})
            }
            Err(_) => {
                serde_json::json!({"path": p.display().to_string(), "sha256": null, "note": "absent: built-in defaults"})
            }
        };
        let pipeline = self.pipeline(None)?;
        Ok(serde_json::json!({
            "config": hash_file(&self.paths.config_file()),
            "keymap": hash_file(&self.paths.keymap_file()),
            "playbooks": pipeline.playbooks.iter().map(|p| serde_json::json!({"name": p.name, "source": p.source, "sha256": p.sha256})).collect::<Vec<_>>(),
            "model": pipeline.scorer.model_record(),
        }))
    }

    pub fn watch(&self, flags: &[PathBuf]) -> Vec<PathBuf> {
        if !flags.is_empty() {
            return flags.to_vec();
        }
        if !self.config.watch.is_empty() {
            return self.config.watch.clone();
        }
        if self.db_named {
            // A saved case opened to look at must not be fed the demo samples.
            return Vec::new();
        }
        vec![paths::shipped_samples()]
    }

    pub fn engine_config(&self, watch: Vec<PathBuf>) -> Result<engine::EngineConfig, Failure> {
        self.create_db()?;
        Ok(engine::EngineConfig {
            db: self.db.clone(),
            watch,
            format: crate::engine::format::Format::Auto,
            format_settings: self
                .config
                .format_settings()
                .map_err(|e| Failure::Usage(e.0))?,
            pipeline: self.pipeline(None)?,
            incident_rules: self.config.incidents.rules.clone(),
            actor: Actor::current(),
            loaded: self.loaded()?,
            enrichment: Some(self.enrichment()?),
        })
    }

    /// The database writer for a one-shot command, with the configured incident window.
    ///
    /// # Errors
    /// The database cannot be opened (named in the message).
    /// This process's one writer on the database. With a pipeline, it can finish proposals of
    /// playbooks that read the incident.
    ///
    /// # Errors
    /// The database cannot be opened.
    pub fn spawn_writer(
        &self,
        ops: tokio::sync::mpsc::Receiver<WriteOp>,
        changed: tokio::sync::watch::Sender<u64>,
        pipeline: Option<&Pipeline>,
    ) -> anyhow::Result<std::thread::JoinHandle<()>> {
        store::spawn_writer(
            self.db.clone(),
            WriterConfig {
                incident_rules: self.config.incidents.rules.clone(),
                actor: Actor::current(),
                playbooks: pipeline.map(|p| (p.playbooks.clone(), p.connectors.clone())),
            },
            ops,
            changed,
        )
        .map_err(|e| anyhow!("{}: {e}", self.db.display()))
    }

    /// # Errors
    /// A bad provider URL or a secrets file others can read (exit 2).
    pub fn enrichment(&self) -> Result<EnrichSetup, Failure> {
        EnrichSetup::from_config(
            &self.config.enrichment,
            &self.paths.data_dir,
            &self.paths.config_dir,
        )
        .map_err(Failure::Usage)
    }
}

/// Log to `vigil.log` in the data directory, never to the terminal. A log this user may not
/// write (another analyst's, on a shared data folder) costs the session its log, not its command.
fn init_logging(paths: &Paths) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    let file = match open_log(paths) {
        Ok(file) => file,
        Err(e) => {
            errln!(
                "vigil: {}: not writing a log this session: {e}",
                paths.data_dir.join("vigil.log").display()
            );
            return None;
        }
    };
    let (writer, guard) = tracing_appender::non_blocking(file);
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_writer(log_lines::SafeLog(writer))
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init()
        .ok()?;
    Some(guard)
}

fn open_log(paths: &Paths) -> anyhow::Result<tracing_appender::rolling::RollingFileAppender> {
    paths.ensure_data_dir()?;
    // The log names alerts and decisions: its owner's alone.
    crate::file_access::create_if_missing(&paths.log_file(), Default::default())?;
    Ok(tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::NEVER)
        .filename_prefix("vigil.log")
        .build(&paths.data_dir)?)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn print_json_line(out: &mut impl Write, v: &serde_json::Value) -> anyhow::Result<()> {
    Ok(output::write_json(out, v)?)
}

fn run(cli: Cli) -> Result<ExitCode, Failure> {
    if cli.version {
        let p = Paths::resolve();
        outln!("vigil {}", env!("CARGO_PKG_VERSION"));
        outln!(
            "config: {} (config.toml, keymap.toml)",
            p.config_dir.display()
        );
        outln!(
            "data:   {} (vigil.db, vigil.log, blocklist.txt)",
            p.data_dir.display()
        );
        outln!("cache:  {}", p.cache_dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    let setup = Setup::resolve(cli.db.clone())?;
    let _log = init_logging(&setup.paths);
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "start");
    match cli.command {
        None => run_tui(&setup, &cli.watch),
        Some(Command::Review { path }) => database::review(&setup, &path),
        Some(Command::Daemon) => daemon(&setup, &cli.watch),
        Some(Command::Bench {
            what:
                BenchCommand::Ingest {
                    alerts,
                    rate,
                    seconds,
                },
        }) => {
            let pipeline = setup.pipeline(None)?;
            let rules = setup.config.incidents.rules.clone();
            let v = runtime()?.block_on(crate::bench::ingest(
                pipeline,
                rules,
                alerts.max(1),
                rate.max(100),
                seconds.max(1),
            ))?;
            output::print_json(&v).map_err(anyhow::Error::from)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Ingest { files, format }) => ingest::ingest(&setup, &files, format),
        Some(Command::Export { .. }) => export(&setup),
        Some(Command::Train(args)) => train_cmd(&setup, *args),
        Some(Command::Eval {
            model,
            data,
            format,
            split,
            threshold,
        }) => eval_cmd(&setup, model.as_deref(), data, format, split, threshold),
        Some(Command::Disposition {
            alert_id,
            verdict,
            reason,
        }) => disposition_cmd(&setup, alert_id, &verdict, reason),
        Some(Command::Bench {
            what:
                BenchCommand::Score {
                    data,
                    format,
                    rows,
                    trees,
                },
        }) => bench_score_cmd(&setup, data, format, rows, trees),
        Some(Command::Score { model, file }) => score_cmd(&setup, model.as_deref(), &file),
        Some(Command::Audit { action: None })
        | Some(Command::Audit {
            action: Some(AuditCommand::Export),
        }) => audit_list(&setup),
        Some(Command::Iocs {
            file,
            defang,
            counts,
        }) => iocs_cmd(&setup, &file, defang, counts),
        Some(Command::Enrich { status: true, .. }) => enrich_status(&setup),
        Some(Command::Enrich { all, offline, .. }) => enrich_cmd(&setup, all, offline),
        Some(Command::Audit {
            action: Some(AuditCommand::Verify { checkpoint, file }),
        }) => audit_verify(&setup, &checkpoint, file.as_deref()),
        Some(Command::Audit {
            action: Some(AuditCommand::Checkpoint),
        }) => audit_checkpoint(&setup),
        Some(Command::Playbook {
            action: PlaybookCommand::Check { dir },
        }) => playbook_check(&setup, dir.as_deref()),
        Some(Command::Actions { all }) => actions_list(&setup, all),
        Some(Command::Approve { id, reason }) => act(&setup, Act::Decide(id, true, reason)),
        Some(Command::Reject { id, reason }) => act(&setup, Act::Decide(id, false, reason)),
        Some(Command::Rollback { id, reason }) => act(&setup, Act::Rollback(id, reason)),
        Some(Command::Edit { id, params, reason }) => {
            let params: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&params)
                .map_err(|e| Failure::Usage(format!("--params: not a JSON object: {e}")))?;
            act(&setup, Act::Edit(id, params, reason))
        }
    }
}

#[cfg(feature = "tui")]
fn run_tui(setup: &Setup, watch: &[PathBuf]) -> Result<ExitCode, Failure> {
    let keymap = crate::tui::keymap::Keymap::load(&setup.paths.keymap_file())
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let cfg = setup.engine_config(setup.watch(watch))?;
    let rt = runtime()?;
    let session = crate::tui::Session::Live(Box::new(cfg));
    rt.block_on(crate::tui::run(session, keymap, setup.db.clone()))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "tui"))]
fn run_tui(_setup: &Setup, _watch: &[PathBuf]) -> Result<ExitCode, Failure> {
    Err(Failure::Usage(
        "this vigil was built without the `tui` feature; use a subcommand (see --help)".into(),
    ))
}

/// Longest a stop may take after SIGTERM before vigil exits anyway. Nothing is lost by exiting
/// early: an uncommitted batch is read again from the checkpoint on the next start.
const STOP_BUDGET: std::time::Duration = std::time::Duration::from_millis(1800);

fn daemon(setup: &Setup, watch: &[PathBuf]) -> Result<ExitCode, Failure> {
    use tokio::signal::unix::{signal, SignalKind};
    let cfg = setup.engine_config(setup.watch(watch))?;
    let rt = runtime()?;
    let damage = rt.block_on(async {
        let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
        let mut usr1 = signal(SignalKind::user_defined1()).context("cannot listen for SIGUSR1")?;
        let mut engine = engine::start(cfg)?;
        tracing::info!(db = %setup.db.display(), "daemon started");
        let mut damaged = engine.store_damaged.clone();
        let mut damage = None;
        let why = loop {
            tokio::select! {
                _ = term.recv() => break "SIGTERM",
                _ = int.recv() => break "SIGINT",
                // `kill -USR1`: one line saying how busy the tailer has been, for an analyst
                // checking that an idle daemon is idle.
                _ = usr1.recv() => { let _ = output::print_json(&engine.activity()); }
                // Nothing asks the engine anything here, but drain its events so it never blocks.
                ev = engine.events.recv() => if ev.is_none() { break "engine stopped" },
                d = damaged.wait_for(Option::is_some) => match d {
                    Ok(d) => {
                        damage = d.clone();
                        break "database damaged";
                    }
                    Err(_) => break "engine stopped",
                },
            }
        };
        let started = std::time::Instant::now();
        let clean = tokio::time::timeout(STOP_BUDGET, engine.shutdown())
            .await
            .is_ok();
        let ms = started.elapsed().as_millis();
        tracing::info!(why, clean, ms, "daemon stopped");
        output::print_json(&serde_json::json!({"stopped": why, "clean": clean, "stop_ms": ms}))?;
        anyhow::Ok(damage)
    })?;
    // Leave without waiting for blocking tasks that outlived the budget.
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
    match damage {
        Some(d) => Err(Failure::Runtime(anyhow!(
            "{}: the database is damaged ({d}); stopped rather than write into it",
            setup.db.display()
        ))),
        None => Ok(ExitCode::SUCCESS),
    }
}

fn open_existing(db: &Path) -> Result<rusqlite::Connection, Failure> {
    if !db.exists() {
        return Err(Failure::Usage(format!(
            "{}: no such database",
            db.display()
        )));
    }
    store::open_read_only(db).map_err(|e| Failure::Runtime(anyhow!("{}: {e}", db.display())))
}

fn export(setup: &Setup) -> Result<ExitCode, Failure> {
    let conn = open_existing(&setup.db)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    store::export(&conn, |doc| print_json_line(&mut out, &doc))?;
    out.flush().map_err(anyhow::Error::from)?;
    Ok(ExitCode::SUCCESS)
}

fn train_cmd(setup: &Setup, a: TrainArgs) -> Result<ExitCode, Failure> {
    let cfg = &setup.config.train;
    let mut p = cfg.params();
    p.trees = a.trees.unwrap_or(p.trees);
    p.max_depth = a.max_depth.unwrap_or(p.max_depth);
    p.feature_fraction = a.feature_fraction.unwrap_or(p.feature_fraction);
    p.sample_fraction = a.sample_fraction.unwrap_or(p.sample_fraction);
    p.min_weight_leaf = a.min_weight_leaf.unwrap_or(p.min_weight_leaf);
    p.min_weight_split = a.min_weight_split.unwrap_or(p.min_weight_split);
    p.seed = a.seed.unwrap_or(p.seed);
    p.calibration = a.calibration.unwrap_or(p.calibration);
    let format = a.format.unwrap_or(if a.label.is_some() {
        InputFormat::Csv
    } else {
        InputFormat::Alerts
    });
    if a.data.is_empty() && !a.from_db {
        return Err(Failure::Usage(
            "give --data FILE... and/or --from-db".into(),
        ));
    }
    if format == InputFormat::Csv && a.label.is_none() {
        return Err(Failure::Usage("--format csv needs --label COLUMN".into()));
    }
    let threshold = a.threshold.unwrap_or(cfg.threshold);
    if !(0.0..=1.0).contains(&threshold) {
        return Err(Failure::Usage("--threshold must be between 0 and 1".into()));
    }
    if a.from_db && !setup.db.exists() {
        return Err(Failure::Usage(format!(
            "{}: no such database",
            setup.db.display()
        )));
    }
    let req = train::TrainRequest {
        data: a.data,
        format,
        label_column: a.label,
        benign_values: a.benign,
        from_db: a.from_db.then(|| setup.db.clone()),
        params: p,
        read: ReadOptions {
            holdout_every: a.holdout_every.unwrap_or(cfg.holdout_every),
            max_bad_fraction: a.max_bad_fraction.unwrap_or(cfg.max_bad_fraction),
            incident_rules: setup.config.incidents.rules.clone(),
        },
        categorical: a.categorical.unwrap_or(cfg.categorical),
        one_hot_max: cfg.one_hot_max,
        threshold,
        name: a.name,
    };
    let outcome = train::run(&req)?;
    report_bad_rows(&outcome.bad_rows);
    let mut model = outcome.model;
    model.origin = a.out.display().to_string();
    model.save(&a.out)?;
    let mut summary = outcome.summary;
    if let serde_json::Value::Object(m) = &mut summary {
        m.insert("out".into(), serde_json::json!(a.out.display().to_string()));
    }
    output::print_json(&summary).map_err(anyhow::Error::from)?;
    Ok(ExitCode::SUCCESS)
}

/// Skipped rows go to stderr (the first 20, then a count), stdout keeps its one JSON line.
fn report_bad_rows(bad: &[String]) {
    for b in bad.iter().take(20) {
        errln!("vigil: skipped {b}");
    }
    if bad.len() > 20 {
        errln!("vigil: skipped {} more bad rows", bad.len() - 20);
    }
}

fn eval_cmd(
    setup: &Setup,
    model: Option<&Path>,
    data: Vec<PathBuf>,
    format: Option<InputFormat>,
    split: EvalSplit,
    threshold: Option<f64>,
) -> Result<ExitCode, Failure> {
    let m = setup.model(model).map_err(|e| Failure::Runtime(e.into()))?;
    let req = EvalRequest {
        data,
        format,
        split,
        threshold,
        max_bad_fraction: setup.config.train.max_bad_fraction,
        incident_rules: setup.config.incidents.rules.clone(),
    };
    let e = engine::eval::run(&m, &req)?;
    report_bad_rows(&e.bad_rows);
    let mut v = serde_json::to_value(&e.metrics).map_err(anyhow::Error::from)?;
    if let serde_json::Value::Object(o) = &mut v {
        o.insert("model".into(), serde_json::json!(m.origin));
        o.insert("bad_rows".into(), serde_json::json!(e.bad_rows.len()));
    }
    output::print_json(&v).map_err(anyhow::Error::from)?;
    Ok(ExitCode::SUCCESS)
}

fn disposition_cmd(
    setup: &Setup,
    alert_id: i64,
    verdict: &str,
    reason: String,
) -> Result<ExitCode, Failure> {
    let Some(verdict) = Verdict::parse(verdict) else {
        return Err(Failure::Usage(format!(
            "verdict {verdict:?} is not one of tp, fp, benign"
        )));
    };
    if reason.trim().is_empty() {
        return Err(Failure::Usage("--reason must not be empty".into()));
    }
    let _ = open_existing(&setup.db)?;
    let row = with_writer(setup, |tx, actor| async move {
        engine::dispose(&tx, &actor, alert_id, verdict, reason).await
    })?;
    output::print_json(&row).map_err(anyhow::Error::from)?;
    Ok(ExitCode::SUCCESS)
}

/// Run `f` against a writer on the configured database, then let the writer drain.
fn with_writer<T, F, Fut>(setup: &Setup, f: F) -> Result<T, Failure>
where
    F: FnOnce(tokio::sync::mpsc::Sender<WriteOp>, Actor) -> Fut,
    Fut: std::future::Future<Output = Result<T, store::DecisionError>>,
{
    let rt = runtime()?;
    let r = rt.block_on(async {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let (changed, _keep) = tokio::sync::watch::channel(0);
        let actor = Actor::current();
        let writer = store::spawn_writer(
            setup.db.clone(),
            WriterConfig {
                incident_rules: setup.config.incidents.rules.clone(),
                actor: actor.clone(),
                playbooks: None,
            },
            rx,
            changed,
        )
        .map_err(|e| anyhow!("{}: {e}", setup.db.display()))?;
        let r = f(tx, actor).await;
        let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        r.map_err(anyhow::Error::from)
    })?;
    Ok(r)
}

fn bench_score_cmd(
    setup: &Setup,
    data: Option<PathBuf>,
    format: Option<InputFormat>,
    rows: usize,
    trees: Option<usize>,
) -> Result<ExitCode, Failure> {
    let (data, format) = match (data, format) {
        (Some(d), f) => (d, f.unwrap_or(InputFormat::Alerts)),
        (None, Some(_)) => return Err(Failure::Usage("--format needs --data".into())),
        (None, None) => engine::bench::default_data(),
    };
    let cfg = &setup.config.train;
    let mut params = cfg.params();
    params.trees = trees.unwrap_or(params.trees);
    let req = engine::bench::ScoreBench {
        train: train::TrainRequest {
            data: vec![data],
            format,
            label_column: None,
            benign_values: vec![],
            from_db: None,
            params,
            read: ReadOptions {
                holdout_every: 0,
                max_bad_fraction: cfg.max_bad_fraction,
                incident_rules: setup.config.incidents.rules.clone(),
            },
            categorical: cfg.categorical,
            one_hot_max: cfg.one_hot_max,
            threshold: cfg.threshold,
            name: "bench".into(),
        },
        rows,
    };
    let v = engine::bench::score(&req)?;
    output::print_json(&v).map_err(anyhow::Error::from)?;
    Ok(if v["class_mismatches"] == 0 {
        ExitCode::SUCCESS
    } else {
        errln!("vigil: the compiled forest and linfa disagree on some rows");
        ExitCode::from(1)
    })
}

fn score_cmd(setup: &Setup, model: Option<&Path>, file: &Path) -> Result<ExitCode, Failure> {
    use crate::engine::normalize::Parsed;
    let m = setup.model(model).map_err(|e| Failure::Runtime(e.into()))?;
    m.check_features(features::FEATURES)
        .map_err(|e| Failure::Runtime(e.into()))?;
    let scorer = Scorer::new(Ok(m), setup.config.risk);
    let formats = setup
        .config
        .format_settings()
        .map_err(|e| Failure::Usage(e.0))?;
    let open = || {
        AlertFile::open(file, crate::engine::format::Format::Auto, &formats)
            .with_context(|| format!("{}: cannot read", file.display()))
    };
    let non_blank = |r: &crate::engine::pipeline::RawLine| {
        r.refused.is_some() || !r.bytes.iter().all(u8::is_ascii_whitespace)
    };
    // Incident size and rate need the whole file in time order: a first pass places every
    // alert (time and incident key only), the second scores them as it reads them again.
    let rules = &setup.config.incidents.rules;
    let mut placements = incident::Placements::default();
    let mut first = open()?;
    let format = first.format().clone();
    let mut records = 0usize;
    for r in first.by_ref().filter(non_blank) {
        records += 1;
        if let Ok(Parsed::Alert(a, _)) = format.parse_record(&r) {
            placements.add(rules, &a);
        }
    }
    let mut figures = placements.figures().into_iter();
    let mut second = open()?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for r in second.by_ref().filter(non_blank).take(records) {
        let v = match format.parse_record(&r) {
            Ok(Parsed::Alert(a, _)) => {
                // The file changed between the passes: score with what was placed.
                let f = figures
                    .next()
                    .unwrap_or(crate::engine::incident::IncidentFigures::ALONE);
                let s = scorer.score(&a, &FeatureContext::with_incident(f));
                serde_json::json!({"line": r.line_no, "rule": {"name": a.rule_name}, "event": {"module": a.module},
                                   "vigil": store::score_json(&s)})
            }
            Ok(Parsed::Skipped) => continue,
            Err(e) => serde_json::json!({"line": r.line_no,
                                         "error": format!("{}:{}: {}", file.display(), r.line_no, e.0)}),
        };
        print_json_line(&mut out, &v)?;
    }
    out.flush().map_err(anyhow::Error::from)?;
    Ok(read_to_end(file, &first))
}

/// Exit 0 when `file` was read to its end, else say why not on stderr and exit 1.
fn read_to_end(file: &Path, records: &AlertFile) -> ExitCode {
    match records.unread() {
        None => ExitCode::SUCCESS,
        Some(why) => {
            errln!("vigil: {}", one_line(&format!("{}: {why}", file.display())));
            ExitCode::from(1)
        }
    }
}

fn iocs_cmd(setup: &Setup, file: &Path, defang: bool, counts: bool) -> Result<ExitCode, Failure> {
    use crate::engine::ioc;
    use crate::engine::normalize::Parsed;
    let formats = setup
        .config
        .format_settings()
        .map_err(|e| Failure::Usage(e.0))?;
    let mut records = AlertFile::open(file, crate::engine::format::Format::Auto, &formats)
        .with_context(|| format!("{}: cannot read", file.display()))?;
    let format = records.format().clone();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut tally: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    let mut alerts = 0u64;
    for l in records.by_ref() {
        if l.refused.is_none() && l.bytes.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let v = match format.parse_record(&l) {
            Ok(Parsed::Alert(a, _)) => {
                alerts += 1;
                let found = ioc::extract(&a);
                if counts {
                    for i in &found {
                        *tally.entry(i.kind.label().to_string()).or_default() += 1;
                        if let Some(c) = i.class {
                            *tally
                                .entry(format!("{}/{}", i.kind.label(), c.label()))
                                .or_default() += 1;
                        }
                    }
                    continue;
                }
                let list: Vec<serde_json::Value> = found
                    .iter()
                    .map(|i| {
                        let mut v = serde_json::to_value(i).unwrap_or_default();
                        if defang {
                            v["defanged"] = serde_json::json!(ioc::defang(i.kind, &i.value));
                        }
                        v
                    })
                    .collect();
                serde_json::json!({"line": l.line_no, "event": {"module": a.module},
                                   "rule": {"name": a.rule_name}, "iocs": list})
            }
            Ok(Parsed::Skipped) => continue,
            Err(e) => {
                serde_json::json!({"line": l.line_no, "error": format!("{}:{}: {}", file.display(), l.line_no, e.0)})
            }
        };
        print_json_line(&mut out, &v)?;
    }
    if counts {
        print_json_line(
            &mut out,
            &serde_json::json!({"file": file.display().to_string(), "alerts": alerts, "iocs": tally}),
        )?;
    }
    out.flush().map_err(anyhow::Error::from)?;
    Ok(read_to_end(file, &records))
}

fn enrich_cmd(setup: &Setup, again: bool, offline: bool) -> Result<ExitCode, Failure> {
    let _ = open_existing(&setup.db)?;
    let mut es = setup.enrichment()?;
    es.offline |= offline;
    let scorer = setup.pipeline(None)?.scorer;
    let rt = runtime()?;
    let summary = rt.block_on(async {
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        let (changed, _keep) = tokio::sync::watch::channel(0);
        let writer = setup.spawn_writer(rx, changed, None)?;
        let reader = Arc::new(std::sync::Mutex::new(
            store::open(&setup.db).map_err(|e| anyhow!("{}: {e}", setup.db.display()))?,
        ));
        let sources = es
            .build(Some(reader.clone()), Some(tx.clone()))
            .map_err(|e| anyhow!(e))?;
        let enricher = Enricher {
            sources: Arc::new(sources),
            scorer,
            writer: tx.clone(),
            reader,
            health: store::StoreHealth::new(),
        };
        let summary = enricher.run_once(again).await;
        let feeds = enricher
            .sources
            .feeds
            .lock()
            .map(|f| (f.feeds().len(), f.entries(), f.errors.clone()))
            .unwrap_or_default();
        drop(enricher);
        drop(tx);
        let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        anyhow::Ok((summary, feeds))
    })?;
    let (summary, (files, entries, errors)) = summary;
    for e in &errors {
        errln!("vigil: feed {e}");
    }
    let mut v = serde_json::to_value(&summary).map_err(anyhow::Error::from)?;
    v["feeds"] = serde_json::json!({"files": files, "entries": entries});
    let looked = summary.cache_hits + summary.cache_misses;
    v["cache_hit_rate"] = serde_json::json!(if looked == 0 {
        None
    } else {
        Some((summary.cache_hits as f64 / looked as f64 * 1000.0).round() / 1000.0)
    });
    output::print_json(&v).map_err(anyhow::Error::from)?;
    Ok(ExitCode::SUCCESS)
}

fn enrich_status(setup: &Setup) -> Result<ExitCode, Failure> {
    use crate::engine::enrich::providers::ProviderId;
    let es = setup.enrichment()?;
    let conn = if setup.db.exists() {
        Some(open_existing(&setup.db)?)
    } else {
        None
    };
    let now = chrono::Utc::now();
    let snapshots = conn
        .as_ref()
        .and_then(|c| store::provider_status(c).ok())
        .unwrap_or_default();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for p in ProviderId::ALL {
        let settings = es.providers.iter().find(|s| s.id == *p);
        let used: Vec<serde_json::Value> = settings
            .map(|s| {
                s.limits
                    .iter()
                    .map(|l| {
                        let since = now - chrono::Duration::seconds(l.window.as_secs() as i64);
                        let n = conn
                            .as_ref()
                            .and_then(|c| store::provider_usage_since(c, p.name(), since).ok())
                            .map_or(0, |v| v.len());
                        serde_json::json!({"limit": l.label(), "used": n})
                    })
                    .collect()
            })
            .unwrap_or_default();
        let snap = snapshots.iter().find(|(name, _, _)| name == p.name());
        let key = !p.needs_key() || es.secrets.get(p.name()).is_some();
        let v = serde_json::json!({
            "provider": p.name(),
            "enabled": settings.is_some() && !es.offline,
            "key": if key { "present" } else { "missing" },
            "budget": used,
            "queue_depth": snap.and_then(|s| s.1.get("queue_depth").cloned()),
            "in_flight": snap.and_then(|s| s.1.get("in_flight").cloned()),
            "last_error": snap.and_then(|s| s.1.get("last_error").cloned()),
            "disabled": snap.and_then(|s| s.1.get("disabled").cloned()),
            "as_of": snap.map(|s| s.2.clone()),
        });
        print_json_line(&mut out, &v)?;
    }
    out.flush().map_err(anyhow::Error::from)?;
    Ok(ExitCode::SUCCESS)
}

fn audit_list(setup: &Setup) -> Result<ExitCode, Failure> {
    let conn = open_existing(&setup.db)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    audit::for_each(&conn, |r| {
        print_json_line(&mut out, &serde_json::to_value(&r)?)
    })?;
    out.flush().map_err(anyhow::Error::from)?;
    Ok(ExitCode::SUCCESS)
}

fn audit_verify(
    setup: &Setup,
    checkpoints: &[audit::Checkpoint],
    file: Option<&Path>,
) -> Result<ExitCode, Failure> {
    let v = match file {
        Some(f) => {
            let text = std::fs::read(f)
                .map_err(|e| Failure::Runtime(anyhow!("{}: cannot read: {e}", f.display())))?;
            audit::verify_export(&text, checkpoints)
        }
        None => audit::verify(&open_existing(&setup.db)?, checkpoints)?,
    };
    match &v.first_bad {
        None => {
            output::print_json(&serde_json::json!({"intact": true, "records": v.records, "checkpoints_checked": v.checkpoints_checked,
                                   "head": {"seq": v.head_seq, "hash": v.head_hash}}))
            .map_err(anyhow::Error::from)?;
            Ok(ExitCode::SUCCESS)
        }
        Some((seq, why)) => {
            output::print_json(&serde_json::json!({"intact": false, "records": v.records, "first_bad": {"seq": seq, "reason": why}}))
            .map_err(anyhow::Error::from)?;
            errln!("vigil: audit record {seq} does not verify: {why}");
            Ok(ExitCode::from(1))
        }
    }
}

fn audit_checkpoint(setup: &Setup) -> Result<ExitCode, Failure> {
    let cp = with_responder(setup, async |r| {
        let actor = r.actor.clone();
        r.record(move |c| {
            audit::checkpoint(c, &actor)
                .map(|cp| serde_json::json!(cp))
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| anyhow!(e))
    })?;
    output::print_json(&cp).map_err(anyhow::Error::from)?;
    Ok(ExitCode::SUCCESS)
}

fn playbook_check(setup: &Setup, dir: Option<&Path>) -> Result<ExitCode, Failure> {
    let connectors = setup.connectors()?;
    let dir = dir.or(non_empty(&setup.config.playbooks.dir).map(Path::new));
    match playbook::load(dir, &connectors) {
        Ok(pbs) => {
            for p in &pbs {
                outln!("ok {} ({}, {} steps)", p.name, p.source, p.steps.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(errs) => {
            for e in &errs {
                errln!("{e}");
            }
            Ok(ExitCode::from(1))
        }
    }
}

fn actions_list(setup: &Setup, all: bool) -> Result<ExitCode, Failure> {
    let conn = open_existing(&setup.db)?;
    let rows = store::actions(&conn, if all { None } else { Some("proposed") })
        .map_err(anyhow::Error::from)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for r in rows {
        print_json_line(
            &mut out,
            &serde_json::to_value(&r).map_err(anyhow::Error::from)?,
        )?;
    }
    out.flush().map_err(anyhow::Error::from)?;
    Ok(ExitCode::SUCCESS)
}

enum Act {
    Decide(i64, bool, String),
    Edit(i64, serde_json::Map<String, serde_json::Value>, String),
    Rollback(i64, String),
}

/// Run `f` with a responder on its own writer for this database, then stop the writer.
fn with_responder<T>(
    setup: &Setup,
    f: impl AsyncFnOnce(&crate::engine::respond::Responder) -> anyhow::Result<T>,
) -> Result<T, Failure> {
    let _ = open_existing(&setup.db)?;
    let connectors = Arc::new(setup.connectors()?);
    let rt = runtime()?;
    let out = rt.block_on(async {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let (changed, _keep) = tokio::sync::watch::channel(0);
        let actor = Actor::current();
        let writer = setup.spawn_writer(rx, changed, None)?;
        let leases = crate::engine::lease::Leases::beside(&setup.db);
        let responder = crate::engine::respond::Responder::new(tx, connectors, actor, leases);
        responder.recover().await.map_err(|e| anyhow!(e))?;
        let r = f(&responder).await;
        drop(responder);
        let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        r
    })?;
    Ok(out)
}

/// `approve`/`rollback` found the action's execution lease held by another live process.
const EXIT_LEASED: u8 = 3;

fn act(setup: &Setup, what: Act) -> Result<ExitCode, Failure> {
    let reason_of = |a: &Act| match a {
        Act::Decide(_, _, r) | Act::Edit(_, _, r) | Act::Rollback(_, r) => r.trim().is_empty(),
    };
    if reason_of(&what) {
        return Err(Failure::Usage("--reason must not be empty".into()));
    }
    let row = with_responder(setup, async |r| {
        let none = |_: &crate::engine::store::ActionRow| {};
        Ok(match what {
            Act::Decide(id, approve, reason) => r.decide(id, approve, reason, &none).await,
            Act::Edit(id, params, reason) => r.edit(id, params, reason).await,
            Act::Rollback(id, reason) => r.rollback(id, reason, &none).await,
        })
    })?;
    let row = match row {
        Err(e @ store::DecisionError::Leased { .. }) => {
            errln!("vigil: {}", one_line(&e.to_string()));
            return Ok(ExitCode::from(EXIT_LEASED));
        }
        other => other.map_err(anyhow::Error::from)?,
    };
    output::print_json(&row).map_err(anyhow::Error::from)?;
    Ok(
        if matches!(
            row.status.as_str(),
            "failed" | "unknown" | "rollback_failed" | "rollback_unknown"
        ) {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        },
    )
}
