//! vigil: a terminal-first SOAR. The library holds everything; `main.rs` is a thin shell over `cli`.
//!
//! `engine` owns ingestion, scoring, playbooks, connectors and the database and never imports a
//! terminal crate; `tui` (behind the default `tui` feature) only draws engine state and sends
//! commands back.

pub mod bench;
pub mod cli;
pub mod config;
pub mod engine;
pub mod file_access;
pub mod identity;
pub mod paths;
pub mod sanitize;
#[cfg(feature = "tui")]
pub mod tui;
