//! A test-owned Caddy on free loopback ports: its admin API answers on one
//! port and a second port is set aside for the HTTP server a test creates
//! through that API (so the test exercises server creation itself). State
//! (`XDG_DATA_HOME`, `XDG_CONFIG_HOME`) lives in a temp dir of its own.
//! Killed by pid (its own process group) and its dir removed on `Drop`;
//! `restart` replaces it with a fresh one on the same ports, as after a
//! crash.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use crate::os;
use crate::util::{free_port, hex8, spawn_server, wait_http_ok};

const BINARY: &str = "caddy";

pub struct Caddy {
    admin_addr: String,
    http_addr: String,
    dir: PathBuf,
    child: tokio::process::Child,
    pid: i32,
}

impl Caddy {
    /// Starts `caddy run` with only its admin API configured and waits
    /// until `/config/` answers. Fails with a hint when Caddy is missing.
    pub async fn start() -> anyhow::Result<Caddy> {
        let dir = std::env::temp_dir().join(format!("slipway-caddy-{}", hex8()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        // A port taken between free_port and Caddy's bind makes it exit at
        // once; a few attempts cover that race.
        let mut last_error = None;
        for _ in 0..3 {
            match Self::start_in(&dir).await {
                Ok(caddy) => return Ok(caddy),
                Err(e) => last_error = Some(e),
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        Err(last_error.expect("at least one attempt"))
    }

    async fn start_in(dir: &Path) -> anyhow::Result<Caddy> {
        let admin_addr = format!("127.0.0.1:{}", free_port());
        let http_addr = format!("127.0.0.1:{}", free_port());
        Self::start_at(dir, admin_addr, http_addr).await
    }

    /// Kills this Caddy (SIGKILL to its group, as a crash would) and starts
    /// a fresh one on the same ports with only its admin API configured:
    /// every server and route it had is gone.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        os::kill_group(self.pid);
        let _ = self.child.wait().await;
        let fresh =
            Self::start_at(&self.dir, self.admin_addr.clone(), self.http_addr.clone()).await?;
        let mut old = std::mem::replace(self, fresh);
        // The old process is gone and reaped, and the dir is the new one's:
        // its Drop has nothing left to do (kill_group ignores pid 0).
        old.pid = 0;
        old.dir = PathBuf::new();
        Ok(())
    }

    async fn start_at(dir: &Path, admin_addr: String, http_addr: String) -> anyhow::Result<Caddy> {
        let config = dir.join("caddy.json");
        std::fs::write(
            &config,
            serde_json::json!({"admin": {"listen": admin_addr}}).to_string(),
        )?;
        let mut command = tokio::process::Command::new(BINARY);
        command
            .arg("run")
            .arg("--config")
            .arg(&config)
            .env("XDG_DATA_HOME", dir.join("data"))
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .env("HOME", dir);
        let (child, pid) = spawn_server(
            command,
            &dir.join("caddy.log"),
            "run scripts/deploy-tools.sh (as root) first",
        )?;
        let mut caddy = Caddy {
            admin_addr,
            http_addr,
            dir: dir.to_path_buf(),
            child,
            pid,
        };
        let url = format!("http://{}/config/", caddy.admin_addr);
        let ready = tokio::select! {
            ready = wait_http_ok(&url, Duration::from_secs(15)) => ready,
            status = caddy.child.wait() => Err(anyhow::anyhow!(
                "caddy exited at once ({status:?}): {}",
                os::file_tail(&dir.join("caddy.log"), 10)
            )),
        };
        match ready {
            Ok(()) => Ok(caddy),
            Err(e) => {
                os::kill_group(caddy.pid);
                // Keep the dir for the next attempt; only this process goes.
                caddy.dir = PathBuf::new();
                Err(e)
            }
        }
    }

    /// `http://127.0.0.1:PORT` of the admin API.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin_addr)
    }

    /// `127.0.0.1:PORT`, free when Caddy started, for the test's HTTP server.
    pub fn http_addr(&self) -> &str {
        &self.http_addr
    }

    /// The Caddy process' pid (also its process group).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The last lines of Caddy's log, for assertion messages.
    pub fn log_tail(&self, lines: usize) -> String {
        os::file_tail(&self.dir.join("caddy.log"), lines)
    }
}

impl Drop for Caddy {
    fn drop(&mut self) {
        os::kill_group(self.pid);
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
