//! Recognising a one-line JSON document that wraps a list of records (a `findings` list, a
//! search response), so detection reads it as a document; `reader` cuts the records out.

use serde_json::value::RawValue;
use std::collections::HashMap;

/// True when `text` is an object wrapping a list of records.
pub fn is_wrapper(text: &str) -> bool {
    serde_json::from_str::<&RawValue>(text).is_ok_and(|top| wrapped(top).is_some())
}

fn list(raw: &RawValue) -> Option<Vec<&str>> {
    let items: Vec<&RawValue> = serde_json::from_str(raw.get()).ok()?;
    Some(items.iter().map(|r| r.get()).collect())
}

fn object(raw: &RawValue) -> Option<HashMap<String, &RawValue>> {
    serde_json::from_str(raw.get()).ok()
}

/// The records of an object that wraps a list of them.
fn wrapped(top: &RawValue) -> Option<Vec<&str>> {
    if !top.get().starts_with('{') {
        return None;
    }
    let map = object(top)?;
    let inner = ["findings", "Findings", "Records"]
        .iter()
        .find_map(|k| map.get(*k).filter(|v| v.get().starts_with('[')))
        .copied()
        .or_else(|| {
            let hits = object(map.get("hits")?)?;
            hits.get("hits").copied()
        })
        .or_else(|| {
            map.get("detail-type")?;
            let detail = object(map.get("detail")?)?;
            detail.get("findings").copied()
        })?;
    list(inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrappers_are_objects_holding_a_records_list() {
        assert!(is_wrapper("{\n \"findings\": [\n  {\"id\": 1}\n ]\n}"));
        assert!(is_wrapper(
            r#"{"took":1,"hits":{"total":2,"hits":[{"_id":"a"}]}}"#
        ));
        assert!(is_wrapper(
            r#"{"detail-type":"x","detail":{"findings":[]}}"#
        ));
        assert!(!is_wrapper(r#"{"a":1}"#));
        assert!(!is_wrapper("[{\"a\":1}]"));
    }
}
