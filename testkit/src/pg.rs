//! A test-owned PostgreSQL 15 cluster, for tests that must stop, crash or
//! restart the database without disturbing the system cluster on 5432.
//!
//! `initdb` and `postgres` refuse to run as root, and the tests do run as
//! root here, so every server-side command goes through
//! `runuser -u postgres --` and the cluster directory is chowned to
//! `postgres`. The socket directory (`-k`) is the data dir itself so the
//! cluster never needs `/var/run/postgresql`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::Command;

use crate::os;
use crate::util::{free_port, hex8};

/// Directory with the PostgreSQL 15 server binaries.
fn bin_dir() -> PathBuf {
    std::env::var_os("SLIPWAY_PG_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"))
}

/// A PostgreSQL cluster owned by one test; stopped and deleted on drop.
pub struct PgCluster {
    port: u16,
    root: PathBuf,
    data: PathBuf,
    running: bool,
}

impl PgCluster {
    /// `initdb` a new cluster (trust auth, superuser `postgres`) and start it
    /// on a free port bound to 127.0.0.1.
    pub async fn start() -> anyhow::Result<Self> {
        let root = std::env::temp_dir().join(format!("slipway-pg-{}", hex8()));
        std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
        let mut cluster = PgCluster {
            port: free_port(),
            data: root.join("data"),
            root,
            running: false,
        };
        let owner = cluster.root.to_string_lossy().into_owned();
        os::run(
            Command::new("chown").args(["-R", "postgres:postgres", &owner]),
            Duration::from_secs(10),
        )
        .await?;
        let data = cluster.data.to_string_lossy().into_owned();
        // --no-sync: nothing here needs to survive a power cut, and the
        // fsync of the template databases is most of initdb's run time.
        cluster
            .as_postgres(
                "initdb",
                &[
                    "-D",
                    &data,
                    "--auth=trust",
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                ],
            )
            .await
            .context("initdb")?;
        cluster.launch().await?;
        Ok(cluster)
    }

    /// URL of database `db` on this cluster.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// URL of the `postgres` database, for [`crate::fresh_database_on`].
    pub fn admin_url(&self) -> String {
        self.url("postgres")
    }

    /// TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// Last `n` lines of the server log, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        os::file_tail(&self.root.join("postgres.log"), n)
    }

    /// Fast shutdown (`pg_ctl stop -m fast`): sessions are disconnected,
    /// committed data is checkpointed.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if !self.running {
            return Ok(());
        }
        let data = self.data.to_string_lossy().into_owned();
        self.as_postgres(
            "pg_ctl",
            &["-D", &data, "-m", "fast", "-w", "-t", "60", "stop"],
        )
        .await
        .context("pg_ctl stop")?;
        self.running = false;
        Ok(())
    }

    /// Stop (if running) and start again on the same port and data dir.
    /// After [`PgCluster::kill`] this performs crash recovery.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await?;
        self.launch().await
    }

    /// Crash the cluster: SIGKILL the postmaster (pid from `postmaster.pid`)
    /// and then its backends. Backends would notice the dead postmaster on
    /// their own, but a restart before they do fails on "shared memory
    /// block still in use", so they are killed too, as in a machine crash.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        let Some(pid) = self.postmaster_pid() else {
            self.running = false;
            return Ok(());
        };
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        // pg_ctl starts the postmaster in a session of its own, so its
        // group holds exactly the cluster's processes.
        if matches!(os::proc_state(pid), Some((_, pgid)) if pgid == pid) {
            os::kill_group(pid);
        }
        self.running = false;
        anyhow::ensure!(
            os::wait_group_gone(pid, Duration::from_secs(10)).await,
            "postgres processes of group {pid} survived SIGKILL"
        );
        // The orphaned postmaster is reaped by PID 1, which here happens only
        // every second or so. Until then it is a zombie that still answers
        // kill(pid, 0), and the next start refuses with "lock file
        // postmaster.pid already exists". Waiting keeps the lock file (and
        // with it Postgres' own cleanup of the old shared memory); if the
        // zombie lingers, the file is provably stale and is removed.
        if !os::wait_reaped(pid, Duration::from_secs(5)).await {
            let _ = std::fs::remove_file(self.data.join("postmaster.pid"));
        }
        Ok(())
    }

    /// Postmaster pid from the first line of `postmaster.pid`, if alive.
    fn postmaster_pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.data.join("postmaster.pid")).ok()?;
        let pid = text.lines().next()?.trim().parse().ok()?;
        os::pid_alive(pid).then_some(pid)
    }

    async fn launch(&mut self) -> anyhow::Result<()> {
        let data = self.data.to_string_lossy().into_owned();
        let log = self
            .root
            .join("postgres.log")
            .to_string_lossy()
            .into_owned();
        let opts = format!(
            "-p {} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port
        );
        let args = [
            "-D", &data, "-l", &log, "-o", &opts, "-w", "-t", "60", "start",
        ];
        if let Err(e) = self.as_postgres("pg_ctl", &args).await {
            return Err(e.context(format!(
                "starting Postgres on port {}; log tail:\n{}",
                self.port,
                self.log_tail(20)
            )));
        }
        self.running = true;
        Ok(())
    }

    /// Run a server binary as the `postgres` user from inside the cluster
    /// directory (a root-only cwd would make initdb complain).
    async fn as_postgres(&self, program: &str, args: &[&str]) -> anyhow::Result<String> {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"])
            .arg(bin_dir().join(program))
            .args(args)
            .current_dir(&self.root);
        os::run(&mut cmd, Duration::from_secs(120)).await
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.running {
            let _ = std::process::Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(bin_dir().join("pg_ctl"))
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "immediate", "-w", "-t", "30", "stop"])
                .current_dir(&self.root)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
        // Whatever survived the stop (or a stop that failed) is killed before
        // the directory is removed under it.
        if let Some(pid) = self.postmaster_pid() {
            if matches!(os::proc_state(pid), Some((_, pgid)) if pgid == pid) {
                os::kill_group(pid);
                os::wait_group_gone_blocking(pid, Duration::from_secs(10));
            } else {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
