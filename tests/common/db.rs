//! A read-only look into the database a test's vigil writes, safe while a daemon is writing it.
//! Include it with `#[path = "common/db.rs"] mod db;`.
#![allow(dead_code)]

use rusqlite::{Connection, OpenFlags, Row};
use std::path::Path;
use std::time::Duration;

/// The rows `sql` selects, each made by `row`, from the database at `db` opened read-only
/// (waiting up to 5 s for a writer's lock).
pub fn query<T>(
    db: &Path,
    sql: &str,
    row: impl FnMut(&Row) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map([], row)?.collect();
    rows
}

/// The number `sql` selects; 0 while the database cannot be read yet (a daemon is still
/// creating it), so it can be polled from the start.
pub fn number(db: &Path, sql: &str) -> i64 {
    query(db, sql, |r| r.get(0))
        .ok()
        .and_then(|v| v.into_iter().next())
        .unwrap_or(0)
}

/// How many alerts are stored.
pub fn alerts(db: &Path) -> i64 {
    number(db, "SELECT count(*) FROM alerts")
}

/// The first column of every row `sql` selects, as text; for a database nothing writes any more.
pub fn texts(db: &Path, sql: &str) -> Vec<String> {
    query(db, sql, |r| r.get(0)).unwrap_or_else(|e| panic!("{sql} on {}: {e}", db.display()))
}
