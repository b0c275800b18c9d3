//! Fuzz the playbook loader: any text as a playbook file. It must never panic; a file it
//! accepts must pass its own checks again and propose against an alert without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::engine::connector::Connectors;
use vigil::engine::playbook::{parse, Fields};

fuzz_target!(|text: &str| {
    let connectors = Connectors::new(std::path::PathBuf::from("/nonexistent/blocklist.txt"));
    let Ok(pb) = parse(text, "fuzz.yaml", &connectors) else {
        return;
    };
    let doc = serde_json::json!({
        "rule": {"name": "ET TROJAN x", "id": "1"},
        "source": {"ip": "203.0.113.5", "port": 4444},
        "vigil": {"risk": 95, "destination_scope": "public"},
        "incident": {"alert_count": 6}
    });
    let _ = pb.matches(&doc as &dyn Fields);
    let _ = pb.propose(&doc, &connectors);
    assert!(parse(text, "fuzz.yaml", &connectors).is_ok(), "accepted once, refused again");
});
