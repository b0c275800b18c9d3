//! The command line: parses arguments, builds the engine's parts from config, and runs one
//! command. Errors are one line on stderr; exit 2 for usage and configuration errors, 1 for
//! failures at run time.

use crate::config::{non_empty, Config};
use crate::engine::connector::Connectors;
use crate::engine::model::{Model, ModelCard, TrainParams};
use crate::engine::pipeline::{read_maybe_gz, split_lines, Pipeline};
use crate::engine::score::{Bands, Scorer};
use crate::engine::store::{self, IngestSummary, WriteOp, WriterConfig};
use crate::engine::{self, audit, features, metrics, playbook, train};
use crate::identity::Actor;
use crate::paths::{self, Paths};
use anyhow::{anyhow, Context};
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

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
    /// shipped samples.
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
    /// Read files once, store their alerts, print a JSON summary.
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
    /// Train a random forest on labelled alerts and write a model directory.
    Train {
        /// Labelled alerts as JSON lines: {"label": "malicious"|"benign", "alert": {...}}.
        #[arg(long, required = true, num_args = 1..)]
        data: Vec<PathBuf>,
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        #[arg(long)]
        trees: Option<usize>,
        #[arg(long)]
        max_depth: Option<usize>,
        #[arg(long)]
        seed: Option<u64>,
        /// Name written into the model card.
        #[arg(long, default_value = "custom")]
        name: String,
    },
    /// Score the alerts in a file and print one JSON line per alert.
    Score {
        /// Model directory (default: config, else the embedded model).
        #[arg(long, value_name = "DIR")]
        model: Option<PathBuf>,
        file: PathBuf,
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
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain; exit 1 naming the first bad record.
    Verify,
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
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(Failure::Usage(msg)) => {
            eprintln!("vigil: {}", one_line(&msg));
            ExitCode::from(2)
        }
        Err(Failure::Runtime(e)) => {
            eprintln!("vigil: {}", one_line(&format!("{e:#}")));
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
}

impl Setup {
    /// # Errors
    /// Configuration errors.
    pub fn resolve(db: Option<PathBuf>) -> Result<Self, Failure> {
        let paths = Paths::resolve();
        let config = Config::load(&paths.config_file())?;
        let db = db.unwrap_or_else(|| paths.default_db());
        Ok(Setup { paths, config, db })
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
        })
    }

    pub fn watch(&self, flags: &[PathBuf]) -> Vec<PathBuf> {
        if !flags.is_empty() {
            return flags.to_vec();
        }
        if !self.config.watch.is_empty() {
            return self.config.watch.clone();
        }
        vec![paths::shipped_samples()]
    }

    pub fn engine_config(&self, watch: Vec<PathBuf>) -> Result<engine::EngineConfig, Failure> {
        Ok(engine::EngineConfig {
            db: self.db.clone(),
            watch,
            format: crate::engine::format::Format::Auto,
            pipeline: self.pipeline(None)?,
            incident_rules: self.config.incidents.rules.clone(),
            actor: Actor::current(),
        })
    }
}

/// Log to `vigil.log` in the data directory, never to the terminal.
fn init_logging(paths: &Paths) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    paths.ensure_data_dir().ok()?;
    let file = tracing_appender::rolling::never(&paths.data_dir, "vigil.log");
    let (writer, guard) = tracing_appender::non_blocking(file);
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init()
        .ok()?;
    Some(guard)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn print_json_line(out: &mut impl Write, v: &serde_json::Value) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, v)?;
    out.write_all(b"\n")?;
    Ok(())
}

fn run(cli: Cli) -> Result<ExitCode, Failure> {
    if cli.version {
        let p = Paths::resolve();
        println!("vigil {}", env!("CARGO_PKG_VERSION"));
        println!(
            "config: {} (config.toml, keymap.toml)",
            p.config_dir.display()
        );
        println!(
            "data:   {} (vigil.db, vigil.log, blocklist.txt)",
            p.data_dir.display()
        );
        println!("cache:  {}", p.cache_dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    let setup = Setup::resolve(cli.db.clone())?;
    let _log = init_logging(&setup.paths);
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "start");
    match cli.command {
        None => run_tui(&setup, &cli.watch),
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
            println!("{v}");
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Ingest { files, format }) => ingest(&setup, &files, format),
        Some(Command::Export { .. }) => export(&setup),
        Some(Command::Train {
            data,
            out,
            trees,
            max_depth,
            seed,
            name,
        }) => {
            let mut p = TrainParams::default();
            p.trees = trees.unwrap_or(p.trees);
            p.max_depth = max_depth.unwrap_or(p.max_depth);
            p.seed = seed.unwrap_or(p.seed);
            train_cmd(&data, &out, p, &name)
        }
        Some(Command::Score { model, file }) => score_cmd(&setup, model.as_deref(), &file),
        Some(Command::Audit { action: None }) => audit_list(&setup),
        Some(Command::Audit {
            action: Some(AuditCommand::Verify),
        }) => audit_verify(&setup),
        Some(Command::Playbook {
            action: PlaybookCommand::Check { dir },
        }) => playbook_check(&setup, dir.as_deref()),
        Some(Command::Actions { all }) => actions_list(&setup, all),
        Some(Command::Approve { id, reason }) => decide(&setup, id, true, reason),
        Some(Command::Reject { id, reason }) => decide(&setup, id, false, reason),
    }
}

#[cfg(feature = "tui")]
fn run_tui(setup: &Setup, watch: &[PathBuf]) -> Result<ExitCode, Failure> {
    let keymap = crate::tui::keymap::Keymap::load(&setup.paths.keymap_file())
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let cfg = setup.engine_config(setup.watch(watch))?;
    let rt = runtime()?;
    rt.block_on(crate::tui::run(cfg, keymap, setup.db.clone()))?;
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
    rt.block_on(async {
        let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
        let mut engine = engine::start(cfg)?;
        tracing::info!(db = %setup.db.display(), "daemon started");
        let why = loop {
            tokio::select! {
                _ = term.recv() => break "SIGTERM",
                _ = int.recv() => break "SIGINT",
                // Nothing asks the engine anything here, but drain its events so it never blocks.
                ev = engine.events.recv() => if ev.is_none() { break "engine stopped" },
            }
        };
        let started = std::time::Instant::now();
        let clean = tokio::time::timeout(STOP_BUDGET, engine.shutdown())
            .await
            .is_ok();
        let ms = started.elapsed().as_millis();
        tracing::info!(why, clean, ms, "daemon stopped");
        println!(
            "{}",
            serde_json::json!({"stopped": why, "clean": clean, "stop_ms": ms})
        );
        anyhow::Ok(())
    })?;
    // Leave without waiting for blocking tasks that outlived the budget.
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
    Ok(ExitCode::SUCCESS)
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

/// Lines per batch in `vigil ingest`: bounds memory on big files.
const INGEST_BATCH_LINES: usize = 20_000;

fn ingest(
    setup: &Setup,
    files: &[PathBuf],
    forced: crate::engine::format::Format,
) -> Result<ExitCode, Failure> {
    let pipeline = setup.pipeline(None)?;
    let rt = runtime()?;
    let summary = rt.block_on(async {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let (changed, _keep) = tokio::sync::watch::channel(0);
        let writer = store::spawn_writer(
            setup.db.clone(),
            WriterConfig {
                incident_rules: setup.config.incidents.rules.clone(),
                actor: Actor::current(),
            },
            rx,
            changed,
        )
        .map_err(|e| anyhow!("{}: {e}", setup.db.display()))?;
        let mut total = IngestSummary::default();
        for f in files {
            let bytes = read_maybe_gz(f)?;
            let label = f.display().to_string();
            let format = crate::engine::format::FileFormat::detect(
                &bytes[..bytes.len().min(64 * 1024)],
                forced,
            );
            if !format.is_line_oriented() {
                let p = pipeline.clone();
                let (l, fm) = (label.clone(), format.clone());
                let batch =
                    tokio::task::spawn_blocking(move || p.process_document(&l, &fm, &bytes))
                        .await?;
                let (reply, done) = tokio::sync::oneshot::channel();
                tx.send(WriteOp::Ingest(batch, Some(reply)))
                    .await
                    .map_err(|_| anyhow!("database writer stopped"))?;
                total.add(
                    done.await
                        .map_err(|_| anyhow!("database writer stopped"))??
                        .summary(),
                );
                continue;
            }
            let (mut lines, used) = split_lines(&bytes, 0, 1);
            if used < bytes.len() {
                // A last line without a newline is still a whole line in a one-pass read.
                lines.push(crate::engine::pipeline::RawLine {
                    byte_offset: used as u64,
                    line_no: lines.len() as u64 + 1,
                    bytes: bytes[used..].to_vec(),
                });
            }
            while !lines.is_empty() {
                let rest = lines.split_off(lines.len().min(INGEST_BATCH_LINES));
                let chunk = std::mem::replace(&mut lines, rest);
                let p = pipeline.clone();
                let (l, fm) = (label.clone(), format.clone());
                let batch = tokio::task::spawn_blocking(move || p.process(&l, &fm, chunk)).await?;
                let (reply, done) = tokio::sync::oneshot::channel();
                tx.send(WriteOp::Ingest(batch, Some(reply)))
                    .await
                    .map_err(|_| anyhow!("database writer stopped"))?;
                let s = done
                    .await
                    .map_err(|_| anyhow!("database writer stopped"))??;
                total.add(s.summary());
            }
        }
        drop(tx);
        let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        anyhow::Ok(total)
    })?;
    println!(
        "{}",
        serde_json::to_string(&summary).map_err(anyhow::Error::from)?
    );
    Ok(ExitCode::SUCCESS)
}

fn export(setup: &Setup) -> Result<ExitCode, Failure> {
    let conn = open_existing(&setup.db)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    store::export(&conn, |doc| print_json_line(&mut out, &doc))?;
    out.flush().map_err(anyhow::Error::from)?;
    Ok(ExitCode::SUCCESS)
}

fn train_cmd(
    data: &[PathBuf],
    out: &Path,
    params: TrainParams,
    name: &str,
) -> Result<ExitCode, Failure> {
    let mut set = train::Labelled::default();
    for f in data {
        train::read_labelled_alerts(f, &mut set)?;
    }
    for b in set.bad_rows.iter().take(20) {
        eprintln!("vigil: skipped {b}");
    }
    let names: Vec<String> = features::FEATURES.iter().map(|s| s.to_string()).collect();
    let (mut xtr, mut ytr, mut xte, mut yte) = (vec![], vec![], vec![], vec![]);
    for ((x, y), t) in set.x.into_iter().zip(set.y).zip(set.test) {
        if t {
            xte.push(x);
            yte.push(y);
        } else {
            xtr.push(x);
            ytr.push(y);
        }
    }
    let started = std::time::Instant::now();
    let forest = train::fit_forest(&xtr, &ytr, &names, &params)?;
    let secs = started.elapsed().as_secs_f64();
    let m = (!xte.is_empty()).then(|| {
        let scores: Vec<f64> = xte.iter().map(|x| forest.predict_proba(x)).collect();
        metrics::evaluate(&scores, &yte, 0.5)
    });
    let card = ModelCard {
        name: name.to_string(),
        kind: "random_forest (bagged linfa-trees, per-tree feature subspace)".into(),
        vigil_version: env!("CARGO_PKG_VERSION").into(),
        created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        label_positive: "malicious".into(),
        features: names,
        parameters: params,
        sources: set.sources,
        train_rows: xtr.len(),
        test_rows: xte.len(),
        training_seconds: (secs * 1000.0).round() / 1000.0,
        metrics: m.clone(),
        notes: "Metrics are on held-out rows (split field, or every fifth line) never seen in training.".into(),
    };
    let model = Model {
        card,
        forest,
        origin: out.display().to_string(),
    };
    model.save(out)?;
    let summary = serde_json::json!({
        "out": out.display().to_string(), "train_rows": xtr.len(), "test_rows": xte.len(),
        "trees": model.forest.trees.len(), "nodes": model.forest.node_count(),
        "training_seconds": model.card.training_seconds, "metrics": m,
    });
    println!("{summary}");
    Ok(ExitCode::SUCCESS)
}

fn score_cmd(setup: &Setup, model: Option<&Path>, file: &Path) -> Result<ExitCode, Failure> {
    let m = setup.model(model).map_err(|e| Failure::Runtime(e.into()))?;
    m.check_features(features::FEATURES)
        .map_err(|e| Failure::Runtime(e.into()))?;
    let scorer = Scorer::new(Ok(m), setup.config.risk);
    let bytes = read_maybe_gz(file)?;
    let (lines, _) = split_lines(&bytes, 0, 1);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for l in lines {
        if l.bytes.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let v = match crate::engine::normalize::normalize_line(&l.bytes) {
            Ok(crate::engine::normalize::Parsed::Alert(a, _)) => {
                let s = scorer.score(&a);
                serde_json::json!({"line": l.line_no, "rule": {"name": a.rule_name}, "event": {"module": a.module},
                                   "vigil": store::score_json(&s)})
            }
            Ok(crate::engine::normalize::Parsed::Skipped) => continue,
            Err(e) => {
                serde_json::json!({"line": l.line_no, "error": format!("{}:{}: {}", file.display(), l.line_no, e.0)})
            }
        };
        print_json_line(&mut out, &v)?;
    }
    out.flush().map_err(anyhow::Error::from)?;
    let _ = Bands::default();
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

fn audit_verify(setup: &Setup) -> Result<ExitCode, Failure> {
    let conn = open_existing(&setup.db)?;
    let v = audit::verify(&conn)?;
    match &v.first_bad {
        None => {
            println!(
                "{}",
                serde_json::json!({"intact": true, "records": v.records, "head": {"seq": v.head_seq, "hash": v.head_hash}})
            );
            Ok(ExitCode::SUCCESS)
        }
        Some((seq, why)) => {
            println!(
                "{}",
                serde_json::json!({"intact": false, "records": v.records, "first_bad": {"seq": seq, "reason": why}})
            );
            eprintln!("vigil: audit record {seq} does not verify: {why}");
            Ok(ExitCode::from(1))
        }
    }
}

fn playbook_check(setup: &Setup, dir: Option<&Path>) -> Result<ExitCode, Failure> {
    let connectors = setup.connectors()?;
    let dir = dir.or(non_empty(&setup.config.playbooks.dir).map(Path::new));
    match playbook::load(dir, &connectors) {
        Ok(pbs) => {
            for p in &pbs {
                println!("ok {} ({}, {} steps)", p.name, p.source, p.steps.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(errs) => {
            for e in &errs {
                eprintln!("{e}");
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

fn decide(setup: &Setup, id: i64, approve: bool, reason: String) -> Result<ExitCode, Failure> {
    if reason.trim().is_empty() {
        return Err(Failure::Usage("--reason must not be empty".into()));
    }
    let _ = open_existing(&setup.db)?;
    let connectors = setup.connectors()?;
    let rt = runtime()?;
    let row = rt.block_on(async {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let (changed, _keep) = tokio::sync::watch::channel(0);
        let actor = Actor::current();
        let writer = store::spawn_writer(
            setup.db.clone(),
            WriterConfig {
                incident_rules: setup.config.incidents.rules.clone(),
                actor: actor.clone(),
            },
            rx,
            changed,
        )
        .map_err(|e| anyhow!("{}: {e}", setup.db.display()))?;
        let r = engine::decide_and_run(&tx, &connectors, &actor, id, approve, reason, |_| {}).await;
        drop(tx);
        let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        r.map_err(anyhow::Error::from)
    })?;
    println!(
        "{}",
        serde_json::to_value(&row).map_err(anyhow::Error::from)?
    );
    Ok(if row.status == "failed" {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
