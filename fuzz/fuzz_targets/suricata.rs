//! Fuzz the suricata parser: detection, then every line (or the whole document), forced
//! to this format and auto-detected. Any panic is a bug; rejects are the expected outcome.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::engine::format::Format;

fuzz_target!(|data: &[u8]| vigil_fuzz::exercise(data, Format::Suricata));
