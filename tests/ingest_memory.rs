//! Peak memory of `vigil ingest` does not grow with the file: a small gzip that expands to
//! tens of millions of lines is read as a stream. Alone in its test binary, so the peak RSS of
//! this process's children is the peak of the one `vigil` it runs.

mod common;

use std::io::Write;

#[test]
fn ingest_memory_stays_flat_on_a_gzip_of_millions_of_lines() {
    let home = tempfile::tempdir().expect("tempdir");
    let file = home.path().join("many.json.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let blank = vec![b'\n'; 1 << 20];
    for _ in 0..12 {
        gz.write_all(&blank).expect("gzip");
    }
    gz.write_all(include_bytes!("fixtures/suricata-alert.json"))
        .expect("gzip");
    std::fs::write(&file, gz.finish().expect("gzip")).expect("write");

    let out = common::vigil(home.path(), &["ingest", &file.display().to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).expect("summary");
    assert!(s["alerts"].as_u64().is_some_and(|n| n >= 1), "{s}");

    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .expect("getrusage");
    // Linux reports kilobytes. Reading 12 million lines at once took well over a gigabyte.
    let peak_mb = usage.max_rss() / 1024;
    assert!(peak_mb < 200, "vigil ingest peaked at {peak_mb} MB");
}
