//! The enrichment engine task: after alerts are stored it extracts their indicators, asks the
//! offline sources at once (feeds, GeoIP), queues online lookups, writes every answer through
//! the one writer and re-scores the alert. It never blocks ingestion or the UI: it reads with
//! its own connection and only sends `WriteOp`s. Also runs once for `vigil enrich`.

use super::feeds::FeedSet;
use super::geoip::GeoIp;
use super::online::{HttpTransport, Online, Outcome, ProviderSettings, ProviderStatus, Transport};
use super::providers::ProviderId;
use super::quota::Limit;
use super::secrets::Secrets;
use super::settings::{EnrichmentConfig, ProviderConfig};
use super::{rescore, signals, EnrichmentResult, SourceKind, Verdict};
use crate::engine::alert::Alert;
use crate::engine::ioc::{self, Ioc, IpClass};
use crate::engine::score::Scorer;
use crate::engine::settings::non_empty;
use crate::engine::store::{self, ToEnrich, WriteOp};
use crate::engine::EngineEvent;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch, Semaphore};

/// Enrichment settings resolved from config, before anything is opened.
#[derive(Debug, Clone)]
pub struct EnrichSetup {
    pub offline: bool,
    pub feeds_dir: Option<PathBuf>,
    pub geoip_city: Option<PathBuf>,
    pub geoip_country: Option<PathBuf>,
    pub geoip_asn: Option<PathBuf>,
    /// Enabled providers only.
    pub providers: Vec<ProviderSettings>,
    pub secrets: Secrets,
}

fn provider_settings(id: ProviderId, c: &ProviderConfig) -> Result<ProviderSettings, String> {
    let key = format!("enrichment.providers.{}.base_url", id.name());
    let base = url::Url::parse(&c.base_url)
        .map_err(|e| format!("{key}: `{}` is not a URL: {e}", c.base_url))?;
    if !matches!(base.scheme(), "https" | "http") || base.cannot_be_a_base() {
        return Err(format!(
            "{key}: `{}` must be an http(s) base URL",
            c.base_url
        ));
    }
    let limits = [Limit::per_minute(c.per_minute), Limit::per_day(c.per_day)]
        .into_iter()
        .filter(|l| l.requests > 0)
        .collect();
    Ok(ProviderSettings {
        id,
        base_url: base,
        limits,
        timeout: Duration::from_secs(c.timeout_seconds.max(1)),
        concurrency: c.concurrency.max(1),
        ttl: Duration::from_secs(c.ttl_hours * 3600),
        negative_ttl: Duration::from_secs(c.negative_ttl_minutes * 60),
        retries: c.retries.min(5),
    })
}

impl EnrichSetup {
    /// Resolve paths and providers; load the secrets file (checking its permissions).
    ///
    /// # Errors
    /// A bad base URL or a secrets file that is too open: one line naming the key or file.
    pub fn from_config(
        c: &EnrichmentConfig,
        data_dir: &std::path::Path,
        config_dir: &std::path::Path,
    ) -> Result<Self, String> {
        let path = |s: &str| non_empty(s).map(PathBuf::from);
        let p = &c.providers;
        let mut providers = Vec::new();
        for (id, pc) in [
            (ProviderId::AbuseIpDb, &p.abuseipdb),
            (ProviderId::VirusTotal, &p.virustotal),
            (ProviderId::Otx, &p.otx),
            (ProviderId::UrlHaus, &p.urlhaus),
            (ProviderId::Rdap, &p.rdap),
        ] {
            if pc.enabled {
                providers.push(provider_settings(id, pc)?);
            }
        }
        let secrets_file = path(&c.secrets_file).unwrap_or_else(|| config_dir.join("secrets.toml"));
        Ok(EnrichSetup {
            offline: c.offline,
            feeds_dir: Some(path(&c.feeds_dir).unwrap_or_else(|| data_dir.join("feeds"))),
            geoip_city: path(&c.geoip_city),
            geoip_country: path(&c.geoip_country),
            geoip_asn: path(&c.geoip_asn),
            providers,
            secrets: Secrets::load(&secrets_file)?,
        })
    }

    /// Open the offline sources and start the online client (inside a tokio runtime).
    ///
    /// # Errors
    /// A configured GeoIP database that cannot be read, or no TLS backend.
    pub fn build(
        &self,
        reader: Option<Arc<Mutex<rusqlite::Connection>>>,
        writer: Option<mpsc::Sender<WriteOp>>,
    ) -> Result<Sources, String> {
        let transport = HttpTransport::new(&self.providers, self.secrets.clone())?;
        let keys: Vec<ProviderId> = ProviderId::ALL
            .iter()
            .copied()
            .filter(|p| transport.has_key(*p))
            .collect();
        self.build_with(
            Arc::new(transport),
            move |p| keys.contains(&p),
            reader,
            writer,
        )
    }

    /// `build` with a chosen transport (tests use a fake one).
    ///
    /// # Errors
    /// A configured GeoIP database that cannot be read.
    pub fn build_with(
        &self,
        transport: Arc<dyn Transport>,
        has_key: impl Fn(ProviderId) -> bool,
        reader: Option<Arc<Mutex<rusqlite::Connection>>>,
        writer: Option<mpsc::Sender<WriteOp>>,
    ) -> Result<Sources, String> {
        let geoip = GeoIp::open(
            self.geoip_city.as_deref(),
            self.geoip_country.as_deref(),
            self.geoip_asn.as_deref(),
        )?;
        let online = (!self.providers.is_empty()).then(|| {
            Online::start(
                self.offline,
                self.providers.clone(),
                has_key,
                transport,
                reader,
                writer,
            )
        });
        Ok(Sources {
            feeds: Mutex::new(FeedSet::new(self.feeds_dir.clone())),
            geoip,
            online,
        })
    }
}

/// The opened sources, shared by the engine task and `vigil enrich`.
pub struct Sources {
    pub feeds: Mutex<FeedSet>,
    pub geoip: GeoIp,
    pub online: Option<Online>,
}

/// Score a feed hit carries: feeds list known-bad infrastructure, not suspicions.
const FEED_SCORE: u8 = 90;
/// Most lookups one alert may queue per provider: one odd alert must not spend a day's budget.
const MAX_LOOKUPS_PER_PROVIDER: usize = 8;
/// Alerts whose online lookups run at once (the rest wait in the database, still pending).
const MAX_ONLINE_JOBS: usize = 256;
/// Alerts read per offline pass.
const BATCH: u64 = 256;

impl Sources {
    /// Feed and GeoIP results for a list of indicators: instant, no network.
    pub fn offline_results(&self, iocs: &[Ioc]) -> Vec<EnrichmentResult> {
        let mut out = Vec::new();
        let Ok(feeds) = self.feeds.lock() else {
            return out;
        };
        let feed_result = |ioc: &Ioc, hit: super::feeds::FeedHit| {
            let mut r = EnrichmentResult::new(ioc, &hit.feed, SourceKind::Feed, Verdict::Malicious);
            r.score = Some(FEED_SCORE);
            r.detail = hit.detail;
            r.feed_date = Some(hit.date);
            r
        };
        for i in iocs {
            for hit in feeds.lookup(i) {
                out.push(feed_result(i, hit));
            }
            if i.class != Some(IpClass::Public) || !self.geoip.is_configured() {
                continue;
            }
            let Ok(ip) = i.value.parse::<IpAddr>() else {
                continue;
            };
            let g = self.geoip.lookup(ip);
            if g.is_empty() {
                continue;
            }
            if let Some(asn) = g.asn {
                for mut hit in feeds.lookup_asn(asn) {
                    hit.detail["asn"] = serde_json::json!(asn);
                    out.push(feed_result(i, hit));
                }
            }
            let mut r = EnrichmentResult::new(i, "geoip", SourceKind::Geoip, Verdict::Info);
            r.detail = serde_json::to_value(&g).unwrap_or_default();
            out.push(r);
        }
        out
    }

    /// The online lookups worth making for these indicators.
    pub fn online_plan(&self, iocs: &[Ioc]) -> Vec<(ProviderId, Ioc)> {
        let Some(online) = &self.online else {
            return Vec::new();
        };
        let mut plan = Vec::new();
        for p in online.providers() {
            plan.extend(
                iocs.iter()
                    .filter(|i| online.wants(p, i))
                    .take(MAX_LOOKUPS_PER_PROVIDER)
                    .map(|i| (p, i.clone())),
            );
        }
        plan
    }

    pub fn status(&self) -> Vec<ProviderStatus> {
        self.online.as_ref().map(Online::status).unwrap_or_default()
    }
}

/// What a run did, for `vigil enrich` and tests.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    pub alerts: u64,
    pub indicators: u64,
    pub feed_hits: u64,
    pub geoip_answers: u64,
    pub results_by_source: BTreeMap<String, u64>,
    pub online_answers: u64,
    pub online_from_cache: u64,
    pub online_failed: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
}

impl Summary {
    fn add_results(&mut self, rs: &[EnrichmentResult]) {
        for r in rs {
            *self.results_by_source.entry(r.source.clone()).or_default() += 1;
            match r.source_kind {
                SourceKind::Feed => self.feed_hits += 1,
                SourceKind::Geoip => self.geoip_answers += 1,
                SourceKind::Provider => {}
            }
        }
    }
}

/// Runs enrichment against one database.
#[derive(Clone)]
pub struct Enricher {
    pub sources: Arc<Sources>,
    pub scorer: Scorer,
    pub writer: mpsc::Sender<WriteOp>,
    pub reader: Arc<Mutex<rusqlite::Connection>>,
    /// Where read errors are logged (once while they repeat) and damage to the file reported.
    pub health: store::StoreHealth,
}

/// One alert's online lookups.
struct Job {
    alert_id: i64,
    incident: Option<i64>,
    alert: Alert,
    done: Vec<EnrichmentResult>,
    lookups: Vec<(ProviderId, Ioc)>,
}

impl Enricher {
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Option<T> {
        let reader = self.reader.clone();
        let r = tokio::task::spawn_blocking(move || {
            let conn = reader.lock().map_err(|_| rusqlite::Error::InvalidQuery)?;
            f(&conn)
        })
        .await;
        match r {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                self.health.note("enrichment read failed", &e);
                None
            }
            Err(e) => {
                tracing::error!("enrichment read task failed: {e}");
                None
            }
        }
    }

    /// Offline pass over a batch (CPU work: run on the blocking pool). Returns the writes and
    /// whether each alert has online lookups to come.
    fn offline_pass(&self, batch: Vec<ToEnrich>, summary: &mut Summary) -> Vec<WriteOp> {
        if let Ok(mut f) = self.sources.feeds.lock() {
            f.refresh();
        }
        batch
            .into_iter()
            .map(|(alert_id, _incident, alert)| {
                let iocs = ioc::extract(&alert);
                let results = self.sources.offline_results(&iocs);
                let pending = !self.sources.online_plan(&iocs).is_empty();
                summary.alerts += 1;
                summary.indicators += iocs.len() as u64;
                summary.add_results(&results);
                let signals = signals(&results);
                let score = rescore(&self.scorer, &alert, &signals);
                WriteOp::Enrich {
                    alert_id,
                    results,
                    signals,
                    score,
                    online_pending: pending,
                }
            })
            .collect()
    }

    /// Enrich every alert after `cursor` (all of them when `again`); returns the new cursor.
    async fn offline_all(&self, mut cursor: i64, again: bool, summary: &mut Summary) -> i64 {
        loop {
            let Some(batch) = self
                .read(move |c| store::alerts_to_enrich(c, cursor, BATCH, again))
                .await
            else {
                return cursor;
            };
            let Some(last) = batch.last().map(|b| b.0) else {
                return cursor;
            };
            cursor = last;
            let me = self.clone();
            let mut s = Summary::default();
            let Ok((ops, s)) = tokio::task::spawn_blocking(move || {
                let ops = me.offline_pass(batch, &mut s);
                (ops, s)
            })
            .await
            else {
                return cursor;
            };
            merge(summary, &s);
            for op in ops {
                if self.writer.send(op).await.is_err() {
                    return cursor;
                }
            }
        }
    }

    fn job(&self, (alert_id, incident, alert): ToEnrich, done: Vec<EnrichmentResult>) -> Job {
        let iocs = ioc::extract(&alert);
        Job {
            alert_id,
            incident,
            lookups: self.sources.online_plan(&iocs),
            alert,
            done,
        }
    }

    /// Run one alert's lookups concurrently; store and re-score after every answer.
    async fn run_job(&self, mut job: Job) -> Summary {
        let mut s = Summary::default();
        let Some(online) = self.sources.online.clone() else {
            return s;
        };
        let mut set = tokio::task::JoinSet::new();
        for (p, i) in std::mem::take(&mut job.lookups) {
            let o = online.clone();
            let incident = job.incident;
            set.spawn(async move { o.lookup(p, &i, incident).await });
        }
        let mut remaining = set.len();
        if remaining == 0 {
            let _ = self
                .writer
                .send(WriteOp::Enrich {
                    alert_id: job.alert_id,
                    results: Vec::new(),
                    signals: signals(&job.done),
                    score: None,
                    online_pending: false,
                })
                .await;
            return s;
        }
        while let Some(done) = set.join_next().await {
            remaining -= 1;
            let new = match done {
                Ok(Outcome::Answer { result, cached }) => {
                    s.online_answers += 1;
                    if cached {
                        s.online_from_cache += 1;
                    }
                    vec![*result]
                }
                Ok(Outcome::Failed(why)) => {
                    s.online_failed += 1;
                    tracing::debug!(alert = job.alert_id, "lookup failed: {why}");
                    Vec::new()
                }
                Ok(Outcome::Skipped(_)) | Err(_) => Vec::new(),
            };
            if new.is_empty() && remaining > 0 {
                continue;
            }
            s.add_results(&new);
            // A fresh answer replaces what the same source said before (a re-run, a restart).
            job.done.retain(|d| {
                !new.iter()
                    .any(|n| n.source == d.source && n.kind == d.kind && n.indicator == d.indicator)
            });
            job.done.extend(new.iter().cloned());
            let sig = signals(&job.done);
            let score = rescore(&self.scorer, &job.alert, &sig);
            let _ = self
                .writer
                .send(WriteOp::Enrich {
                    alert_id: job.alert_id,
                    results: new,
                    signals: sig,
                    score,
                    online_pending: remaining > 0,
                })
                .await;
        }
        s
    }

    /// Enrich stored alerts once and wait for every online lookup (`vigil enrich`).
    pub async fn run_once(&self, again: bool) -> Summary {
        let mut summary = Summary::default();
        let before = self
            .sources
            .online
            .as_ref()
            .map(Online::cache_stats)
            .unwrap_or_default();
        self.offline_all(0, again, &mut summary).await;
        // Wait until the writer has committed the offline pass, then take every pending alert.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let _ = self.writer.send(WriteOp::Flush(tx)).await;
        let _ = rx.await;
        let pending = self
            .read(|c| store::alerts_pending_online(c, u64::MAX >> 1))
            .await
            .unwrap_or_default();
        let slots = Arc::new(Semaphore::new(MAX_ONLINE_JOBS));
        let mut set = tokio::task::JoinSet::new();
        for p in pending {
            let id = p.0;
            let done = self
                .read(move |c| store::enrichment_results(c, id))
                .await
                .unwrap_or_default();
            let job = self.job(p, done);
            let me = self.clone();
            let slots = slots.clone();
            set.spawn(async move {
                let _slot = slots.acquire_owned().await;
                me.run_job(job).await
            });
        }
        while let Some(r) = set.join_next().await {
            if let Ok(s) = r {
                merge(&mut summary, &s);
            }
        }
        self.write_status(&self.sources.status()).await;
        let after = self
            .sources
            .online
            .as_ref()
            .map(Online::cache_stats)
            .unwrap_or_default();
        summary.cache_hits = after.hits - before.hits;
        summary.cache_misses = after.misses - before.misses;
        summary
    }

    /// The engine task: enrich new alerts as they are committed, keep online jobs flowing,
    /// put the focused incident first, and report provider budgets to the UI.
    pub async fn run(
        self,
        mut stop: watch::Receiver<bool>,
        mut changed: watch::Receiver<u64>,
        mut focus: watch::Receiver<Option<i64>>,
        events: mpsc::Sender<EngineEvent>,
    ) {
        let running: Arc<Mutex<HashSet<i64>>> = Arc::new(Mutex::new(HashSet::new()));
        let mut jobs = OnlineJobs {
            set: tokio::task::JoinSet::new(),
            online: self.sources.online.clone(),
        };
        let mut cursor = 0i64;
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        let mut last_status: Vec<ProviderStatus> = Vec::new();
        let mut summary = Summary::default();
        // A damaged database will not heal by reading it again.
        while self.health.damage().is_none() {
            let mut focused = None;
            tokio::select! {
                biased;
                _ = stop.changed() => break,
                f = focus.changed() => {
                    if f.is_ok() {
                        focused = *focus.borrow_and_update();
                        if let Some(o) = &self.sources.online {
                            o.set_focus(focused);
                        }
                    }
                }
                c = changed.changed() => if c.is_err() { break },
                _ = tick.tick() => {}
            }
            cursor = self.offline_all(cursor, false, &mut summary).await;
            while jobs.set.try_join_next().is_some() {}
            if self.sources.online.is_some() {
                self.start_jobs(&running, focused, &mut jobs.set).await;
            }
            let status = self.sources.status();
            if status != last_status {
                self.write_status(&status).await;
                // Never wait on a busy UI; if it was full, try again next tick.
                if events
                    .try_send(EngineEvent::EnrichStatus(status.clone()))
                    .is_ok()
                {
                    last_status = status;
                }
            }
        }
    }

    /// Record the providers' budgets and queues for `vigil enrich --status`.
    async fn write_status(&self, status: &[ProviderStatus]) {
        if status.is_empty() {
            return;
        }
        let snapshot = status
            .iter()
            .map(|s| {
                (
                    s.provider.clone(),
                    serde_json::to_value(s).unwrap_or_default(),
                )
            })
            .collect();
        let _ = self.writer.send(WriteOp::ProviderStatus(snapshot)).await;
    }

    /// Start online jobs for pending alerts while slots are free; the focused incident's
    /// alerts start regardless of free slots.
    async fn start_jobs(
        &self,
        running: &Arc<Mutex<HashSet<i64>>>,
        focused: Option<i64>,
        jobs: &mut tokio::task::JoinSet<()>,
    ) {
        let busy = running.lock().map(|r| r.len()).unwrap_or(MAX_ONLINE_JOBS);
        let free = MAX_ONLINE_JOBS.saturating_sub(busy) as u64;
        let mut candidates = Vec::new();
        if let Some(inc) = focused {
            if let Some(list) = self.read(move |c| store::incident_alerts(c, inc, 64)).await {
                for a in list {
                    let id = a.0;
                    if self
                        .read(move |c| store::enrichment_state(c, id))
                        .await
                        .flatten()
                        .is_some_and(|s| s.1)
                    {
                        candidates.push(a);
                    }
                }
            }
        }
        if free > 0 {
            if let Some(list) = self
                .read(move |c| store::alerts_pending_online(c, free + busy as u64))
                .await
            {
                candidates.extend(list);
            }
        }
        let mut started = 0u64;
        for a in candidates {
            let id = a.0;
            let is_focused = focused.is_some() && a.1 == focused;
            if !is_focused && started >= free {
                break;
            }
            let fresh = running.lock().map(|mut r| r.insert(id)).unwrap_or(false);
            if !fresh {
                continue;
            }
            started += 1;
            let done = self
                .read(move |c| store::enrichment_results(c, id))
                .await
                .unwrap_or_default();
            let job = self.job(a, done);
            let me = self.clone();
            let running = running.clone();
            jobs.spawn(async move {
                me.run_job(job).await;
                if let Ok(mut r) = running.lock() {
                    r.remove(&id);
                }
            });
        }
    }
}

/// The online jobs of a running enricher. Stopping (or the task being cut off) drops them at
/// once instead of waiting for budgets and slow providers: their alerts stay marked pending in
/// the database, so the next start asks again, and the log says how many were left.
struct OnlineJobs {
    set: tokio::task::JoinSet<()>,
    online: Option<Online>,
}

impl Drop for OnlineJobs {
    fn drop(&mut self) {
        let alerts = self.set.len();
        let lookups = self.online.as_ref().map_or(0, Online::pending);
        if alerts > 0 || lookups > 0 {
            tracing::info!(
                "online lookups left pending for the next start: {lookups} lookups for {alerts} alerts"
            );
        }
        self.set.abort_all();
    }
}

fn merge(into: &mut Summary, s: &Summary) {
    into.alerts += s.alerts;
    into.indicators += s.indicators;
    into.feed_hits += s.feed_hits;
    into.geoip_answers += s.geoip_answers;
    into.online_answers += s.online_answers;
    into.online_from_cache += s.online_from_cache;
    into.online_failed += s.online_failed;
    for (k, v) in &s.results_by_source {
        *into.results_by_source.entry(k.clone()).or_default() += v;
    }
}
