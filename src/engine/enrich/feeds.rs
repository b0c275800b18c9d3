//! Offline threat feeds from one directory: plain IP/CIDR/domain/hash/URL lists, abuse.ch Feodo
//! Tracker and URLhaus CSV dumps, Spamhaus DROP/EDROP (text) and ASN-DROP (JSON lines). Files
//! are re-read when their size or modification time changes. Every hit names the feed file and
//! the date the file says it was published. Owns parsing and matching; never downloads.

use crate::engine::ioc::{text, Ioc, IocKind};
use ipnet::IpNet;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// What a feed line said about one entry, kept for the hit's detail.
type Note = Option<Value>;

/// One parsed feed file.
#[derive(Debug, Default)]
pub struct Feed {
    /// The file name: what an analyst sees as the source.
    pub name: String,
    pub format: &'static str,
    /// Publication date from the file's header, else the file's modification date (UTC).
    pub date: String,
    pub entries: usize,
    /// Lines that were not understood (kept so a broken feed is visible, not silent).
    pub bad_lines: Vec<String>,
    ips: HashMap<IpAddr, Note>,
    /// Networks by prefix length, so a lookup is one hash probe per length present.
    nets: HashMap<u8, HashMap<IpNet, Note>>,
    domains: HashMap<String, Note>,
    hashes: HashMap<String, Note>,
    urls: HashMap<String, Note>,
    asns: HashMap<u32, Note>,
    stamp: (u64, Option<SystemTime>),
}

/// A feed's answer for one indicator.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedHit {
    pub feed: String,
    pub date: String,
    pub detail: Value,
}

/// Most lines read from one feed file: a feed larger than this is a mistake, not a feed.
const MAX_LINES: usize = 2_000_000;
/// Most unreadable lines remembered per file.
const MAX_BAD_LINES: usize = 20;

fn date_from_header(line: &str) -> Option<String> {
    let l = line.trim_start_matches(['#', ';', ' ']).trim();
    let lower = l.to_ascii_lowercase();
    for key in [
        "last updated:",
        "last-modified:",
        "last modified:",
        "updated:",
        "date:",
    ] {
        if let Some(rest) = lower.strip_prefix(key) {
            let value = l[l.len() - rest.len()..].trim();
            // Keep the date part; headers disagree on how they write the time.
            let date: String = value.chars().take_while(|c| !c.is_whitespace()).collect();
            if chrono::NaiveDate::parse_from_str(&date, "%Y-%m-%d").is_ok() {
                return Some(date);
            }
            if let Ok(d) = chrono::DateTime::parse_from_rfc2822(value) {
                return Some(d.format("%Y-%m-%d").to_string());
            }
        }
    }
    None
}

/// Split one CSV line with `"` quoting (abuse.ch dumps quote every field; URLs may hold commas).
fn csv_fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    out
}

impl Feed {
    fn bad(&mut self, line_no: usize, why: &str) {
        if self.bad_lines.len() < MAX_BAD_LINES {
            self.bad_lines
                .push(format!("{}:{line_no}: {why}", self.name));
        }
    }

    fn add_net(&mut self, net: IpNet, note: Note) {
        let net = net.trunc();
        if net.prefix_len() == net.max_prefix_len() {
            self.ips.insert(net.addr(), note);
        } else {
            self.nets
                .entry(net.prefix_len())
                .or_default()
                .insert(net, note);
        }
        self.entries += 1;
    }

    /// Add one token of a plain list (address, network, domain, hash or URL).
    fn add_token(&mut self, token: &str, note: Note) -> bool {
        let t = text::refang(token.trim());
        let t = t.trim();
        if let Ok(net) = t.parse::<IpNet>() {
            self.add_net(net, note);
        } else if let Ok(ip) = t.parse::<IpAddr>() {
            self.add_net(IpNet::from(ip), note);
        } else if t.contains("://") {
            if let Some(host) = text::url_host(t) {
                self.domains
                    .entry(host.to_ascii_lowercase())
                    .or_insert(note.clone());
            }
            self.urls.insert(t.to_string(), note);
            self.entries += 1;
        } else if matches!(t.len(), 32 | 40 | 64) && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            self.hashes.insert(t.to_ascii_lowercase(), note);
            self.entries += 1;
        } else if let Some(d) = text::valid_domain(t, false) {
            self.domains.insert(d, note);
            self.entries += 1;
        } else {
            return false;
        }
        true
    }

    /// Parse a feed from its text. `name` is the file name; `mtime_date` the fallback date.
    pub fn parse(name: &str, body: &str, mtime_date: String) -> Feed {
        let mut f = Feed {
            name: name.to_string(),
            format: "plain list",
            ..Feed::default()
        };
        let mut header_date = None;
        let mut columns: Option<Vec<String>> = None;
        for (i, raw) in body.lines().enumerate().take(MAX_LINES) {
            let line_no = i + 1;
            let line = raw.trim();
            if line.is_empty() {
                continue;
            }
            if line.starts_with('#') || line.starts_with(';') || line.starts_with("//") {
                if header_date.is_none() {
                    header_date = date_from_header(line);
                }
                let l = line.trim_start_matches(['#', ' ']);
                if l.starts_with("id,dateadded,url") {
                    f.format = "abuse.ch URLhaus CSV";
                    columns = Some(l.split(',').map(str::to_string).collect());
                }
                continue;
            }
            if line.starts_with("\"first_seen_utc\"") || line.starts_with("first_seen_utc") {
                f.format = "abuse.ch Feodo Tracker CSV";
                columns = Some(csv_fields(line));
                continue;
            }
            if line.starts_with('{') {
                f.format = "Spamhaus ASN-DROP JSON";
                match serde_json::from_str::<Value>(line) {
                    Ok(v) => match v.get("asn").and_then(Value::as_u64) {
                        Some(asn) => {
                            let note = json!({"asname": v.get("asname"), "cc": v.get("cc")});
                            f.asns.insert(asn as u32, Some(note));
                            f.entries += 1;
                        }
                        None if v.get("type").is_some() => {} // the trailing metadata record
                        None => f.bad(line_no, "JSON line without `asn`"),
                    },
                    Err(e) => f.bad(line_no, &format!("not JSON: {e}")),
                }
                continue;
            }
            if let Some(cols) = &columns {
                let row = csv_fields(line);
                let get = |name: &str| {
                    cols.iter()
                        .position(|c| c == name)
                        .and_then(|i| row.get(i))
                        .map(String::as_str)
                };
                let ok = if let Some(ip) = get("dst_ip") {
                    let note = json!({"malware": get("malware"), "port": get("dst_port"),
                                      "c2_status": get("c2_status"), "first_seen": get("first_seen_utc"),
                                      "last_online": get("last_online")});
                    f.add_token(ip, Some(note))
                } else if let Some(url) = get("url") {
                    let note = json!({"threat": get("threat"), "url_status": get("url_status"),
                                      "tags": get("tags"), "date_added": get("dateadded")});
                    f.add_token(url, Some(note))
                } else {
                    false
                };
                if !ok {
                    f.bad(line_no, "row without a usable address or URL");
                }
                continue;
            }
            // Plain lists and Spamhaus DROP: the first token, then an optional `; SBL123` note.
            let (token, rest) = match line.find([';', '#', ' ', '\t', ',']) {
                Some(i) => (
                    &line[..i],
                    line[i..].trim_start_matches([';', '#', ' ', '\t', ',']),
                ),
                None => (line, ""),
            };
            let note = (!rest.trim().is_empty()).then(|| json!({"note": rest.trim()}));
            if token.contains('/') && token.parse::<IpNet>().is_ok() && f.format == "plain list" {
                f.format = "CIDR list (Spamhaus DROP/EDROP style)";
            }
            if !f.add_token(token, note) {
                f.bad(line_no, "not an address, network, domain, hash or URL");
            }
        }
        f.date = header_date.unwrap_or(mtime_date);
        f
    }

    /// Everything this feed says about `ioc`.
    pub fn lookup(&self, ioc: &Ioc) -> Option<FeedHit> {
        let note = match ioc.kind {
            IocKind::Ipv4 | IocKind::Ipv6 => {
                let ip: IpAddr = ioc.value.parse().ok()?;
                self.ips.get(&ip).cloned().or_else(|| {
                    self.nets.iter().find_map(|(len, nets)| {
                        let net = IpNet::new(ip, *len).ok()?.trunc();
                        nets.get(&net).map(|n| {
                            let mut v = n.clone().unwrap_or(json!({}));
                            v["network"] = json!(net.to_string());
                            Some(v)
                        })
                    })
                })?
            }
            IocKind::Domain | IocKind::HostName => self.domains.get(&ioc.value).cloned()?,
            IocKind::Url => self.urls.get(&ioc.value).cloned()?,
            IocKind::Md5 | IocKind::Sha1 | IocKind::Sha256 => {
                self.hashes.get(&ioc.value).cloned()?
            }
            _ => return None,
        };
        Some(self.hit(note))
    }

    /// Whether an autonomous system is listed (Spamhaus ASN-DROP), for GeoIP's ASN answer.
    pub fn lookup_asn(&self, asn: u32) -> Option<FeedHit> {
        self.asns.get(&asn).map(|n| self.hit(n.clone()))
    }

    fn hit(&self, note: Note) -> FeedHit {
        FeedHit {
            feed: self.name.clone(),
            date: self.date.clone(),
            detail: note.unwrap_or(Value::Null),
        }
    }
}

/// All feeds of the configured directory, re-read when a file changes.
pub struct FeedSet {
    dir: Option<PathBuf>,
    feeds: Vec<Feed>,
    last_check: Option<std::time::Instant>,
    /// How often the directory is looked at again.
    pub check_every: Duration,
    pub errors: Vec<String>,
}

fn stamp(p: &Path) -> Option<(u64, Option<SystemTime>)> {
    let m = std::fs::metadata(p).ok()?;
    m.is_file().then(|| (m.len(), m.modified().ok()))
}

impl FeedSet {
    /// Feeds from `dir` (none when `None` or when the directory does not exist yet).
    pub fn new(dir: Option<PathBuf>) -> Self {
        let mut s = FeedSet {
            dir,
            feeds: Vec::new(),
            last_check: None,
            check_every: Duration::from_secs(5),
            errors: Vec::new(),
        };
        s.reload_changed();
        s
    }

    pub fn feeds(&self) -> &[Feed] {
        &self.feeds
    }

    /// Re-read changed files if the last look was long enough ago. Cheap when nothing changed:
    /// one directory listing and a `stat` per file.
    pub fn refresh(&mut self) {
        if self
            .last_check
            .is_some_and(|t| t.elapsed() < self.check_every)
        {
            return;
        }
        self.reload_changed();
    }

    /// Look at the directory now: read new and changed files, drop deleted ones.
    pub fn reload_changed(&mut self) {
        self.last_check = Some(std::time::Instant::now());
        let Some(dir) = &self.dir else {
            return;
        };
        let mut paths: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(rd) => rd
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| !n.starts_with('.'))
                })
                .collect(),
            Err(_) => {
                self.feeds.clear();
                return;
            }
        };
        paths.sort();
        let mut next = Vec::with_capacity(paths.len());
        let mut old: HashMap<String, Feed> = std::mem::take(&mut self.feeds)
            .into_iter()
            .map(|f| (f.name.clone(), f))
            .collect();
        self.errors.clear();
        for p in paths {
            let Some(st) = stamp(&p) else {
                continue;
            };
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            match old.remove(&name) {
                Some(f) if f.stamp == st => next.push(f),
                _ => match std::fs::read(&p) {
                    Ok(bytes) => {
                        let mtime =
                            st.1.map(|t| {
                                chrono::DateTime::<chrono::Utc>::from(t)
                                    .format("%Y-%m-%d")
                                    .to_string()
                            })
                            .unwrap_or_default();
                        let mut f = Feed::parse(&name, &String::from_utf8_lossy(&bytes), mtime);
                        f.stamp = st;
                        if f.entries == 0 {
                            self.errors
                                .push(format!("{}: no entries understood", p.display()));
                        }
                        tracing::info!(feed = %name, entries = f.entries, format = f.format, date = %f.date, "feed loaded");
                        next.push(f);
                    }
                    Err(e) => self
                        .errors
                        .push(format!("{}: cannot read: {e}", p.display())),
                },
            }
        }
        self.feeds = next;
    }

    /// Every feed's hit for `ioc`.
    pub fn lookup(&self, ioc: &Ioc) -> Vec<FeedHit> {
        self.feeds.iter().filter_map(|f| f.lookup(ioc)).collect()
    }

    pub fn lookup_asn(&self, asn: u32) -> Vec<FeedHit> {
        self.feeds
            .iter()
            .filter_map(|f| f.lookup_asn(asn))
            .collect()
    }

    pub fn entries(&self) -> usize {
        self.feeds.iter().map(|f| f.entries).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ioc::{extract_text, Ioc};
    use std::net::IpAddr;

    fn fixtures() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/feeds")
    }

    fn ip(s: &str) -> Ioc {
        Ioc::ip(s.parse::<IpAddr>().expect("ip"), "destination.ip")
    }

    #[test]
    fn each_format_is_recognised_and_dated() {
        let set = FeedSet::new(Some(fixtures()));
        let by = |n: &str| set.feeds().iter().find(|f| f.name == n).expect(n);
        let feodo = by("feodotracker-ipblocklist.csv");
        assert_eq!(feodo.format, "abuse.ch Feodo Tracker CSV");
        assert_eq!(feodo.date, "2024-04-04");
        assert_eq!(feodo.entries, 9);
        assert!(feodo.bad_lines.is_empty(), "{:?}", feodo.bad_lines);
        assert_eq!(by("urlhaus-recent.csv").format, "abuse.ch URLhaus CSV");
        assert_eq!(by("urlhaus-recent.csv").entries, 3);
        assert_eq!(by("spamhaus-drop.txt").entries, 20);
        assert_eq!(by("spamhaus-edrop.txt").entries, 10);
        assert_eq!(by("spamhaus-drop_ipv6.txt").entries, 5);
        assert_eq!(by("spamhaus-asn_drop.json").entries, 5);
        assert_eq!(by("plain-mixed.txt").date, "2024-03-30");
        assert_eq!(by("plain-mixed.txt").entries, 5);
    }

    #[test]
    fn hits_name_the_feed_and_its_date() {
        let set = FeedSet::new(Some(fixtures()));
        let hits = set.lookup(&ip("192.9.135.73"));
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].feed, "feodotracker-ipblocklist.csv");
        assert_eq!(hits[0].date, "2024-04-04");
        assert_eq!(hits[0].detail["malware"], "Pikabot");
        // 1.10.16.0/20 is the first Spamhaus DROP entry.
        let drop = set.lookup(&ip("1.10.31.255"));
        assert_eq!(drop.len(), 1);
        assert_eq!(drop[0].feed, "spamhaus-drop.txt");
        assert_eq!(drop[0].detail["network"], "1.10.16.0/20");
        assert!(set.lookup(&ip("1.10.32.0")).is_empty());
        assert_eq!(
            set.lookup(&ip("2a12:2640::1"))[0].feed,
            "spamhaus-drop_ipv6.txt"
        );
        assert_eq!(set.lookup_asn(932)[0].feed, "spamhaus-asn_drop.json");
        let text = extract_text(
            "GET http://update.bad-actor.ru/x86 from malware.top md5 44d88612fea8a8f36de82e1f5d435d5b",
            "message",
        );
        let fed: Vec<String> = text
            .iter()
            .flat_map(|i| {
                set.lookup(i)
                    .into_iter()
                    .map(|h| format!("{}:{}", i.value, h.feed))
            })
            .collect();
        assert_eq!(
            fed,
            vec![
                "http://update.bad-actor.ru/x86:urlhaus-recent.csv",
                "update.bad-actor.ru:urlhaus-recent.csv",
                "44d88612fea8a8f36de82e1f5d435d5b:plain-mixed.txt",
                "malware.top:plain-mixed.txt",
            ]
        );
    }

    #[test]
    fn a_changed_file_is_reloaded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("local.txt");
        std::fs::write(&f, "203.0.113.5\n").expect("write");
        let mut set = FeedSet::new(Some(dir.path().to_path_buf()));
        assert_eq!(set.lookup(&ip("203.0.113.5")).len(), 1);
        std::fs::write(&f, "203.0.113.6\nnot a thing\n").expect("rewrite");
        // Same second, maybe same size: the modification time is pushed so the change shows.
        let later = SystemTime::now() + Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&f)
            .and_then(|h| h.set_modified(later))
            .expect("touch");
        set.refresh();
        assert_eq!(
            set.lookup(&ip("203.0.113.5")).len(),
            1,
            "not yet re-checked"
        );
        set.reload_changed();
        assert!(set.lookup(&ip("203.0.113.5")).is_empty());
        assert_eq!(set.lookup(&ip("203.0.113.6")).len(), 1);
        assert_eq!(
            set.feeds()[0].bad_lines,
            vec!["local.txt:2: not an address, network, domain, hash or URL"]
        );
        std::fs::remove_file(&f).expect("rm");
        set.reload_changed();
        assert!(set.feeds().is_empty());
    }
}
