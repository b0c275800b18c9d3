//! Fuzz the templater: any template against a context whose value is any string. It must never
//! panic, must fail wherever `playbook check` would, and must insert a value exactly once, byte
//! for byte, without scanning it again (a value holding `${...}` stays text).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use vigil::engine::template::{placeholders, render};

fuzz_target!(|input: (String, String)| {
    let (template, value) = input;
    let ctx = json!({
        "alert": {"f": value, "n": 7, "obj": {"k": value}, "list": [value]},
        "vigil": {"risk": 90}
    });

    let rendered = render(&template, &ctx);
    if placeholders(&template).is_err() {
        assert!(rendered.is_err(), "check passes what render refuses: {template:?}");
    }
    if !template.contains('$') {
        assert_eq!(rendered, Ok(Value::String(template.clone())));
    }

    let text = |t: &str| render(t, &ctx);
    assert_eq!(text("${alert.f}"), Ok(Value::String(value.clone())));
    assert_eq!(text("<${alert.f}>"), Ok(Value::String(format!("<{value}>"))));
    assert_eq!(
        text("${alert.obj.k}$${alert.f}"),
        Ok(Value::String(format!("{value}${{alert.f}}")))
    );
    assert_eq!(text("${alert.n}"), Ok(json!(7)));
});
