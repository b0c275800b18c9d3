//! Fuzz the audit verifier: any bytes as an exported trail. It must never panic, and must never
//! call a trail intact unless every record's hash and link recompute (checked independently).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::engine::audit::{verify_export, AuditRecord, GENESIS};

fuzz_target!(|data: &[u8]| {
    let v = verify_export(data, &[]);
    if v.first_bad.is_none() {
        let mut prev = GENESIS.to_string();
        let mut seq = 0;
        for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let r: AuditRecord = serde_json::from_slice(line).expect("an intact trail parses");
            seq += 1;
            assert_eq!(r.seq, seq);
            assert_eq!(r.prev_hash, prev);
            assert_eq!(r.compute_hash(), r.hash);
            prev = r.hash;
        }
        assert_eq!(v.head_hash, prev);
    }
});
