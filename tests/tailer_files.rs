//! The follower on files that are easy to get wrong: a JSON array never closed, files that
//! begin with the same bytes, and a rotated file whose reader was killed. Driven step by step
//! (scan, read, commit) with a model store, as the engine's tailer task drives it.

use std::collections::HashMap;
use std::path::Path;
use vigil::engine::format::Format;
use vigil::engine::tailer::{Checkpoints, Chunk, Follower, TailNote};

/// Checkpoints as the database keeps them.
#[derive(Default)]
struct Store {
    checkpoints: HashMap<String, (u64, u64)>,
}

impl Checkpoints for Store {
    fn get(&mut self, file_id: &str) -> Option<(u64, u64)> {
        self.checkpoints.get(file_id).copied()
    }
    fn by_head(&mut self, head: &str) -> Option<(u64, u64)> {
        self.checkpoints
            .iter()
            .filter(|(id, _)| id.ends_with(&format!(":256:{head}")))
            .map(|(_, v)| *v)
            .max()
    }
}

/// Read everything complete now, committing each chunk as the writer would.
fn drain(f: &mut Follower, store: &mut Store) -> Vec<Chunk> {
    let mut out = Vec::new();
    while let Some(c) = f.next_chunk(1 << 20).expect("read") {
        store
            .checkpoints
            .insert(c.file_id.clone(), (c.to_offset, c.to_line));
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
