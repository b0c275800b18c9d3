//! Model-based test of the tailer: thousands of random sequences of appends, partial writes,
//! rename rotation, copytruncate, deletion, restarts and failed commits, run against real files
//! and checked against a model of what the tailer could have seen.
//!
//! The store is modelled with the writer's compare-and-set rule (a chunk commits only when the
//! stored checkpoint is where it starts, and a truncation note resets the checkpoint), so what
//! is checked is the follower's own promise: every line is ingested exactly once, except lines
//! that no tailer could have read (written and truncated away between two looks with no copy in
//! the watch set, or in a file that left the watch set before it was ever seen, or unread in a
//! file outside the watch set when vigil restarted). Those may be missing, never duplicated.
//!
//! `VIGIL_MODEL_CASES=N` runs more sequences; a failure prints the seed to replay with
//! `VIGIL_MODEL_SEED=S`.

#[path = "common/checkpoints.rs"]
mod checkpoints;

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use std::collections::{HashMap, HashSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use vigil::engine::format::Format;
use vigil::engine::tailer::{Checkpoints, Follower, StoredCheckpoint, TailNote};

#[derive(Default)]
struct Store {
    checkpoints: HashMap<String, (u64, u64)>,
    ingested: HashMap<u64, u32>,
    garbage: u64,
}

impl Checkpoints for Store {
    fn get(&mut self, file_id: &str) -> Option<(u64, u64)> {
        self.checkpoints.get(file_id).copied()
    }
    fn by_head(&mut self, head: &str) -> Option<StoredCheckpoint> {
        checkpoints::furthest_with_head(&self.checkpoints, head, |_| String::new())
    }
}

/// The file currently at `eve.json`, as the writer sees it.
#[derive(Default)]
struct Generation {
    ids: Vec<u64>,
    /// Every complete line in order: its id (none for a torn tail) and length.
    lines: Vec<(Option<u64>, u64)>,
    /// Bytes of complete lines written so far.
    complete_bytes: u64,
    /// A line begun but not finished: (id, full text, bytes written).
    partial: Option<(u64, String, usize)>,
    /// Complete-line bytes present at the last poll, and whether the tailer could see the file
    /// then (its first line was complete).
    seen: bool,
    polled_bytes: u64,
}

struct Sim {
    dir: PathBuf,
    rng: Xoshiro256PlusPlus,
    follower: Follower,
    store: Store,
    next_id: u64,
    rotations: u64,
    cur: Option<Generation>,
    written: Vec<u64>,
    at_risk: HashSet<u64>,
    /// Rotated-away or deleted files the tailer still holds open: unread lines in them are lost
    /// if vigil restarts.
    orphans: Vec<Vec<u64>>,
    fail_next_commit: bool,
    log: Vec<String>,
}

impl Sim {
    fn new(seed: u64) -> (Self, tempfile::TempDir) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("logs");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let follower = Follower::new(vec![dir.clone()], Format::Auto);
        (
            Sim {
                dir,
                rng: Xoshiro256PlusPlus::seed_from_u64(seed),
                follower,
                store: Store::default(),
                next_id: 1,
                rotations: 0,
                cur: None,
                written: Vec::new(),
                at_risk: HashSet::new(),
                orphans: Vec::new(),
                fail_next_commit: false,
                log: Vec::new(),
            },
            tmp,
        )
    }

    fn path(&self) -> PathBuf {
        self.dir.join("eve.json")
    }

    fn write(&self, text: &str) {
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path())
            .expect("open");
        f.write_all(text.as_bytes()).expect("write");
    }

    fn new_line(&mut self) -> (u64, String) {
        let id = self.next_id;
        self.next_id += 1;
        // Real alert lines are 300-1500 bytes; a first line of at least 256 bytes gives a file a
        // full-length head, which is what rotated copies are recognised by.
        let pad = "x".repeat(self.rng.gen_range(260..400));
        (id, format!("{{\"id\":{id},\"pad\":\"{pad}\"}}\n"))
    }

    fn append(&mut self, n: usize) {
        self.finish_partial();
        for _ in 0..n {
            let (id, line) = self.new_line();
            self.write(&line);
            self.log
                .push(format!("append id {id} ({} bytes)", line.len()));
            let g = self.cur.get_or_insert_with(Generation::default);
            g.ids.push(id);
            g.lines.push((Some(id), line.len() as u64));
            g.complete_bytes += line.len() as u64;
            self.written.push(id);
        }
    }

    fn begin_partial(&mut self) {
        if self.cur.as_ref().is_some_and(|g| g.partial.is_some()) {
            return;
        }
        let (id, line) = self.new_line();
        // Split before the id's digits end, so the tail of a torn line still names its id and
        // no two torn tails look alike.
        let cut = self.rng.gen_range(1..=5);
        self.write(&line[..cut]);
        self.log.push(format!("begin partial id {id}"));
        let g = self.cur.get_or_insert_with(Generation::default);
        g.partial = Some((id, line, cut));
        self.written.push(id);
    }

    fn finish_partial(&mut self) {
        let Some(g) = self.cur.as_mut() else { return };
        let Some((id, line, cut)) = g.partial.take() else {
            return;
        };
        g.ids.push(id);
        g.lines.push((Some(id), line.len() as u64));
        g.complete_bytes += line.len() as u64;
        let rest = line[cut..].to_string();
        self.write(&rest);
        self.log.push(format!("finish partial id {id}"));
    }

    fn rename_rotate(&mut self, watched_target: bool) {
        self.finish_partial();
        let Some(g) = self.cur.take() else { return };
        self.rotations += 1;
        let target = if watched_target {
            self.dir.join(format!("eve-{}.json", self.rotations))
        } else {
            self.dir.join(format!("eve.json.{}", self.rotations))
        };
        std::fs::rename(self.path(), &target).expect("rename");
        self.log
            .push(format!("rename to {} (seen {})", target.display(), g.seen));
        if !watched_target {
            if g.seen {
                self.orphans.push(g.ids);
            } else {
                self.at_risk.extend(g.ids);
            }
        }
    }

    fn copytruncate(&mut self, watched_copy: bool) {
        let Some(g) = self.cur.as_mut() else { return };
        self.rotations += 1;
        let copy = if watched_copy {
            self.dir.join(format!("eve-copy-{}.json", self.rotations))
        } else {
            self.dir.join(format!("eve.json.{}", self.rotations))
        };
        std::fs::copy(self.dir.join("eve.json"), &copy).expect("copy");
        let f = OpenOptions::new()
            .write(true)
            .open(self.dir.join("eve.json"))
            .expect("open");
        f.set_len(0).expect("truncate");
        self.log.push(format!(
            "copytruncate to {} (seen {}, polled {})",
            copy.display(),
            g.seen,
            g.polled_bytes
        ));
        if !watched_copy {
            if g.seen {
                // Lines written after the last look were never visible to the tailer.
                let visible = g.polled_bytes;
                let mut acc = 0u64;
                for (id, len) in &g.lines {
                    acc += len;
                    if acc > visible {
                        self.at_risk.extend(*id);
                    }
                }
            } else {
                self.at_risk.extend(g.ids.iter().copied());
            }
        }
        // A torn line: its head went with the copy, its tail lands in the truncated file.
        if let Some((id, line, cut)) = g.partial.take() {
            self.at_risk.insert(id);
            let rest = line[cut..].to_string();
            self.cur = Some(Generation::default());
            self.write(&rest);
            if let Some(g) = self.cur.as_mut() {
                g.complete_bytes = rest.len() as u64;
                g.lines.push((None, rest.len() as u64));
            }
        } else {
            self.cur = Some(Generation::default());
        }
    }

    fn delete(&mut self) {
        self.finish_partial();
        let Some(g) = self.cur.take() else { return };
        std::fs::remove_file(self.path()).expect("delete");
        self.log.push(format!("delete (seen {})", g.seen));
        if g.seen {
            self.orphans.push(g.ids);
        } else {
            self.at_risk.extend(g.ids);
        }
    }

    fn restart(&mut self) {
        self.log.push("restart".into());
        for ids in self.orphans.drain(..) {
            for id in ids {
                if !self.store.ingested.contains_key(&id) {
                    self.at_risk.insert(id);
                }
            }
        }
        self.follower = Follower::new(vec![self.dir.clone()], Format::Auto);
        // The new follower has seen nothing yet.
        if let Some(g) = self.cur.as_mut() {
            g.seen = false;
        }
    }

    fn poll(&mut self) {
        self.log.push("poll".into());
        let notes = self.follower.scan(&mut self.store);
        for n in &notes {
            self.log.push(format!("note {n:?}"));
            // What the writer does with each note, in the same transaction.
            match n {
                TailNote::Truncated { file_id, .. } => {
                    if let Some(cp) = self.store.checkpoints.remove(file_id) {
                        self.store
                            .checkpoints
                            .insert(format!("truncated@{}:{file_id}", self.log.len()), cp);
                    }
                }
                TailNote::AdoptedCopy {
                    file_id,
                    offset,
                    line,
                    ..
                } => {
                    self.store
                        .checkpoints
                        .entry(file_id.clone())
                        .or_insert((*offset, *line));
                }
                _ => {}
            }
        }
        loop {
            let chunk = match self.follower.next_chunk(16384) {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err((p, e)) => panic!("read {}: {e}", p.display()),
            };
            if self.fail_next_commit {
                self.fail_next_commit = false;
                self.log.push(format!(
                    "fail commit {}..{}",
                    chunk.from_offset, chunk.to_offset
                ));
                self.follower.rewind(chunk.key, None);
                continue;
            }
            let stored = self.store.checkpoints.get(&chunk.file_id).copied();
            if stored.map_or(chunk.initial_offset, |s| s.0) != chunk.from_offset {
                self.log
                    .push(format!("conflict {} at {:?}", chunk.from_offset, stored));
                self.follower.rewind(chunk.key, stored);
                continue;
            }
            for l in &chunk.lines {
                match serde_json::from_slice::<serde_json::Value>(&l.bytes)
                    .ok()
                    .and_then(|v| v["id"].as_u64())
                {
                    Some(id) => *self.store.ingested.entry(id).or_default() += 1,
                    None => self.store.garbage += 1,
                }
            }
            self.log.push(format!(
                "commit {} {}..{} ({} lines)",
                chunk.path,
                chunk.from_offset,
                chunk.to_offset,
                chunk.lines.len()
            ));
            self.store
                .checkpoints
                .insert(chunk.file_id.clone(), (chunk.to_offset, chunk.to_line));
            self.follower
                .committed(chunk.key, chunk.to_offset, chunk.to_line);
        }
        if let Some(g) = self.cur.as_mut() {
            let first_line_done = !g.ids.is_empty() || g.complete_bytes > 0;
            if first_line_done {
                g.seen = true;
            }
            g.polled_bytes = g.complete_bytes;
        }
    }

    fn step(&mut self) {
        let op = self.rng.gen_range(0..100);
        match op {
            0..=29 => {
                let n = self.rng.gen_range(1..4);
                self.append(n)
            }
            30..=39 => self.begin_partial(),
            40..=44 => self.finish_partial(),
            45..=64 => self.poll(),
            65..=70 => {
                let w = self.rng.gen_bool(0.5);
                self.rename_rotate(w)
            }
            71..=78 => {
                let w = self.rng.gen_bool(0.5);
                self.copytruncate(w)
            }
            79..=82 => self.delete(),
            83..=89 => self.restart(),
            _ => self.fail_next_commit = true,
        }
    }
}

fn run(seed: u64, steps: usize) {
    let (mut sim, _tmp) = Sim::new(seed);
    for _ in 0..steps {
        sim.step();
    }
    sim.finish_partial();
    sim.fail_next_commit = false;
    for _ in 0..4 {
        sim.poll();
    }
    let dups: Vec<(u64, u32)> = sim
        .store
        .ingested
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(i, n)| (*i, *n))
        .collect();
    let missing: Vec<u64> = sim
        .written
        .iter()
        .filter(|id| !sim.store.ingested.contains_key(id) && !sim.at_risk.contains(id))
        .copied()
        .collect();
    if !dups.is_empty() || !missing.is_empty() {
        panic!(
            "seed {seed}: duplicated {dups:?}, lost {missing:?}\n{}",
            sim.log.join("\n")
        );
    }
}

#[test]
fn every_line_exactly_once_under_random_rotation_truncation_and_restarts() {
    let cases: u64 = std::env::var("VIGIL_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    if let Some(seed) = std::env::var("VIGIL_MODEL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        run(seed, 40);
        return;
    }
    for seed in 0..cases {
        run(seed, 40);
    }
}
