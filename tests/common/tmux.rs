//! The real binary in a real terminal: a private tmux server per test, an 80x24 pane, keys sent
//! as an analyst types them and the screen read back as text. Include it with
//! `#[path = "common/tmux.rs"] mod tmux;` beside `#[path = "common/wait.rs"] mod wait;`.
//!
//! Waiting is on what the screen shows (polled every few milliseconds up to a deadline), never a
//! fixed sleep: a test passes as soon as the screen is right and fails with the last screen in
//! its message when it never is.
#![allow(dead_code)]

use crate::wait::poll_for;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// One tmux server on a socket of its own, with one session running one command.
pub struct Tmux {
    socket: PathBuf,
    /// Where the shell around the program writes its exit status.
    status: PathBuf,
    _dir: tempfile::TempDir,
}

/// Whether this machine has tmux; tests that need it say so in one line when it is missing.
pub fn available() -> bool {
    Command::new("tmux")
        .arg("-V")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

impl Tmux {
    /// Start `argv` in a detached `width`x`height` pane with `env` set and `cwd` as its working
    /// directory. The pane stays after the command exits so its last screen and exit status can
    /// be read.
    pub fn start(argv: &[&str], env: &[(&str, &str)], cwd: &Path, width: u16, height: u16) -> Self {
        let dir = tempfile::tempdir().expect("tmux socket dir");
        let socket = dir.path().join("tmux.sock");
        // The pane must outlive its program from the very start, or a quick exit takes the
        // server (and the exit status) with it.
        let conf = dir.path().join("tmux.conf");
        std::fs::write(&conf, "set -g remain-on-exit on\nset -g status off\n").expect("tmux.conf");
        let status = dir.path().join("exit-status");
        let t = Tmux {
            socket,
            status: status.clone(),
            _dir: dir,
        };
        let mut cmd = vec![
            "-f".to_string(),
            conf.display().to_string(),
            "new-session".to_string(),
            "-d".to_string(),
            "-x".to_string(),
            width.to_string(),
            "-y".to_string(),
            height.to_string(),
            "-s".to_string(),
            "t".to_string(),
            "-c".to_string(),
            cwd.display().to_string(),
            "--".to_string(),
            "env".to_string(),
            "TERM=xterm-256color".to_string(),
        ];
        for (k, v) in env {
            cmd.push(format!("{k}={v}"));
        }
        // tmux 3.3 now and then marks a pane dead without ever recording how its program
        // ended (the program left as a zombie): a shell around it writes the status instead.
        cmd.extend(
            [
                "sh",
                "-c",
                "status=$1; shift; \"$@\"; echo $? > \"$status\"",
                "sh",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        cmd.push(status.display().to_string());
        cmd.extend(argv.iter().map(|s| s.to_string()));
        let out = t.tmux(&cmd.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(
            out.status.success(),
            "tmux new-session failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        t
    }

    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run tmux")
    }

    /// Send key names as tmux understands them (`Enter`, `Tab`, `Escape`, `C-c`, `q`).
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    /// Type `text` literally, character by character as a person would.
    pub fn type_text(&self, text: &str) {
        self.tmux(&["send-keys", "-t", "t", "-l", text]);
    }

    /// The pane's text as it stands now, one line per row.
    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-t", "t"]).stdout).into_owned()
    }

    /// The pane's content with its escape sequences (colours), for checks on attributes.
    pub fn screen_with_escapes(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-e", "-t", "t"]).stdout)
            .into_owned()
    }

    /// Wait until the screen satisfies `pred`, returning that screen; panics with `what` and the
    /// last screen after `timeout`.
    pub fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        poll_for(timeout, || {
            last = self.screen();
            pred(&last).then(|| last.clone())
        })
        .unwrap_or_else(|| panic!("timed out waiting for {what}; the screen was:\n{last}"))
    }

    /// Wait until the screen contains `text`.
    pub fn wait_text(&self, text: &str, timeout: Duration) -> String {
        self.wait_for(&format!("{text:?} on screen"), timeout, |s| {
            s.contains(text)
        })
    }

    /// The PID of the program running in the pane (the child of the shell around it).
    pub fn pid(&self) -> u32 {
        let out = self.tmux(&["display-message", "-p", "-t", "t", "#{pane_pid}"]);
        let shell: u32 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("pane pid");
        let child = poll_for(Duration::from_secs(10), || {
            let children = std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children"))
                .unwrap_or_default();
            children.split_whitespace().next().map(str::to_string)
        })
        .expect("the program never started");
        child.parse().expect("child pid")
    }

    /// The program's exit status once it has exited (128 + the signal number when a signal
    /// ended it), `None` while it runs.
    pub fn exit_status(&self) -> Option<i32> {
        std::fs::read_to_string(&self.status)
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    /// Wait for the program to exit and return its status.
    pub fn wait_exit(&self, timeout: Duration) -> i32 {
        poll_for(timeout, || self.exit_status()).unwrap_or_else(|| {
            panic!(
                "program still running after {timeout:?}; the screen was:\n{}",
                self.screen()
            )
        })
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.tmux(&["kill-server"]);
    }
}

/// CPU time (user + system, in clock ticks) a process has used so far, from `/proc/PID/stat`.
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc stat");
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let rest = &stat[stat.rfind(')').expect("stat has a comm field") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime")
}
