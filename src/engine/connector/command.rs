//! The command connector: start one allowlisted executable (an absolute path from the config)
//! with each param as exactly one argv element. Owns argv placement, the environment, the
//! timeout (the whole process group is killed) and capturing output. There is no shell
//! anywhere: the process is started with execve semantics, so `;`, `$( )`, backticks and
//! quotes in a value are just bytes of one argument.

use super::{check_len, quoted, scalar_text, ConnectorError, Params, Undone};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

/// `[connectors.command]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Absolute paths of the executables steps may run; empty: command steps are never
    /// proposed.
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    /// How much of stdout and of stderr the outcome keeps.
    #[serde(default = "default_output_limit")]
    pub output_limit_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            allow: Vec::new(),
            timeout_seconds: default_timeout(),
            output_limit_bytes: default_output_limit(),
        }
    }
}

fn default_timeout() -> u64 {
    30
}

fn default_output_limit() -> usize {
    4096
}

/// Programs that turn an argument into code. Allowlisting one would let alert text run, so
/// the config refuses them by file name.
const INTERPRETERS: &[&str] = &[
    "sh",
    "bash",
    "dash",
    "zsh",
    "ksh",
    "mksh",
    "csh",
    "tcsh",
    "fish",
    "busybox",
    "env",
    "sudo",
    "su",
    "doas",
    "xargs",
    "nohup",
    "timeout",
    "nice",
    "setsid",
    "perl",
    "ruby",
    "node",
    "php",
    "lua",
    "pwsh",
    "osascript",
    "awk",
    "gawk",
    "mawk",
    "sed",
    "find",
];

/// The environment a command gets: nothing of vigil's own (it may hold API tokens) but a fixed
/// PATH and the idempotency key.
pub const PATH_ENV: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Longest whole argv, well under Linux's ARG_MAX.
pub const MAX_ARGV_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, Default)]
pub(crate) struct Commands {
    allow: BTreeSet<PathBuf>,
    timeout: Duration,
    output_limit: usize,
}

/// One process to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandCall {
    pub program: PathBuf,
    /// argv\[1..\], each exactly one element. Includes the `--` vigil adds before operands.
    pub args: Vec<String>,
    /// Set as `VIGIL_IDEMPOTENCY_KEY` in the command's environment.
    pub idempotency_key: String,
    pub timeout: Duration,
    pub output_limit: usize,
}

impl fmt::Display for CommandCall {
    /// `run ["/abs/prog","arg",...] env {"VIGIL_IDEMPOTENCY_KEY":"..."} timeout 30s`: argv as
    /// a JSON list, so every element's boundaries are visible.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut argv = vec![Value::String(self.program.display().to_string())];
        argv.extend(self.args.iter().cloned().map(Value::String));
        write!(
            f,
            "run {} env {{\"VIGIL_IDEMPOTENCY_KEY\":{}}} timeout {}s",
            Value::Array(argv),
            quoted(&self.idempotency_key),
            self.timeout.as_secs()
        )
    }
}

/// An absolute path made only of plain components: no `.`, `..` or trailing tricks, so the
/// text compared with the allowlist is the file that runs.
fn plain_absolute(p: &Path) -> bool {
    p.is_absolute()
        && p.components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
}

impl Commands {
    pub(crate) fn from_config(c: &Config) -> Result<Self, ConnectorError> {
        let mut allow = BTreeSet::new();
        for raw in &c.allow {
            let p = PathBuf::from(raw);
            if !plain_absolute(&p) {
                return Err(ConnectorError::config(
                    "command",
                    format!("allow: {raw:?} is not an absolute path without `.` or `..`"),
                ));
            }
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            if INTERPRETERS.contains(&name.as_str()) || name.starts_with("python") {
                return Err(ConnectorError::config(
                    "command",
                    format!("allow: {raw:?} runs its arguments as code; allowlist a script or program that does one thing"),
                ));
            }
            allow.insert(p);
        }
        Ok(Commands {
            allow,
            timeout: super::timeout_from(c.timeout_seconds),
            output_limit: c.output_limit_bytes.max(1),
        })
    }

    /// Params: `program` (an allowlisted absolute path), `arg.1..N` (one argv element each; a
    /// value starting with `-` is refused so alert text cannot become an option), and
    /// `operand.1..N` (one argv element each, placed after a `--` vigil adds, where a leading
    /// `-` is only data).
    pub(crate) fn prepare(
        &self,
        p: &mut Params<'_>,
        key: &str,
    ) -> Result<CommandCall, ConnectorError> {
        if self.allow.is_empty() {
            return Err(ConnectorError::NotConfigured(
                "command",
                "[connectors.command] allow",
            ));
        }
        let program = PathBuf::from(p.text("program")?);
        if !self.allow.contains(&program) {
            return Err(ConnectorError::bad(
                "program",
                format!(
                    "{} is not in [connectors.command] allow",
                    super::shown(&program.display().to_string())
                ),
            ));
        }
        let mut args = Vec::new();
        for (param, v) in p.numbered("arg")? {
            let a = argv_element(&param, v)?;
            if a.starts_with('-') {
                return Err(ConnectorError::bad(
                    &param,
                    format!(
                        "{} starts with `-` and would be read as an option; put values that may start with `-` in operand.N (after `--`)",
                        super::shown(&a)
                    ),
                ));
            }
            args.push(a);
        }
        let operands = p.numbered("operand")?;
        if !operands.is_empty() {
            args.push("--".to_string());
            for (param, v) in operands {
                args.push(argv_element(&param, v)?);
            }
        }
        let total: usize = args.iter().map(|a| a.len() + 1).sum();
        if total > MAX_ARGV_BYTES {
            return Err(ConnectorError::bad(
                "arg",
                format!("argv would be {total} bytes, over the {MAX_ARGV_BYTES} byte limit"),
            ));
        }
        Ok(CommandCall {
            program,
            args,
            idempotency_key: key.to_string(),
            timeout: self.timeout,
            output_limit: self.output_limit,
        })
    }
}

/// One argv element: text, number or boolean; NUL is refused (it cannot be in an argument, and
/// cutting there would change the value).
fn argv_element(param: &str, v: &Value) -> Result<String, ConnectorError> {
    let a = scalar_text(param, v)?;
    if a.contains('\0') {
        return Err(ConnectorError::bad(
            param,
            "contains NUL, which cannot be part of an argument",
        ));
    }
    check_len(param, &a, super::MAX_VALUE_BYTES)?;
    Ok(a)
}

/// Keep the first `limit` bytes of a pipe while draining the rest, so a chatty command can
/// neither block on a full pipe nor fill vigil's memory.
async fn read_capped(pipe: Option<impl AsyncRead + Unpin>, limit: usize) -> (Vec<u8>, usize) {
    let mut kept = Vec::new();
    let mut total = 0usize;
    let Some(mut pipe) = pipe else {
        return (kept, 0);
    };
    let mut buf = [0u8; 8192];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                total += n;
                let room = limit.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    (kept, total)
}

/// Start the process, wait for it within the timeout, and describe how it ended. On timeout the
/// whole process group is killed, so children it started die with it.
pub(crate) async fn run(call: &CommandCall) -> Result<String, Undone> {
    let shown = call.program.display().to_string();
    let mut cmd = tokio::process::Command::new(&call.program);
    cmd.args(&call.args)
        .env_clear()
        .env("PATH", PATH_ENV)
        .env("VIGIL_IDEMPOTENCY_KEY", &call.idempotency_key)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("{shown}: cannot start: {e}"))?;
    let pid = child.id();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let limit = call.output_limit;
    let finished = tokio::time::timeout(call.timeout, async {
        tokio::join!(
            read_capped(stdout, limit),
            read_capped(stderr, limit),
            child.wait()
        )
    })
    .await;
    let Ok(((out, out_total), (err, err_total), status)) = finished else {
        if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = child.wait().await;
        return Err(Undone::unknown(format!(
            "{shown}: timed out after {}s; killed with its process group",
            call.timeout.as_secs()
        )));
    };
    let status = status.map_err(|e| Undone::unknown(format!("{shown}: {e}")))?;
    let stream = |name: &str, kept: &[u8], total: usize| {
        if total > kept.len() {
            format!(
                "{name} {} ({total} bytes, first {} kept)",
                quoted(&String::from_utf8_lossy(kept)),
                kept.len()
            )
        } else {
            format!("{name} {}", quoted(&String::from_utf8_lossy(kept)))
        }
    };
    let how = match status.code() {
        Some(code) => format!("exited with status {code}"),
        None => "was killed by a signal".to_string(),
    };
    let detail = format!(
        "{shown} {how}; {}; {}",
        stream("stdout", &out, out_total),
        stream("stderr", &err, err_total)
    );
    if status.success() {
        Ok(detail)
    } else {
        Err(Undone::answered(detail))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::connector::{params, ConnectorConfig, Connectors};
    use serde_json::json;

    fn connectors(allow: &[&str], timeout: u64) -> Connectors {
        let mut c = ConnectorConfig::default();
        c.command.allow = allow.iter().map(|s| s.to_string()).collect();
        c.command.timeout_seconds = timeout;
        Connectors::from_config(&c, "/tmp/bl.txt".into()).expect("config")
    }

    /// Where this system keeps a coreutils program.
    fn coreutil(name: &str) -> String {
        ["/usr/bin", "/bin"]
            .iter()
            .map(|d| format!("{d}/{name}"))
            .find(|p| Path::new(p).exists())
            .unwrap_or_else(|| panic!("{name} is part of coreutils"))
    }

    #[test]
    fn config_refuses_relative_paths_and_interpreters() {
        for bad in [
            "printf",
            "/usr/bin/../bin/sh",
            "/bin/sh",
            "/usr/bin/python3",
            "/usr/bin/env",
        ] {
            let mut c = ConnectorConfig::default();
            c.command.allow = vec![bad.into()];
            assert!(
                Connectors::from_config(&c, "/tmp/b".into()).is_err(),
                "{bad} allowed"
            );
        }
    }

    #[test]
    fn leading_dash_is_refused_except_after_the_double_dash() {
        let c = connectors(&["/usr/bin/printf"], 5);
        let e = c
            .describe(
                "command",
                &params(json!({"program": "/usr/bin/printf", "arg.1": "-v"})),
            )
            .expect_err("option");
        assert!(
            e.to_string()
                .starts_with("param `arg.1`: \"-v\" starts with `-`"),
            "{e}"
        );
        let shown = c
            .describe(
                "command",
                &params(json!({"program": "/usr/bin/printf", "arg.1": "%s", "operand.1": "-v", "operand.2": 7})),
            )
            .expect("operand");
        assert_eq!(
            shown,
            "run [\"/usr/bin/printf\",\"%s\",\"--\",\"-v\",\"7\"] env {\"VIGIL_IDEMPOTENCY_KEY\":\"<idempotency key>\"} timeout 5s"
        );
        let e = c
            .describe(
                "command",
                &params(json!({"program": "/bin/sh", "arg.1": "x"})),
            )
            .expect_err("not allowed");
        assert_eq!(
            e.to_string(),
            "param `program`: \"/bin/sh\" is not in [connectors.command] allow"
        );
    }

    #[tokio::test]
    async fn output_is_captured_and_the_key_is_in_the_environment() {
        let printenv = &coreutil("printenv");
        let c = connectors(&[printenv], 5);
        let out = c
            .execute(
                "command",
                &params(json!({"program": printenv})),
                "vigil-3-0123456789abcdef",
            )
            .await;
        assert!(out.ok, "{}", out.detail);
        assert!(
            out.detail.contains(
                r#"stdout "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nVIGIL_IDEMPOTENCY_KEY=vigil-3-0123456789abcdef\n""#
            ),
            "only PATH and the key, nothing of vigil's environment: {}",
            out.detail
        );
    }

    #[tokio::test]
    async fn a_command_past_its_timeout_is_killed() {
        let sleep = &coreutil("sleep");
        let c = connectors(&[sleep], 1);
        let out = c
            .execute(
                "command",
                &params(json!({"program": sleep, "arg.1": "30"})),
                "k",
            )
            .await;
        assert!(!out.ok);
        assert!(out.detail.contains("timed out after 1s"), "{}", out.detail);
    }

    #[tokio::test]
    async fn failing_commands_report_status_and_stderr() {
        let ls = &coreutil("ls");
        let c = connectors(&[ls], 5);
        let out = c
            .execute(
                "command",
                &params(json!({"program": ls, "operand.1": "/nonexistent/-vigil"})),
                "k",
            )
            .await;
        assert!(!out.ok);
        assert!(
            out.detail.contains("exited with status 2"),
            "{}",
            out.detail
        );
        assert!(out.detail.contains("/nonexistent/-vigil"), "{}", out.detail);
    }
}
