//! A test-owned RabbitMQ node, run as a child process next to the system
//! broker, for tests that must stop, kill or restart the broker.
//!
//! The node gets its own name, AMQP port, distribution port, data dir and
//! Erlang cookie so it never touches the system node `rabbit@localhost`.
//! The Debian wrapper `/usr/sbin/rabbitmq-server` is bypassed on purpose:
//! as root it re-executes through `su rabbitmq`, which loses our environment
//! and cannot write our data dir. We call the real scripts in
//! `/usr/lib/rabbitmq/bin` as root instead, with `HOME` pointing at the data
//! dir (cookie) and `RABBITMQ_CONF_ENV_FILE` pointing at our own env file,
//! so `/etc/rabbitmq/rabbitmq-env.conf` (`NODENAME=rabbit@localhost`) and
//! `/etc/rabbitmq/rabbitmq.conf` (port 5672) are never read.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::process::{Child, Command};

use self::layout::Layout;
use crate::os;
use crate::util::{free_port, hex8};

mod layout;

/// How long a start or restart may take before it is reported as failed
/// (measured on the 2-core machines: 4-6 s to start, 6-8 s for a graceful
/// restart, more while other tests compete for the CPU).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Directory with the real (non-wrapper) RabbitMQ scripts.
fn bin_dir() -> PathBuf {
    std::env::var_os("SLIPWAY_RABBITMQ_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/rabbitmq/bin"))
}

/// A RabbitMQ node owned by one test; killed and deleted on drop.
pub struct RabbitNode {
    layout: Layout,
    child: Option<Child>,
    pgid: Option<i32>,
}

impl RabbitNode {
    /// Start a fresh node and wait until `rabbitmqctl await_startup` passes.
    pub async fn start() -> anyhow::Result<Self> {
        let id = hex8();
        let port = free_port();
        let mut dist_port = free_port();
        while dist_port == port {
            dist_port = free_port();
        }
        let mut node = RabbitNode {
            layout: Layout {
                name: format!("slipway-t{id}@localhost"),
                port,
                dist_port,
                dir: std::env::temp_dir().join(format!("slipway-rabbit-t{id}")),
            },
            child: None,
            pgid: None,
        };
        node.layout.write_files()?;
        node.launch().await?;
        Ok(node)
    }

    /// `amqp://guest:guest@127.0.0.1:PORT/%2f`.
    pub fn amqp_url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.layout.port)
    }

    /// AMQP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.layout.port
    }

    /// Erlang node name, e.g. `slipway-t1a2b3c4d@localhost`.
    pub fn node_name(&self) -> &str {
        &self.layout.name
    }

    /// Data dir (mnesia, quorum WAL, logs, config files).
    pub fn data_dir(&self) -> &Path {
        &self.layout.dir
    }

    /// Process group of the running node (shell script + Erlang VM), if any.
    pub fn pgid(&self) -> Option<i32> {
        self.pgid
    }

    /// Last `n` lines of the node's console log, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        os::file_tail(&self.layout.dir.join("server.log"), n)
    }

    /// Graceful stop via `rabbitmqctl stop`; falls back to SIGKILL of the
    /// process group if the node does not go away within 30 s.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if self.child.is_none() {
            return Ok(());
        }
        if let Err(e) = self.ctl(&["stop"], Duration::from_secs(60)).await {
            tracing::warn!(node = %self.layout.name, error = %e, "rabbitmqctl stop failed; killing");
        }
        let child = self.child.as_mut().expect("checked above");
        if tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .is_err()
        {
            tracing::warn!(node = %self.layout.name, "node did not exit after stop; killing");
        }
        self.kill().await
    }

    /// SIGKILL the whole process group (the `rabbitmq-server` shell script
    /// and the `beam.smp` VM it forked) and wait until none of it is alive.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        let Some(pgid) = self.pgid.take() else {
            return Ok(());
        };
        os::kill_group(pgid);
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
        if !os::wait_group_gone(pgid, Duration::from_secs(10)).await {
            bail!(
                "process group {pgid} of {} survived SIGKILL",
                self.layout.name
            );
        }
        Ok(())
    }

    /// Stop (gracefully, if running) and start again with the same name,
    /// ports and data dir, so durable queues and their messages survive.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await?;
        self.launch().await
    }

    /// `rabbitmqctl set_policy --apply-to APPLY_TO NAME PATTERN DEFINITION`.
    pub async fn set_policy(
        &self,
        name: &str,
        pattern: &str,
        json_definition: &str,
        apply_to: &str,
    ) -> anyhow::Result<()> {
        let args = [
            "set_policy",
            "--apply-to",
            apply_to,
            name,
            pattern,
            json_definition,
        ];
        self.ctl(&args, Duration::from_secs(30)).await.map(drop)
    }

    /// Whether feature flag `flag` is enabled, per `list_feature_flags`.
    pub async fn feature_flag_enabled(&self, flag: &str) -> anyhow::Result<bool> {
        let out = self
            .ctl(
                &["-q", "list_feature_flags", "name", "state"],
                Duration::from_secs(30),
            )
            .await?;
        Ok(out.lines().any(|line| {
            let mut cols = line.split_whitespace();
            cols.next() == Some(flag) && cols.next() == Some("enabled")
        }))
    }

    /// Run `rabbitmqctl -n NODE ARGS...` against this node; returns stdout.
    pub async fn ctl(&self, args: &[&str], timeout: Duration) -> anyhow::Result<String> {
        let mut cmd = Command::new(bin_dir().join("rabbitmqctl"));
        cmd.arg("-n").arg(&self.layout.name).args(args);
        self.layout.configure(&mut cmd);
        os::run(&mut cmd, timeout).await
    }

    /// Spawn `rabbitmq-server` in the foreground in its own process group
    /// and wait for the broker application to be fully started.
    async fn launch(&mut self) -> anyhow::Result<()> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.layout.dir.join("server.log"))
            .context("opening server.log")?;
        let mut cmd = Command::new(bin_dir().join("rabbitmq-server"));
        self.layout.configure(&mut cmd);
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .kill_on_drop(true);
        let child = cmd.spawn().context("spawning rabbitmq-server")?;
        self.pgid = child.id().map(|p| p as i32);
        self.child = Some(child);
        if let Err(e) = self.await_ready().await {
            let _ = self.kill().await;
            return Err(e.context(format!(
                "starting RabbitMQ node {}; server.log tail:\n{}",
                self.layout.name,
                self.log_tail(30)
            )));
        }
        Ok(())
    }

    /// Wait for the AMQP listener, then confirm with `await_startup`.
    /// Probing the port first matters on 2 cores: every `rabbitmqctl` run
    /// boots an Erlang VM that competes with the booting node, and the CLI
    /// fails fast anyway until the node has registered with epmd. A server
    /// that exited (port clash, bad config) ends the wait at once.
    async fn await_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!("rabbitmq-server exited early with {status}");
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("node not started within {START_TIMEOUT:?}");
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", self.layout.port))
                .await
                .is_err()
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            let secs = left.as_secs().max(1).to_string();
            let args = ["await_startup", "--timeout", secs.as_str()];
            match self.ctl(&args, left + Duration::from_secs(5)).await {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }
}

impl Drop for RabbitNode {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            os::kill_group(pgid);
            if let Some(child) = self.child.as_mut() {
                let _ = child.start_kill();
            }
            // The VM must be gone before its files are deleted under it.
            os::wait_group_gone_blocking(pgid, Duration::from_secs(10));
        }
        let _ = fs::remove_dir_all(&self.layout.dir);
    }
}
