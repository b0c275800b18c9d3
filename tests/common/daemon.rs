//! A vigil left running while a test works on it (usually `vigil daemon`): started in a private
//! home, signalled, stopped, and killed and reaped when the test ends however it ends, so a
//! failing assertion leaves no process behind. Include it with `mod common;` and
//! `#[path = "common/daemon.rs"] mod daemon;`.
#![allow(dead_code)]

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::Path;
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Output, Stdio};

/// A running process, killed and reaped on drop unless the test already waited for it.
pub struct Daemon(Option<Child>);

impl Daemon {
    /// `vigil ARGS` in a private home, its output discarded.
    pub fn start(home: &Path, args: &[&str]) -> Daemon {
        let mut c = crate::common::command(home, args);
        c.stdout(Stdio::null()).stderr(Stdio::null());
        Daemon::spawn(c)
    }

    /// `vigil ARGS` in a private home, its stdout and stderr kept for `stop`, `take_stdout`
    /// and `take_stderr`.
    pub fn start_piped(home: &Path, args: &[&str]) -> Daemon {
        let mut c = crate::common::command(home, args);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        Daemon::spawn(c)
    }

    /// A command set up by the caller (another program, another environment).
    pub fn spawn(mut cmd: Command) -> Daemon {
        Daemon(Some(cmd.spawn().expect("start vigil")))
    }

    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("still running")
    }

    pub fn pid(&self) -> u32 {
        self.0.as_ref().map_or(0, Child::id)
    }

    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.pid() as i32), signal).expect("signal the daemon");
    }

    pub fn take_stdout(&mut self) -> ChildStdout {
        self.child().stdout.take().expect("stdout piped")
    }

    pub fn take_stderr(&mut self) -> ChildStderr {
        self.child().stderr.take().expect("stderr piped")
    }

    /// Its exit status once it has exited, `None` while it runs.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child().try_wait().expect("try_wait")
    }

    pub fn wait(mut self) -> ExitStatus {
        let mut child = self.0.take().expect("still running");
        child.wait().expect("daemon exit")
    }

    pub fn wait_with_output(mut self) -> Output {
        let child = self.0.take().expect("still running");
        child.wait_with_output().expect("daemon exit")
    }

    /// Stop it as an operator would (SIGTERM) and return how it ended and what it printed.
    pub fn stop(self) -> Output {
        self.signal(Signal::SIGTERM);
        self.wait_with_output()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
