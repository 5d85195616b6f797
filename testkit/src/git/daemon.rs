//! `git daemon` serving `git://127.0.0.1:PORT/<name>` from a base dir.

use crate::os;
use crate::util::{free_port, hex8};
use anyhow::{bail, Context};
use std::fs::File;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A test-owned git daemon; killed with its process group on drop.
pub struct GitDaemon {
    child: Child,
    port: u16,
    log_path: PathBuf,
}

impl GitDaemon {
    /// Serves every repository under `base_dir`. Fetching any reachable
    /// commit by id is allowed (`uploadpack.allowReachableSHA1InWant`), as
    /// on GitHub and GitLab; protocol v2 clients may do so anyway.
    pub fn start(base_dir: &Path) -> anyhow::Result<GitDaemon> {
        let mut last = None;
        // free_port() releases the port before git binds it: retry on a race.
        for _ in 0..3 {
            match Self::try_start(base_dir, free_port()) {
                Ok(daemon) => return Ok(daemon),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("tried at least once"))
    }

    fn try_start(base_dir: &Path, port: u16) -> anyhow::Result<GitDaemon> {
        let log_path = std::env::temp_dir().join(format!("slipway-git-daemon-{}.log", hex8()));
        let log = File::create(&log_path)?;
        let child = Command::new("git")
            .arg("daemon")
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base_dir.display()))
            .args([
                "--export-all",
                "--reuseaddr",
                "--verbose",
                "--log-destination=stderr",
            ])
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", "uploadpack.allowReachableSHA1InWant")
            .env("GIT_CONFIG_VALUE_0", "true")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .context("spawning git daemon")?;
        let mut daemon = GitDaemon {
            child,
            port,
            log_path,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(daemon);
            }
            if let Ok(Some(status)) = daemon.child.try_wait() {
                bail!(
                    "git daemon exited ({status}): {}",
                    os::file_tail(&daemon.log_path, 10)
                );
            }
            if Instant::now() > deadline {
                bail!("git daemon did not listen on 127.0.0.1:{port} within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process group id of the daemon and the upload-packs it forks.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `git://127.0.0.1:PORT/<name>`.
    pub fn url(&self, name: &str) -> String {
        format!("git://127.0.0.1:{}/{name}", self.port)
    }

    /// The daemon's log, for assertion messages.
    pub fn log_tail(&self, n: usize) -> String {
        os::file_tail(&self.log_path, n)
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        os::kill_group(self.child.id() as i32);
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log_path);
        }
    }
}
