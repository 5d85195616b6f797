//! A Docker engine of a test's own inside a [`Netns`]: `dockerd` (Debian's
//! docker.io) with its data, state and API socket under the namespace's
//! folder, so a test's "server" can be a Docker-only host. Its containers'
//! published ports land on the namespace's loopback (the userland proxy
//! runs in the namespace); its bridge lives in the namespace too, and it
//! touches no iptables rules.
//!
//! Stopped on drop: containers removed, the daemon stopped by pid (it
//! stops its containerd), mounts it left under its folder unmounted and the
//! folder removed.

use crate::netns::Netns;
use crate::os;
use anyhow::{bail, Context};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Dockerd {
    dir: PathBuf,
    /// `unix://…/docker.sock`: the `DOCKER_HOST` of its clients.
    pub host: String,
    child: Option<Child>,
}

impl Dockerd {
    /// Starts dockerd inside `ns` and waits until its API answers.
    pub fn start(ns: &Netns) -> anyhow::Result<Dockerd> {
        let dir = ns.dir().join("docker");
        std::fs::create_dir_all(&dir)?;
        let socket = dir.join("docker.sock");
        let log = std::fs::File::create(dir.join("dockerd.log"))?;
        let mut command = ns.command("dockerd");
        command
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .arg("--host")
            .arg(format!("unix://{}", socket.display()))
            .args([
                "--iptables=false",
                "--ip6tables=false",
                "--ip-masq=false",
                "--exec-opt",
                "native.cgroupdriver=cgroupfs",
                "--shutdown-timeout",
                "5",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        let child = command
            .spawn()
            .context("spawning dockerd (apt-get install docker.io)")?;
        let dockerd = Dockerd {
            host: format!("unix://{}", socket.display()),
            dir,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let answered = dockerd
                .docker(&["version", "--format", "{{.Server.Version}}"])
                .is_ok_and(|out| out.status.success());
            if answered {
                return Ok(dockerd);
            }
            if Instant::now() > deadline {
                bail!(
                    "dockerd did not answer within 60 s: {}",
                    os::file_tail(&dockerd.dir.join("dockerd.log"), 15)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Runs the docker client against this daemon.
    pub fn docker(&self, args: &[&str]) -> std::io::Result<std::process::Output> {
        Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", &self.host)
            .output()
    }

    /// The names of the containers (running or not) labelled `label`
    /// (`KEY=VALUE`); an error when the daemon does not answer, so that an
    /// empty list means none.
    pub fn containers(&self, label: &str, running_only: bool) -> anyhow::Result<Vec<String>> {
        let filter = format!("label={label}");
        let mut args = vec!["ps", "--filter", &filter, "--format", "{{.Names}}"];
        if !running_only {
            args.push("--all");
        }
        let out = self.docker(&args)?;
        if !out.status.success() {
            bail!("docker ps: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(String::from)
            .collect())
    }

    pub fn log_tail(&self, n: usize) -> String {
        os::file_tail(&self.dir.join("dockerd.log"), n)
    }

    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(out) = self.docker(&["ps", "--all", "--quiet"]) {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = self.docker(&["rm", "--force", id]);
            }
        }
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        os::kill_group(child.id() as i32);
        let _ = child.wait();
        unmount_under(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Unmounts every mount point under `dir` (overlay layers and the like a
/// killed daemon left), deepest first.
fn unmount_under(dir: &Path) {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let prefix = dir.display().to_string();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .filter(|point| point.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for point in points {
        let _ = Command::new("umount").arg("--lazy").arg(point).status();
    }
}
