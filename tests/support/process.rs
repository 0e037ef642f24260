//! The one guard for every child process a test starts (routewatch, gobgpd, prometheus, bgpdump,
//! the test binary itself): it is killed by pid (SIGKILL) and reaped when the guard drops while
//! it still runs, and its log, if it has one, is printed when the test is failing.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A running child process of a test.
pub struct ChildGuard {
    child: Child,
    /// What it is, for messages ("routewatch", "gobgpd router", ...).
    name: String,
    /// Where its stdout and stderr go, when it has a log.
    log: Option<PathBuf>,
}

impl ChildGuard {
    /// Spawns `cmd` with stdin from /dev/null; with `log`, its stdout and stderr go to that file
    /// (created anew), otherwise they are as `cmd` says. A program that is not installed fails
    /// the test with `install`, the way to install it.
    pub fn start(name: &str, cmd: &mut Command, log: Option<&Path>, install: &str) -> ChildGuard {
        cmd.stdin(Stdio::null());
        if let Some(log) = log {
            let out = File::create(log).unwrap();
            cmd.stdout(out.try_clone().unwrap()).stderr(out);
        }
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "{:?} is not installed ({e}); this test runs it: {install}",
                cmd.get_program()
            ),
            Err(e) => panic!("cannot start {name}: {e}"),
        };
        ChildGuard {
            child,
            name: name.to_string(),
            log: log.map(Path::to_path_buf),
        }
    }

    /// Its pid.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Its log file, if it has one.
    pub fn log_path(&self) -> Option<&Path> {
        self.log.as_deref()
    }

    /// Its log, with a header naming it (empty without a log).
    pub fn log(&self) -> String {
        match &self.log {
            Some(path) => format!(
                "--- {} log ({}) ---\n{}",
                self.name,
                path.display(),
                std::fs::read_to_string(path).unwrap_or_default()
            ),
            None => String::new(),
        }
    }

    /// Its piped stdout (once).
    pub fn take_stdout(&mut self) -> ChildStdout {
        self.child.stdout.take().expect("stdout piped, taken once")
    }

    /// Its exit status, if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Panics when it has exited (the guard prints its log).
    pub fn assert_running(&mut self) {
        if let Some(status) = self.exited() {
            panic!("{} exited early ({status})", self.name);
        }
    }

    /// Sends `kill -SIGNAL` to its pid (`signal` as `kill` takes it: "TERM", "HUP").
    pub fn signal(&self, signal: &str) {
        let pid = self.id().to_string();
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(&pid)
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {pid}: {status}");
    }

    /// Waits at most `timeout` for it to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL by pid (when still running), and reaps it.
    pub fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // Child::kill sends SIGKILL to this child's pid.
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() && self.log.is_some() {
            eprintln!("{}", self.log());
        }
    }
}
