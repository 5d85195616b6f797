//! The worker processes of the `recovery` scenario: where the release
//! binaries are (building them first if missing), and spawning each in its
//! own process group with the scenario's settings, stopped by its pid.

use crate::harness::Env;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

pub const BINARIES: [&str; 3] = [
    "slipway-worker-build",
    "slipway-worker-provision",
    "slipway-worker-deploy",
];
pub const HEARTBEAT: &str = "1s";
pub const LEASE_TIMEOUT: &str = "5s";
pub const SWEEP: &str = "1s";

/// A worker process this benchmark started; SIGKILLed by pid on drop.
pub struct Worker {
    pub id: String,
    pub child: Child,
    pid: i32,
    log: PathBuf,
}

impl Worker {
    pub fn spawn(env: &Env, dir: &Path, binary: &str, id: &str) -> anyhow::Result<Worker> {
        let log = std::env::temp_dir().join(format!("{id}.log"));
        let file = std::fs::File::create(&log)?;
        let child = Command::new(dir.join(binary))
            .env("SLIPWAY_DATABASE_URL", &env.db.url)
            .env("SLIPWAY_AMQP_URL", &env.amqp_url)
            .env("SLIPWAY_QUEUE_PREFIX", &env.prefix)
            .env("SLIPWAY_WORKER_ID", id)
            .env("SLIPWAY_METRICS_ADDR", "127.0.0.1:0")
            .env("SLIPWAY_HEARTBEAT_INTERVAL", HEARTBEAT)
            .env("SLIPWAY_LEASE_TIMEOUT", LEASE_TIMEOUT)
            .env("SLIPWAY_SWEEP_INTERVAL", SWEEP)
            .env("SLIPWAY_SHUTDOWN_GRACE", "5s")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()?;
        let pid = child
            .id()
            .ok_or_else(|| anyhow::anyhow!("{binary} exited at once"))? as i32;
        eprintln!(
            "[bench] recovery: started {binary} as {id} (pid {pid}, log {})",
            log.display()
        );
        Ok(Worker {
            id: id.to_owned(),
            child,
            pid,
            log,
        })
    }

    pub fn signal(&self, signal: Signal) {
        let _ = kill(Pid::from_raw(self.pid), signal);
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`.
    pub async fn stop(mut self, grace: Duration) {
        self.signal(Signal::SIGTERM);
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            self.signal(Signal::SIGKILL);
            let _ = self.child.wait().await;
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.signal(Signal::SIGKILL);
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SLIPWAY_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace.join("target"), |t| workspace.join(t));
    target.join("release")
}

/// Builds the worker binaries (a no-op when they are up to date): stale
/// binaries would carry older migrations than the database the bench made.
pub async fn ensure_binaries(dir: &Path) -> anyhow::Result<()> {
    if std::env::var_os("SLIPWAY_BIN_DIR").is_some() {
        anyhow::ensure!(
            BINARIES.iter().all(|b| dir.join(b).is_file()),
            "worker binaries missing in SLIPWAY_BIN_DIR={}",
            dir.display()
        );
        return Ok(());
    }
    eprintln!("[bench] recovery: building the worker binaries (release)");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."));
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build
        .current_dir(workspace)
        .args(["build", "--release", "--bins"]);
    for binary in BINARIES {
        build.args(["-p", binary]);
    }
    let status = build
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .status()
        .await?;
    anyhow::ensure!(status.success(), "cargo build failed: {status}");
    Ok(())
}
