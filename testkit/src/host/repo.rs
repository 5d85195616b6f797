//! The local apt repository a test host installs from: the `.deb`s and
//! `Packages` index `scripts/test-hosts.sh` cached, served read-only by
//! `caddy file-server` (no admin API) on the loopback of the host's own
//! network namespace (`nsenter --net`), where only that host sees it.
//! Killed on drop.

use crate::os::file_tail;
use anyhow::{bail, Context};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct AptRepo {
    child: Child,
    addr: String,
    netns: String,
}

impl AptRepo {
    /// Serves `repo` on `addr` inside network namespace `netns` (a path
    /// such as `/proc/PID/ns/net`), logging to `dir/repo.log`; waits until
    /// `Packages` answers there.
    pub fn serve(repo: &Path, dir: &Path, netns: &str, addr: &str) -> anyhow::Result<AptRepo> {
        if !repo.join("Packages").exists() {
            bail!(
                "{} has no Packages index: run scripts/test-hosts.sh",
                repo.display()
            );
        }
        let log = dir.join("repo.log");
        let child = Command::new("nsenter")
            .arg(format!("--net={netns}"))
            .args(["--", "caddy", "file-server", "--listen", addr, "--root"])
            .arg(repo)
            .env("XDG_DATA_HOME", dir.join("caddy-data"))
            .env("XDG_CONFIG_HOME", dir.join("caddy-config"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log)?)
            .stderr(std::fs::File::create(dir.join("repo.err"))?)
            .process_group(0)
            .spawn()
            .context("starting caddy file-server")?;
        let mut repo = AptRepo {
            child,
            addr: addr.to_owned(),
            netns: netns.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !repo.answers() {
            if repo.child.try_wait()?.is_some() || Instant::now() > deadline {
                bail!(
                    "the apt repository on {} did not answer: {}",
                    repo.addr,
                    file_tail(&dir.join("repo.err"), 10)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(repo)
    }

    /// `127.0.0.1:PORT` inside the host.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Asks for `/Packages` from inside the namespace (bash's /dev/tcp).
    fn answers(&self) -> bool {
        let (host, port) = self.addr.split_once(':').unwrap_or((&self.addr, "80"));
        let script = format!(
            "exec 3<>/dev/tcp/{host}/{port} && printf 'HEAD /Packages HTTP/1.0\\r\\n\\r\\n' >&3 && head -c 12 <&3"
        );
        Command::new("nsenter")
            .arg(format!("--net={}", self.netns))
            .args(["--", "bash", "-c", &script])
            .stderr(Stdio::null())
            .output()
            .is_ok_and(|out| out.stdout.ends_with(b"200"))
    }
}

impl Drop for AptRepo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
