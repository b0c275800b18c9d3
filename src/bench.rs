//! `vigil bench ...`: measurements that go into the README, run by the real engine on this
//! machine. Owns load generation and timing only; everything measured is the product's own
//! code path.

use crate::engine::format::{FileFormat, Format};
use crate::engine::pipeline::{split_lines, Pipeline};
use crate::engine::store::{self, IngestBatch};
use crate::engine::{self, EngineConfig};
use crate::identity::Actor;
use anyhow::Context;
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Realistic alert lines: the shipped Suricata sample alerts, each copy made unique (flow id,
/// ports, timestamp) so none is a duplicate.
fn synthetic_alerts(n: usize) -> anyhow::Result<Vec<String>> {
    let sample = std::fs::read_to_string(crate::paths::shipped_samples().join("suricata-eve.json"))
        .context("reading samples/suricata-eve.json for bench input")?;
    let templates: Vec<Value> = sample
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event_type"] == "alert")
        .collect();
    anyhow::ensure!(!templates.is_empty(), "no alerts in the samples");
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let mut v = templates[i % templates.len()].clone();
        v["flow_id"] = json!(1_000_000_000u64 + i as u64);
        v["src_port"] = json!(1024 + (i % 60000));
        v["timestamp"] = json!(format!(
            "2024-05-01T{:02}:{:02}:{:02}.{:06}+0000",
            (i / 3600) % 24,
            (i / 60) % 60,
            i % 60,
            i % 1_000_000
        ));
        out.push(v.to_string());
    }
    Ok(out)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// End-to-end ingest throughput, the raw insert rate of the same rows, and append→commit latency
/// under a steady load. Prints one JSON line.
///
/// # Errors
/// I/O or database failures.
pub async fn ingest(
    pipeline: Pipeline,
    rules: Vec<crate::engine::incident::IncidentRule>,
    alerts: usize,
    rate: u32,
    seconds: u64,
) -> anyhow::Result<Value> {
    let tmp = tempfile::tempdir()?;
    let lines = synthetic_alerts(alerts)?;

    // 1. Throughput: a file of `alerts` lines already on disk, followed from the start until
    //    every row is committed (normalised, scored, proposals and incidents included).
    let logs = tmp.path().join("throughput");
    std::fs::create_dir_all(&logs)?;
    let mut f = std::io::BufWriter::new(std::fs::File::create(logs.join("eve.json"))?);
    for l in &lines {
        f.write_all(l.as_bytes())?;
        f.write_all(b"\n")?;
    }
    f.flush()?;
    drop(f);
    let db = tmp.path().join("throughput.db");
    let elapsed = run_until(
        &db,
        vec![logs],
        pipeline.clone(),
        rules.clone(),
        alerts as i64,
        Duration::from_secs(600),
    )
    .await?;
    let e2e = alerts as f64 / elapsed.as_secs_f64();

    // 2. The same rows, inserted raw: one prepared INSERT per row in transactions of the same
    //    size the tailer commits, and nothing else (no dedup check, incidents, proposals, audit).
    let format = FileFormat::detect(lines[0].as_bytes(), Format::Auto);
    let text = lines.join("\n") + "\n";
    let (raw_lines, _) = split_lines(text.as_bytes(), 0, 1);
    let batch_lines = batch_size_in_lines(&lines);
    let t = Instant::now();
    let batches: Vec<IngestBatch> = raw_lines
        .chunks(batch_lines)
        .map(|c| pipeline.process("bench", &format, c.to_vec()))
        .collect();
    let parse = alerts as f64 / t.elapsed().as_secs_f64();
    let raw_db = tmp.path().join("raw.db");
    let conn = store::open(&raw_db)?;
    let t = Instant::now();
    for b in &batches {
        store::insert_raw(&conn, b)?;
    }
    let raw = alerts as f64 / t.elapsed().as_secs_f64();
    drop(conn);

    // 3. Latency at a steady rate: append `rate` alerts/s for `seconds`, note when each line was
    //    written and when the commit that holds it became visible.
    let lat = latency(pipeline, rules, rate, seconds, tmp.path()).await?;
    Ok(json!({
        "bench": "ingest",
        "alerts": alerts,
        "end_to_end_alerts_per_s": e2e.round(),
        "raw_sqlite_inserts_per_s": raw.round(),
        "ratio": (e2e / raw * 1000.0).round() / 1000.0,
        "parse_score_propose_per_s_one_core": parse.round(),
        "latency": lat,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    }))
}

/// Lines per tailer chunk for these lines (chunks are cut by bytes).
fn batch_size_in_lines(lines: &[String]) -> usize {
    let avg = lines.iter().map(|l| l.len() + 1).sum::<usize>() / lines.len().max(1);
    (crate::engine::tailer::CHUNK_BYTES / avg.max(1)).max(1)
}

async fn run_until(
    db: &Path,
    watch: Vec<PathBuf>,
    pipeline: Pipeline,
    rules: Vec<crate::engine::incident::IncidentRule>,
    want: i64,
    limit: Duration,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut h = engine::start(EngineConfig {
        db: db.to_path_buf(),
        watch,
        format: Format::Auto,
        format_settings: crate::engine::format::FormatSettings::builtin(),
        pipeline,
        incident_rules: rules,
        actor: Actor::current(),
        loaded: json!({"bench": true}),
        enrichment: None,
    })?;
    let reader = store::open(db)?;
    loop {
        if store::totals(&reader)?.alerts as i64 >= want {
            break;
        }
        tokio::time::timeout(
            limit.saturating_sub(started.elapsed()),
            h.db_changed.changed(),
        )
        .await
        .context("bench timed out")??;
    }
    let elapsed = started.elapsed();
    h.shutdown().await;
    Ok(elapsed)
}

async fn latency(
    pipeline: Pipeline,
    rules: Vec<crate::engine::incident::IncidentRule>,
    rate: u32,
    seconds: u64,
    dir: &Path,
) -> anyhow::Result<Value> {
    let total = (u64::from(rate) * seconds) as usize;
    let lines = synthetic_alerts(total)?;
    let logs = dir.join("latency");
    std::fs::create_dir_all(&logs)?;
    let path = logs.join("eve.json");
    std::fs::write(&path, "")?;
    let db = dir.join("latency.db");
    let mut h = engine::start(EngineConfig {
        db: db.clone(),
        watch: vec![logs],
        format: Format::Auto,
        format_settings: crate::engine::format::FormatSettings::builtin(),
        pipeline,
        incident_rules: rules,
        actor: Actor::current(),
        loaded: json!({"bench": true}),
        enrichment: None,
    })?;
    let reader = store::open(&db)?;
    // The writer side: 100 ticks a second, each appending its share of lines.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant)>();
    let appender = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut f = std::fs::OpenOptions::new().append(true).open(&path)?;
        let per_tick = (rate as usize / 100).max(1);
        let start = Instant::now();
        let mut sent = 0usize;
        let mut tick = 0u64;
        while sent < lines.len() {
            let end = (sent + per_tick).min(lines.len());
            let mut buf = String::new();
            for l in &lines[sent..end] {
                buf.push_str(l);
                buf.push('\n');
            }
            f.write_all(buf.as_bytes())?;
            let _ = tx.send((end, Instant::now()));
            sent = end;
            tick += 1;
            // Pace to the target rate: this is the load generator's clock.
            let due = start + Duration::from_millis(tick * 10);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        Ok(())
    });
    // Appended, not yet committed: (first line, end line, when written).
    let mut pending: std::collections::VecDeque<(usize, usize, Instant)> =
        std::collections::VecDeque::new();
    let mut last_end = 0usize;
    let mut latencies = Vec::with_capacity(total);
    let mut committed = 0usize;
    let deadline = Instant::now() + Duration::from_secs(seconds + 60);
    while committed < total && Instant::now() < deadline {
        tokio::select! {
            Some((end, at)) = rx.recv() => {
                pending.push_back((last_end, end, at));
                last_end = end;
            }
            r = h.db_changed.changed() => {
                r.context("engine stopped")?;
                let now = Instant::now();
                let n = store::totals(&reader)?.alerts as usize;
                // Lines commit in file order: those below `n` are visible now.
                while let Some((from, end, at)) = pending.front_mut() {
                    let upto = (*end).min(n);
                    let ms = now.duration_since(*at).as_secs_f64() * 1000.0;
                    latencies.extend(std::iter::repeat_n(ms, upto.saturating_sub(*from)));
                    if upto < *end {
                        *from = upto.max(*from);
                        break;
                    }
                    pending.pop_front();
                }
                committed = committed.max(n);
            }
        }
    }
    appender.await??;
    h.shutdown().await;
    latencies.sort_by(f64::total_cmp);
    Ok(json!({
        "rate_per_s": rate,
        "seconds": seconds,
        "alerts": latencies.len(),
        "append_to_commit_ms": {"p50": round1(pct(&latencies, 0.5)), "p99": round1(pct(&latencies, 0.99)), "max": round1(pct(&latencies, 1.0))},
    }))
}
