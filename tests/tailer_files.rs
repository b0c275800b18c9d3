//! The follower on files that are easy to get wrong: a JSON array never closed, files that
//! begin with the same bytes, and a rotated file whose reader was killed. Driven step by step
//! (scan, read, commit) with a model store, as the engine's tailer task drives it.

#[path = "common/checkpoints.rs"]
mod checkpoints;

use std::collections::HashMap;
use std::path::Path;
use vigil::engine::format::Format;
use vigil::engine::tailer::{Checkpoints, Chunk, Follower, StoredCheckpoint, TailNote};

/// Checkpoints as the database keeps them.
#[derive(Default)]
struct Store {
    checkpoints: HashMap<String, (u64, u64)>,
    paths: HashMap<String, String>,
    /// File identities in the order their checkpoints were last updated.
    updated: Vec<String>,
}

impl Store {
    fn commit(&mut self, c: &Chunk) {
        self.checkpoints
            .insert(c.file_id.clone(), (c.to_offset, c.to_line));
        self.paths.insert(c.file_id.clone(), c.path.clone());
        self.updated.retain(|id| *id != c.file_id);
        self.updated.push(c.file_id.clone());
    }
}

impl Checkpoints for Store {
    fn get(&mut self, file_id: &str) -> Option<(u64, u64)> {
        self.checkpoints.get(file_id).copied()
    }
    fn by_head(&mut self, head: &str) -> Option<StoredCheckpoint> {
        checkpoints::furthest_with_head(&self.checkpoints, head, |id| {
            self.paths.get(id).cloned().unwrap_or_default()
        })
    }
    fn recent(&mut self, limit: usize) -> Vec<StoredCheckpoint> {
        self.updated
            .iter()
            .rev()
            .take(limit)
            .map(|id| StoredCheckpoint {
                file_id: id.clone(),
                path: self.paths[id].clone(),
                offset: self.checkpoints[id].0,
                line: self.checkpoints[id].1,
            })
            .collect()
    }
}

/// Read everything complete now, committing each chunk as the writer would.
fn drain(f: &mut Follower, store: &mut Store) -> Vec<Chunk> {
    let mut out = Vec::new();
    while let Some(c) = f.next_chunk(1 << 20).expect("read") {
        store.commit(&c);
        f.committed(c.key, c.to_offset, c.to_line);
        out.push(c);
    }
    out
}

fn look(f: &mut Follower, store: &mut Store) -> (Vec<TailNote>, Vec<Chunk>) {
    let notes = f.scan(store);
    let chunks = drain(f, store);
    (notes, chunks)
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write");
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open")
        .write_all(text.as_bytes())
        .expect("append");
}

#[test]
fn an_unclosed_json_array_is_handed_over_once_then_left_until_it_changes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("logs");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let doc = dir.join("export.json");
    // An export cut off before its closing bracket (longer than the 256-byte identity head).
    let records: Vec<String> = (0..8)
        .map(|i| format!(r#"{{"rule":{{"level":10,"description":"cut off export {i}"}}}}"#))
        .collect();
    let unclosed = format!("[{}", records.join(","));
    write(&doc, &unclosed);
    let mut f = Follower::new(vec![dir.clone()], Format::Auto);
    let mut store = Store::default();

    // First look: unfinished, perhaps still being written.
    let (_, chunks) = look(&mut f, &mut store);
    assert!(
        chunks.is_empty(),
        "an unfinished document is not read at once"
    );
    // Second look, nothing changed: its writer is done; it goes to the pipeline once.
    let (_, chunks) = look(&mut f, &mut store);
    assert_eq!(chunks.len(), 1, "the stalled document is handed over");
    assert_eq!(
        chunks[0].document.as_deref(),
        Some(unclosed.as_bytes()),
        "whole, for the pipeline to quarantine with its parse error"
    );
    // And never again while it stays as it is.
    for _ in 0..5 {
        let (_, chunks) = look(&mut f, &mut store);
        assert!(chunks.is_empty(), "an unchanged document is not read again");
    }
    // Restarted, it is not read again either: its checkpoint is at its end.
    let mut f = Follower::new(vec![dir.clone()], Format::Auto);
    for _ in 0..3 {
        let (_, chunks) = look(&mut f, &mut store);
        assert!(chunks.is_empty(), "not read again after a restart");
    }
    // Closed at last: read once more, whole.
    append(&doc, "]");
    let (_, chunks) = look(&mut f, &mut store);
    assert_eq!(chunks.len(), 1, "the finished document is read");
    assert!(chunks[0]
        .document
        .as_deref()
        .is_some_and(|d| d.ends_with(b"]")));
}

fn lines(from: u64, to: u64) -> String {
    (from..to)
        .map(|i| {
            format!(
                r#"{{"timestamp":"2024-05-01T12:00:00Z","event_type":"alert","flow_id":{i},"src_ip":"198.51.100.7","dest_ip":"10.1.0.5","alert":{{"signature_id":1,"signature":"rotation check {i:06}","severity":2}}}}"#
            ) + "\n"
        })
        .collect()
}

/// Line numbers (flow ids) carried by these chunks, in order.
fn ids(chunks: &[Chunk]) -> Vec<u64> {
    chunks
        .iter()
        .flat_map(|c| c.lines.iter())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_slice(&l.bytes).expect("json line");
            v["flow_id"].as_u64().expect("flow_id")
        })
        .collect()
}

#[test]
fn a_file_renamed_out_of_the_watch_set_while_vigil_was_down_is_finished_on_restart() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("logs");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let eve = dir.join("eve.json");
    write(&eve, &lines(0, 100));
    let mut store = Store::default();
    let mut f = Follower::new(vec![eve.clone()], Format::Auto);
    let (_, chunks) = look(&mut f, &mut store);
    assert_eq!(ids(&chunks), (0..100).collect::<Vec<_>>());

    // More is written, then the file is renamed to a name outside the watch set and a new
    // one started, and vigil is killed before it reads any of it.
    append(&eve, &lines(100, 150));
    std::fs::rename(&eve, dir.join("eve.json.1")).expect("rotate");
    write(&eve, &lines(150, 160));
    drop(f);

    let mut f = Follower::new(vec![eve.clone()], Format::Auto);
    let (notes, mut chunks) = look(&mut f, &mut store);
    chunks.extend(look(&mut f, &mut store).1);
    let mut got = ids(&chunks);
    got.sort_unstable();
    assert_eq!(
        got,
        (100..160).collect::<Vec<_>>(),
        "the rotated file's tail and the new file, each once"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.to_json()["event"] == "recovered_rotated"),
        "the recovery is recorded: {notes:?}"
    );
    // Read to its end and outside the watch set: let go.
    let (notes, chunks) = look(&mut f, &mut store);
    assert!(chunks.is_empty());
    assert!(
        notes.iter().any(|n| n.to_json()["event"] == "released") || f.followed() == 1,
        "the rotated file is released once finished: {notes:?}"
    );
    assert_eq!(f.followed(), 1, "only eve.json is followed");
}

/// A CSV header longer than the 256-byte identity head, shared by every sensor.
fn csv_header() -> String {
    let extra: Vec<String> = (0..12)
        .map(|i| format!("sensor_extra_column_{i:02}"))
        .collect();
    format!(
        "timestamp,src_ip,src_port,dest_ip,dest_port,proto,signature_id,signature,category,severity,host,{}\n",
        extra.join(",")
    )
}

fn csv_rows(sensor: u64, from: u64, to: u64) -> String {
    (from..to)
        .map(|i| {
            format!(
                "2022-02-16T14:33:{:02}.000000+0000,10.{sensor}.0.{i},5000,40.110.35.23,80,TCP,58990,SENSOR {sensor} alert {i},A Network Trojan was detected,1,sensor{sensor}{}\n",
                i % 60,
                ",".repeat(12)
            )
        })
        .collect()
}

fn rows_read(chunks: &[Chunk]) -> usize {
    chunks
        .iter()
        .flat_map(|c| c.lines.iter())
        .filter(|l| l.bytes.starts_with(b"2022-"))
        .count()
}

#[test]
fn two_sensors_with_the_same_long_header_are_both_read() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("logs");
    std::fs::create_dir_all(&dir).expect("mkdir");
    write(
        &dir.join("sensor1.csv"),
        &(csv_header() + &csv_rows(1, 0, 10)),
    );
    write(
        &dir.join("sensor2.csv"),
        &(csv_header() + &csv_rows(2, 0, 10)),
    );
    let mut f = Follower::new(vec![dir.clone()], Format::Auto);
    let mut store = Store::default();
    let (_, mut chunks) = look(&mut f, &mut store);
    chunks.extend(look(&mut f, &mut store).1);
    assert_eq!(rows_read(&chunks), 20, "both sensors, every row once");
    assert_eq!(f.followed(), 2);

    // A third sensor appears later, header first, rows after: still its own file.
    let third = dir.join("sensor3.csv");
    write(&third, &csv_header());
    let (_, chunks) = look(&mut f, &mut store);
    assert_eq!(rows_read(&chunks), 0);
    append(&third, &csv_rows(3, 0, 10));
    let (_, mut chunks) = look(&mut f, &mut store);
    chunks.extend(look(&mut f, &mut store).1);
    assert_eq!(rows_read(&chunks), 10, "the third sensor's rows");
}

#[test]
fn a_new_file_with_the_head_of_one_from_an_earlier_run_starts_at_zero() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("logs");
    std::fs::create_dir_all(&dir).expect("mkdir");
    write(
        &dir.join("sensor1.csv"),
        &(csv_header() + &csv_rows(1, 0, 30)),
    );
    let mut store = Store::default();
    let mut f = Follower::new(vec![dir.clone()], Format::Auto);
    let (_, chunks) = look(&mut f, &mut store);
    assert_eq!(rows_read(&chunks), 30);
    drop(f);

    // Restarted with a second sensor beside the first: same header, different rows.
    write(
        &dir.join("sensor2.csv"),
        &(csv_header() + &csv_rows(2, 0, 40)),
    );
    let mut f = Follower::new(vec![dir.clone()], Format::Auto);
    let (notes, mut chunks) = look(&mut f, &mut store);
    chunks.extend(look(&mut f, &mut store).1);
    assert_eq!(
        rows_read(&chunks),
        40,
        "all of sensor 2, none of sensor 1 again: {notes:?}"
    );
}

/// logrotate renames the file away and only then tells its writer to reopen: lines the writer
/// appends to the renamed file in between are still read from the file vigil holds open.
#[test]
fn lines_written_to_a_file_just_renamed_out_of_the_watch_set_are_read() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let eve = tmp.path().join("eve.json");
    write(&eve, &lines(0, 10));
    let mut f = Follower::new(vec![eve.clone()], Format::Auto);
    let mut store = Store::default();
    let (_, chunks) = look(&mut f, &mut store);
    assert_eq!(ids(&chunks), (0..10).collect::<Vec<_>>());

    let rotated = tmp.path().join("eve.json.1");
    std::fs::rename(&eve, &rotated).expect("rotate");
    let (notes, _) = look(&mut f, &mut store);
    assert!(
        !notes.iter().any(|n| matches!(n, TailNote::Released { .. })),
        "not let go the moment it is renamed: {notes:?}"
    );
    append(&rotated, &lines(10, 15));
    let (_, chunks) = look(&mut f, &mut store);
    assert_eq!(ids(&chunks), (10..15).collect::<Vec<_>>());
}
