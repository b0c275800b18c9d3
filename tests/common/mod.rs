//! What the integration tests share: running the real binary in a private home.

use std::path::Path;
use std::process::{Command, Output};

/// Run `vigil ARGS` from the repository root with its data, config and cache under `home`.
pub fn vigil(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .env("VIGIL_DATA", home.join("data"))
        .env("VIGIL_CONFIG", home.join("config"))
        .env("VIGIL_CACHE", home.join("cache"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run vigil")
}
