//! A test server with its own root filesystem: a privileged podman
//! container of the Debian image `scripts/test-hosts.sh` builds
//! (`$SLIPWAY_TEST_HOST_IMAGE`), running systemd as PID 1 and sshd like a
//! cloud server. Installing packages, adding users or editing `/etc` on it
//! changes the container's root, never this machine's. (KVM machines were
//! tried first: they do not boot here; see docs/architecture.md.)
//!
//! What a cloud server's user data would carry comes in a "seed" folder
//! mounted at `/seed` and applied before systemd starts: the SSH host key
//! the test made (so the key is pinned from the first connection, never
//! trusted on first use), root's authorized key, and files to lay over the
//! root (e.g. another `/etc/os-release`).
//!
//! sshd and port 80 are published on 127.0.0.1 ports of this machine; the
//! local apt repository is served inside the host's own network namespace
//! ([`AptRepo`], [`APT_SOURCE`]). `/home` is a folder of the test's on this
//! machine's disk, where the deploy user's rootless podman can keep its
//! overlay storage (not on the container's own overlayfs root). The
//! container is removed on drop (with anything installed or run inside
//! it) and the folder with it.

mod repo;

pub use repo::AptRepo;

use crate::git::ssh_keygen;
use crate::util::{free_port, hex8};
use anyhow::{bail, Context};
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The apt source line that reaches the repository from inside a host.
pub const APT_SOURCE: &str = "deb [trusted=yes] http://127.0.0.1:3142/ ./";
/// Where [`AptRepo`] listens inside the host's network namespace.
const REPO_ADDR: &str = "127.0.0.1:3142";
/// How long a host has to start and answer SSH.
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);

/// What to boot.
#[derive(Default)]
pub struct HostOptions {
    /// Files laid over the root before systemd starts: (absolute path,
    /// content).
    pub files: Vec<(String, String)>,
    /// A loopback address of its own (`127.x.y.z`) where it answers SSH on
    /// port 22 and HTTP on 80, as a cloud server at its public address;
    /// `None`: random ports on 127.0.0.1.
    pub address: Option<std::net::Ipv4Addr>,
    /// The host key to use (private, public), as a cloud server's user
    /// data hands it over; `None`: one made here.
    pub host_key: Option<(String, String)>,
    /// root's authorized key (a cloud server's key pair); `None`: one made
    /// here, whose private half [`TestHost::ssh`] uses. With a key given,
    /// the host is ready when sshd answers.
    pub authorized_key: Option<String>,
    /// Boot from this saved host ([`TestHost::save`]) instead of the test
    /// host image: its root and a copy of its `/home`.
    pub saved: Option<std::sync::Arc<SavedHost>>,
}

/// A test host saved as it was (a server image): its root committed as an
/// image, its `/home` (a folder of this machine's) copied. Removed on drop.
#[derive(Debug)]
pub struct SavedHost {
    pub image: String,
    pub home: PathBuf,
}

impl Drop for SavedHost {
    fn drop(&mut self) {
        // Not forced: a host booted from it holds it until it goes.
        let _ = podman(&["rmi", &self.image]);
        if let Some(dir) = self.home.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

pub struct TestHost {
    /// The container's name (`slw-host-XXXXXXXX`).
    pub name: String,
    dir: PathBuf,
    /// The apt repository the host reaches at [`APT_SOURCE`].
    pub repo: Option<AptRepo>,
    /// Published to the host's sshd.
    pub ssh_port: u16,
    /// `127.0.0.1:PORT`, published to the host's port 80.
    pub http_addr: String,
    /// root's key (the host's only authorized key).
    pub private_key: String,
    /// The known_hosts line pinning the host key the test gave the host.
    pub known_hosts: String,
    /// How long from `podman run` to sshd answering.
    pub boot_time: Duration,
    /// The address sshd and HTTP are published on.
    pub ip: String,
    /// Whether root's key is the one made here (else only sshd's banner
    /// tells it is up).
    own_key: bool,
    /// What it was booted from, kept until it goes (dropped after it).
    saved: Option<std::sync::Arc<SavedHost>>,
}

fn podman(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("podman")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running podman")?;
    if !out.status.success() {
        bail!(
            "podman {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

impl TestHost {
    /// Starts a host and waits until its sshd lets root in with the pinned
    /// host key.
    pub async fn boot(options: HostOptions) -> anyhow::Result<TestHost> {
        let cache = std::env::var_os("SLIPWAY_TEST_HOSTS")
            .map(PathBuf::from)
            .context(
                "SLIPWAY_TEST_HOSTS is not set: run scripts/test-hosts.sh, source its output",
            )?;
        let image = match &options.saved {
            Some(saved) => saved.image.clone(),
            None => std::env::var("SLIPWAY_TEST_HOST_IMAGE")
                .unwrap_or_else(|_| "localhost/slipway/testhost:bookworm".into()),
        };
        let id = hex8();
        let dir = std::env::temp_dir().join(format!("slipway-host-{id}"));
        let seed = dir.join("seed");
        let home = dir.join("home");
        std::fs::create_dir_all(&seed)?;
        match &options.saved {
            Some(saved) => copy_tree(&saved.home, &home)?,
            None => std::fs::create_dir_all(&home)?,
        }
        let client = ssh_keygen(&dir, "client_key")?;
        let host_key = match &options.host_key {
            Some((private, public)) => {
                use std::os::unix::fs::PermissionsExt;
                let path = seed.join("ssh_host_ed25519_key");
                std::fs::write(&path, private)?;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
                std::fs::write(path.with_extension("pub"), format!("{public}\n"))?;
                crate::git::SshKeyPair {
                    private_key: private.clone(),
                    public_key: public.clone(),
                }
            }
            None => ssh_keygen(&seed, "ssh_host_ed25519_key")?,
        };
        let authorized = options
            .authorized_key
            .clone()
            .unwrap_or_else(|| client.public_key.clone());
        std::fs::write(seed.join("authorized_keys"), format!("{authorized}\n"))?;
        for (path, content) in &options.files {
            let path = seed.join("files").join(path.trim_start_matches('/'));
            std::fs::create_dir_all(path.parent().context("a file path has a folder")?)?;
            std::fs::write(path, content)?;
        }
        let (ssh_port, http_port) = match options.address {
            Some(_) => (22, 80),
            None => (free_port(), free_port()),
        };
        let ip = options
            .address
            .map_or_else(|| "127.0.0.1".to_owned(), |a| a.to_string());
        let pinned = match options.address {
            Some(_) => ip.clone(),
            None => format!("[{ip}]:{ssh_port}"),
        };
        let mut fields = host_key.public_key.split_whitespace();
        let (kind, key) = (
            fields.next().unwrap_or_default(),
            fields.next().unwrap_or_default(),
        );
        let mut host = TestHost {
            name: format!("slw-host-{id}"),
            repo: None,
            ssh_port,
            http_addr: format!("{ip}:{http_port}"),
            ip,
            private_key: client.private_key,
            known_hosts: format!("{pinned} {kind} {key}\n"),
            own_key: options.authorized_key.is_none(),
            boot_time: Duration::ZERO,
            dir,
            saved: options.saved.clone(),
        };
        let started = Instant::now();
        // Privileged: systemd, and the engine setup installs, run inside it.
        podman(&[
            "run",
            "--detach",
            "--name",
            &host.name,
            "--hostname",
            &host.name,
            "--privileged",
            "--systemd=always",
            // Its own cgroup view, so that the paths in /proc/self/cgroup
            // match its /sys/fs/cgroup (runc under it mounts by them).
            "--cgroupns=private",
            "--publish",
            &format!("{}:{ssh_port}:22", host.ip),
            "--publish",
            &format!("{}:{http_port}:80", host.ip),
            "--volume",
            &format!("{}:/seed:ro", seed.display()),
            // /home on this machine's disk, as a server's is on its own:
            // the container's root is overlayfs, on which the deploy
            // user's rootless podman cannot stack its overlay storage.
            "--volume",
            &format!("{}:/home", home.display()),
            &image,
        ])?;
        let pid = podman(&["inspect", "--format", "{{.State.Pid}}", &host.name])?;
        host.repo = Some(AptRepo::serve(
            &cache.join("repo"),
            &host.dir,
            &format!("/proc/{pid}/ns/net"),
            REPO_ADDR,
        )?);
        host.wait_for_ssh(started).await?;
        host.boot_time = started.elapsed();
        Ok(host)
    }

    /// Saves the host as it is now, as a provider saves a server's disk: the
    /// container paused while its root is committed and its `/home` copied.
    pub fn save(&self) -> anyhow::Result<SavedHost> {
        let id = hex8();
        let dir = std::env::temp_dir().join(format!("slipway-saved-{id}"));
        let saved = SavedHost {
            image: format!("localhost/slipway/testhost-saved:{id}"),
            home: dir.join("home"),
        };
        std::fs::create_dir_all(&dir)?;
        podman(&["pause", &self.name])?;
        let copied = podman(&[
            "commit",
            "--pause=false",
            "--quiet",
            &self.name,
            &saved.image,
        ])
        .and_then(|_| copy_tree(&self.dir.join("home"), &saved.home));
        let resumed = podman(&["unpause", &self.name]);
        copied?;
        resumed?;
        Ok(saved)
    }

    /// Waits until `ssh root@host true` works with the pinned key.
    async fn wait_for_ssh(&self, started: Instant) -> anyhow::Result<()> {
        loop {
            if banner(&self.ip, self.ssh_port) && (!self.own_key || self.ssh("true").await.is_ok())
            {
                return Ok(());
            }
            if started.elapsed() > BOOT_TIMEOUT {
                bail!("no SSH within {BOOT_TIMEOUT:?}: {}", self.diagnostics());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs `command` on the host as root over SSH; its stdout, or an error
    /// with its stderr.
    pub async fn ssh(&self, command: &str) -> anyhow::Result<String> {
        self.ssh_as("root", command).await
    }

    /// Runs `command` as `user` (who must have root's key authorized, as
    /// setup's deploy user has) in its own SSH session, as Slipway would.
    pub async fn ssh_as(&self, user: &str, command: &str) -> anyhow::Result<String> {
        let known_hosts = self.dir.join("known_hosts");
        std::fs::write(&known_hosts, &self.known_hosts)?;
        let out = tokio::process::Command::new("ssh")
            .arg("-i")
            .arg(self.dir.join("client_key"))
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
            .args(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"])
            .args(["-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR", "-p"])
            .arg(self.ssh_port.to_string())
            .arg(format!("{user}@{}", self.ip))
            .args(["--", command])
            .stdin(Stdio::null())
            .output()
            .await?;
        if !out.status.success() {
            bail!(
                "ssh {command}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The container's state and the end of its log.
    pub fn diagnostics(&self) -> String {
        let state = podman(&["inspect", "--format", "{{.State.Status}}", &self.name])
            .unwrap_or_else(|e| e.to_string());
        let logs = Command::new("podman")
            .args(["logs", "--tail", "30", &self.name])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        format!("container {}: {state}\n{logs}", self.name)
    }

    /// `POST /v1/targets` body of ssh target `name` on this host as root.
    pub fn target_body(&self, name: &str) -> serde_json::Value {
        serde_json::json!({"name": name, "kind": "ssh", "host": self.ip, "port": self.ssh_port,
                           "user": "root", "ssh_key": self.private_key,
                           "known_hosts": self.known_hosts})
    }
}

/// `cp -a from to`: owners, modes and special files kept (the deploy
/// user's container storage is in it).
fn copy_tree(from: &std::path::Path, to: &std::path::Path) -> anyhow::Result<()> {
    let out = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .output()
        .context("running cp")?;
    if !out.status.success() {
        bail!(
            "cp -a {} {}: {}",
            from.display(),
            to.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Whether an SSH banner answers on `127.0.0.1:port`.
fn banner(ip: &str, port: u16) -> bool {
    let Ok(ip) = ip.parse::<std::net::IpAddr>() else {
        return false;
    };
    let addr = std::net::SocketAddr::new(ip, port);
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut banner = [0u8; 4];
    stream.read_exact(&mut banner).is_ok() && &banner == b"SSH-"
}

impl Drop for TestHost {
    fn drop(&mut self) {
        drop(self.repo.take());
        let _ = podman(&["rm", "--force", "--time", "0", &self.name]);
        let _ = std::fs::remove_dir_all(&self.dir);
        drop(self.saved.take());
    }
}
