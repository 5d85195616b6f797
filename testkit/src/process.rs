//! Spawning the workspace's own binaries (api, workers) from tests, so a
//! test can crash one with SIGKILL, stop it with SIGTERM and read its log.
//!
//! Each process runs in its own process group: a worker may start children
//! of its own (build tools, ssh, podman clients) and a crash test must be
//! able to take the whole tree down, while `kill_on_drop` plus the `Drop`
//! impl make sure nothing outlives a failed test.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use crate::os;
use crate::util::hex8;

/// Path of workspace binary `name`: `$SLIPWAY_BIN_DIR/name` if that is set,
/// else `<CARGO_TARGET_DIR or WORKSPACE/target>/debug/name`.
pub fn bin_path(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("SLIPWAY_BIN_DIR") {
        return PathBuf::from(dir).join(name);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit lives inside the workspace");
    // A relative CARGO_TARGET_DIR is taken relative to the workspace, where
    // cargo is normally invoked, not to a test binary's working directory.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|t| workspace.join(t))
        .unwrap_or_else(|| workspace.join("target"));
    target.join("debug").join(name)
}

/// A running workspace binary owned by a test; killed (with its process
/// group) on drop, and its log deleted unless the test is panicking.
pub struct Proc {
    name: String,
    child: Child,
    pid: u32,
    log_path: PathBuf,
}

impl Proc {
    /// Start binary `name` (see [`bin_path`]) with extra environment `envs`.
    /// stdout and stderr are appended to a log file in the temp dir.
    pub fn spawn(name: &str, envs: &[(String, String)]) -> anyhow::Result<Proc> {
        Self::spawn_wrapped(name, envs, &[])
    }

    /// Like [`Proc::spawn`], run through `wrapper` (a command prefix that
    /// execs its last argument, e.g. into a namespace); the pid stays the
    /// binary's as long as the wrapper execs rather than forks.
    pub fn spawn_wrapped(
        name: &str,
        envs: &[(String, String)],
        wrapper: &[String],
    ) -> anyhow::Result<Proc> {
        let path = bin_path(name);
        if !path.is_file() {
            bail!(
                "binary {} not found; build it first (cargo build -p <crate>) or set SLIPWAY_BIN_DIR",
                path.display()
            );
        }
        let log_path = std::env::temp_dir().join(format!("slipway-proc-{name}-{}.log", hex8()));
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(&path);
                command
            }
            None => Command::new(&path),
        };
        let child = command
            .envs(envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("spawning {}", path.display()))?;
        let pid = child.id().context("spawned child has no pid")?;
        Ok(Proc {
            name: name.to_string(),
            child,
            pid,
            log_path,
        })
    }

    /// OS pid (also the process group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The binary name this process was spawned from.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// File receiving the process's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Last `n` lines of the log, for assertion messages.
    pub fn log_tail(&self, n: usize) -> String {
        os::file_tail(&self.log_path, n)
    }

    /// SIGKILL the whole process group: a crash of the process and of
    /// everything it started. Already-exited is not an error.
    pub fn sigkill(&self) -> anyhow::Result<()> {
        os::kill_group(self.pid as i32);
        Ok(())
    }

    /// SIGTERM the process only, so it can shut down gracefully and stop its
    /// own children itself. Already-exited is not an error.
    pub fn sigterm(&self) -> anyhow::Result<()> {
        match kill(Pid::from_raw(self.pid as i32), Signal::SIGTERM) {
            Ok(()) | Err(Errno::ESRCH) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("SIGTERM to {} ({})", self.name, self.pid)),
        }
    }

    /// Wait up to `timeout` for the process to exit; `None` if it is still
    /// running.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .ok()
            .and_then(Result::ok)
    }

    /// Whether the process has not exited yet.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // kill_on_drop only reaches the direct child; grandchildren in the
        // same group are taken down here.
        os::kill_group(self.pid as i32);
        // Logs of a passing test are noise in /tmp; a failing (panicking)
        // test keeps its log for the post-mortem.
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log_path);
        }
    }
}
