//! What the integration tests share: running the real binary in a private home.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};

/// `program ARGS` run from the repository root with vigil's data, config and cache under
/// `home`: the binary itself, or a wrapper around it (a shell setting a umask, `setpriv`).
pub fn command_for(
    program: impl AsRef<OsStr>,
    home: &Path,
    args: impl IntoIterator<Item = impl AsRef<OsStr>>,
) -> Command {
    let mut c = Command::new(program);
    c.args(args)
        .env("VIGIL_DATA", home.join("data"))
        .env("VIGIL_CONFIG", home.join("config"))
        .env("VIGIL_CACHE", home.join("cache"))
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

/// `vigil ARGS` in a private home, not yet started.
pub fn command(home: &Path, args: &[&str]) -> Command {
    command_for(env!("CARGO_BIN_EXE_vigil"), home, args)
}

/// Run `vigil ARGS` in a private home to its end.
// A test file that only starts daemons (through `command`) runs no one-shot command.
#[allow(dead_code)]
pub fn vigil(home: &Path, args: &[&str]) -> Output {
    command(home, args).output().expect("run vigil")
}
