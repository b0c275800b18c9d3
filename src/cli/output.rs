//! What the command line prints. Every line to stderr, and every line to stdout while stdout is
//! a terminal, passes through `sanitize`, so a file name or an alert field cannot move the
//! cursor, retitle the window or reorder the line. JSON goes through `sanitize::json`, which is
//! safe on any destination; text piped elsewhere stays byte for byte what vigil meant.

use crate::sanitize::{json, sanitize};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

/// `eprintln!` made safe: one line on stderr, sanitised.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::cli::output::stderr_line(&format!($($arg)*))
    };
}

/// `println!` made safe: one line on stdout, sanitised when a terminal shows it.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::output::stdout_line(&format!($($arg)*))
    };
}

/// One line on stderr. A newline inside `s` is shown as `\n`, so no value can forge a line.
pub fn stderr_line(s: &str) {
    // Nowhere is left to report a failure to write to stderr.
    let _ = writeln!(std::io::stderr().lock(), "{}", sanitize(s));
}

/// One line on stdout.
pub fn stdout_line(s: &str) {
    let out = std::io::stdout();
    let line = if out.is_terminal() {
        sanitize(s)
    } else {
        std::borrow::Cow::Borrowed(s)
    };
    // A reader that went away (`| head`) is not worth a panic; there is no one left to tell.
    let _ = writeln!(out.lock(), "{line}");
}

/// One JSON line on stdout.
///
/// # Errors
/// Writing or serialising fails.
pub fn print_json(v: &impl serde::Serialize) -> std::io::Result<()> {
    json::write_line(std::io::stdout().lock(), v)
}

/// One JSON line on `out` (a buffered stdout for commands printing many lines).
///
/// # Errors
/// Writing or serialising fails.
pub fn write_json(out: &mut impl Write, v: &impl serde::Serialize) -> std::io::Result<()> {
    json::write_line(out, v)
}

/// A command line clap rejected, or asked for help. Errors quote what was typed (a file name
/// from a glob, say), so they are sanitised line by line; help and version are vigil's own text
/// and keep clap's colours.
pub fn argument_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
        }
        _ => {
            for line in e.render().to_string().lines() {
                stderr_line(line);
            }
        }
    }
    ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
}
