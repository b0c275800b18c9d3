//! Whole JSON documents (a pretty-printed array, a `findings` list, a search response): where
//! each record starts and ends, so every record keeps its own text, line and byte offset.

use serde_json::value::RawValue;
use std::collections::HashMap;

/// The records of a document, each as its exact text inside `text`: the elements of a
/// top-level array, of a `findings` / `Findings` list (GuardDuty, Security Hub), of a
/// CloudTrail file's `Records`, of a search
/// response's `hits.hits`, or of an EventBridge event's `detail.findings`; otherwise the
/// document itself.
///
/// # Errors
/// The document is not valid JSON.
pub fn records(text: &str) -> Result<Vec<&str>, serde_json::Error> {
    let top: &RawValue = serde_json::from_str(text)?;
    Ok(inner(top))
}

/// True when `text` is an object wrapping a list of records (see `records`).
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

fn inner(top: &RawValue) -> Vec<&str> {
    let s = top.get();
    if s.starts_with('[') {
        if let Some(items) = list(top) {
            return items;
        }
    }
    wrapped(top).unwrap_or_else(|| vec![s])
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

/// Byte offset of `part` inside `whole` (`part` must be a slice of `whole`).
pub fn offset_in(whole: &str, part: &str) -> usize {
    (part.as_ptr() as usize).saturating_sub(whole.as_ptr() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrappers_yield_their_elements_with_exact_text() {
        let doc = "{\n \"findings\": [\n  {\"id\": 1},\n  {\"id\": 2}\n ]\n}";
        let r = records(doc).expect("valid");
        assert_eq!(r, vec!["{\"id\": 1}", "{\"id\": 2}"]);
        assert_eq!(
            offset_in(doc, r[1]),
            doc.find("{\"id\": 2}").expect("there")
        );
        let hits = r#"{"took":1,"hits":{"total":2,"hits":[{"_id":"a"},{"_id":"b"}]}}"#;
        assert_eq!(records(hits).expect("valid").len(), 2);
        assert_eq!(records("[]").expect("valid").len(), 0);
        assert_eq!(records(r#"{"a":1}"#).expect("valid"), vec![r#"{"a":1}"#]);
        assert!(records("[{\"a\":1},").is_err());
    }
}
