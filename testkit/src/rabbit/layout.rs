//! On-disk layout and environment of a test-owned RabbitMQ node: which
//! files it gets and which variables point the server and the CLI at them.
//!
//! Every path RabbitMQ would otherwise take from `/etc/rabbitmq` or
//! `/var/lib/rabbitmq` is redirected into the node's own directory, because
//! the system broker (`rabbit@localhost`, port 5672) must never see our
//! config, and we must never pick up its `NODENAME` or listener.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use anyhow::Context;
use tokio::process::Command;

/// Name, ports and directory of a node; fixed for its whole life so a
/// restart finds its durable queues again.
pub(super) struct Layout {
    pub(super) name: String,
    pub(super) port: u16,
    pub(super) dist_port: u16,
    pub(super) dir: PathBuf,
}

impl Layout {
    /// Environment shared by the server and the CLI. `ERL_EPMD_ADDRESS` and
    /// `inet_dist_use_interface` keep epmd traffic and the distribution
    /// listener on loopback; the `RABBITMQ_*` paths keep every file in `dir`.
    pub(super) fn configure(&self, cmd: &mut Command) {
        let d = |p: &str| self.dir.join(p).into_os_string();
        cmd.current_dir(&self.dir)
            .env("HOME", &self.dir)
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env("ERL_FLAGS", "-kernel inet_dist_use_interface {127,0,0,1}")
            .env("RABBITMQ_CONF_ENV_FILE", d("rabbitmq-env.conf"))
            .env("RABBITMQ_NODENAME", &self.name)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_CONFIG_FILE", d("rabbitmq.conf"))
            .env("RABBITMQ_CONFIG_FILES", d("conf.d"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", d("advanced.config"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d("enabled_plugins"))
            .env("RABBITMQ_MNESIA_BASE", d("mnesia"))
            .env("RABBITMQ_LOG_BASE", d("log"))
            .env("RABBITMQ_LOGS", "-");
    }

    /// Write config, env file, plugin list and cookie into the data dir.
    pub(super) fn write_files(&self) -> anyhow::Result<()> {
        let dir = &self.dir;
        for sub in ["conf.d", "log", "mnesia"] {
            fs::create_dir_all(dir.join(sub))
                .with_context(|| format!("creating {}", dir.join(sub).display()))?;
        }
        let conf = format!(
            "listeners.tcp.default = 127.0.0.1:{}\nloopback_users = none\n",
            self.port
        );
        fs::write(dir.join("rabbitmq.conf"), conf)?;
        // An explicit empty list: no management or prometheus plugin, which
        // would otherwise try to bind 15672/15692 owned by the system node.
        fs::write(dir.join("enabled_plugins"), "[].\n")?;
        let env = format!(
            "# Written by slipway-testkit; replaces /etc/rabbitmq/rabbitmq-env.conf.\n\
             NODENAME={}\nNODE_IP_ADDRESS=127.0.0.1\nNODE_PORT={}\nDIST_PORT={}\n\
             ERL_EPMD_ADDRESS=127.0.0.1\n",
            self.name, self.port, self.dist_port
        );
        fs::write(dir.join("rabbitmq-env.conf"), env)?;
        // Erlang insists on a cookie file readable by its owner only.
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o400)
            .open(dir.join(".erlang.cookie"))
            .and_then(|mut f| f.write_all(uuid::Uuid::new_v4().simple().to_string().as_bytes()))
            .context("writing Erlang cookie")?;
        Ok(())
    }
}
