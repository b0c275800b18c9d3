//! Checkpoints kept in memory the way the database keeps them, for tests that drive the
//! follower step by step. Include it with `#[path = "common/checkpoints.rs"] mod checkpoints;`.
#![allow(dead_code)]

use std::collections::HashMap;
use vigil::engine::tailer::StoredCheckpoint;

/// The furthest checkpoint of any file whose identity ends in this full-length (256-byte) head,
/// as the database's `by_head` answers; `path_of` names the file for a checkpoint.
pub fn furthest_with_head(
    checkpoints: &HashMap<String, (u64, u64)>,
    head: &str,
    path_of: impl Fn(&str) -> String,
) -> Option<StoredCheckpoint> {
    checkpoints
        .iter()
        .filter(|(id, _)| id.ends_with(&format!(":256:{head}")))
        .max_by_key(|(_, v)| **v)
        .map(|(id, v)| StoredCheckpoint {
            file_id: id.clone(),
            path: path_of(id),
            offset: v.0,
            line: v.1,
        })
}
