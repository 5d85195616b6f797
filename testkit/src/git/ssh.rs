//! Git over ssh: an OpenSSH server on `127.0.0.1:PORT` with a host key and
//! config of its own, letting in one public key and, through `git-shell`,
//! only git commands. Needs `/usr/sbin/sshd` (Debian: openssh-server) and
//! root, which sshd's privilege separation requires.

use crate::os;
use crate::util::{free_port, hex8};
use anyhow::{bail, Context};
use std::fs::File;
use std::io::Read;
use std::net::TcpStream;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";

/// An unencrypted ed25519 key pair in OpenSSH format.
#[derive(Debug, Clone)]
pub struct SshKeyPair {
    pub private_key: String,
    /// `ssh-ed25519 AAAA… comment`.
    pub public_key: String,
}

/// Makes a key pair with `ssh-keygen` in `dir` (files `name`, `name.pub`).
pub fn ssh_keygen(dir: &Path, name: &str) -> anyhow::Result<SshKeyPair> {
    let path = dir.join(name);
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .context("running ssh-keygen")?;
    if !out.status.success() {
        bail!(
            "ssh-keygen failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(SshKeyPair {
        private_key: std::fs::read_to_string(&path)?,
        public_key: std::fs::read_to_string(path.with_extension("pub"))?
            .trim()
            .to_owned(),
    })
}

/// A test-owned sshd serving the repositories under a base dir; killed with
/// its process group on drop.
pub struct GitSsh {
    child: Child,
    port: u16,
    dir: PathBuf,
    base_dir: PathBuf,
    user: String,
    host_public_key: String,
}

impl GitSsh {
    /// Lets in the holder of `authorized_public_key` (one `ssh-… AAAA…` line).
    pub fn start(base_dir: &Path, authorized_public_key: &str) -> anyhow::Result<GitSsh> {
        if !Path::new(SSHD).exists() {
            bail!("{SSHD} is missing: install openssh-server (apt-get install -y openssh-server)");
        }
        // sshd's privilege separation directory; absent until sshd first ran.
        std::fs::create_dir_all("/run/sshd").context("creating /run/sshd")?;
        let dir = std::env::temp_dir().join(format!("slipway-git-sshd-{}", hex8()));
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        let host = ssh_keygen(&dir, "host_key")?;
        std::fs::write(
            dir.join("authorized_keys"),
            format!(
                "restrict,command=\"git-shell -c \\\"$SSH_ORIGINAL_COMMAND\\\"\" {}\n",
                authorized_public_key.trim()
            ),
        )?;
        let user = current_user()?;
        let mut last = None;
        for _ in 0..3 {
            match start_sshd(&dir, &user, free_port()) {
                Ok((child, port)) => {
                    return Ok(GitSsh {
                        child,
                        port,
                        dir,
                        base_dir: base_dir.to_owned(),
                        user,
                        host_public_key: host.public_key,
                    })
                }
                Err(e) => last = Some(e),
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        Err(last.expect("tried at least once"))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `ssh://USER@127.0.0.1:PORT/<base_dir>/<name>`.
    pub fn url(&self, name: &str) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}/{name}",
            self.user,
            self.port,
            self.base_dir.display()
        )
    }

    /// The server's host key as a known_hosts line.
    pub fn known_hosts(&self) -> String {
        let mut fields = self.host_public_key.split_whitespace();
        let kind = fields.next().unwrap_or_default();
        let key = fields.next().unwrap_or_default();
        format!("[127.0.0.1]:{} {kind} {key}\n", self.port)
    }

    pub fn log_tail(&self, n: usize) -> String {
        os::file_tail(&self.dir.join("sshd.log"), n)
    }
}

impl Drop for GitSsh {
    fn drop(&mut self) {
        os::kill_group(self.child.id() as i32);
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn start_sshd(dir: &Path, user: &str, port: u16) -> anyhow::Result<(Child, u16)> {
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "ListenAddress 127.0.0.1:{port}\n\
             HostKey {dir}/host_key\n\
             AuthorizedKeysFile {dir}/authorized_keys\n\
             PidFile none\n\
             UsePAM no\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             PubkeyAuthentication yes\n\
             PermitRootLogin prohibit-password\n\
             AllowUsers {user}\n\
             StrictModes no\n\
             AcceptEnv GIT_PROTOCOL\n\
             LogLevel VERBOSE\n",
            dir = dir.display()
        ),
    )?;
    let log = File::create(dir.join("sshd.log"))?;
    let mut child = Command::new(SSHD)
        .args(["-D", "-e", "-f"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("spawning sshd")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            // Ours answers with a banner; another program on a raced port may not.
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut banner = [0u8; 4];
            if stream.read_exact(&mut banner).is_ok() && &banner == b"SSH-" {
                return Ok((child, port));
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            bail!(
                "sshd exited ({status}): {}",
                os::file_tail(&dir.join("sshd.log"), 10)
            );
        }
        if Instant::now() > deadline {
            os::kill_group(child.id() as i32);
            let _ = child.wait();
            bail!("sshd did not listen on 127.0.0.1:{port} within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn current_user() -> anyhow::Result<String> {
    let out = Command::new("id")
        .arg("-un")
        .output()
        .context("running id -un")?;
    let user = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if user.is_empty() {
        bail!("cannot tell the current user name");
    }
    Ok(user)
}
