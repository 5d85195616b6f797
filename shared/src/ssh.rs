//! Reaching an `ssh` target with the OpenSSH client: key authentication
//! only, the server's host key pinned, no prompts. The key and the pinned
//! host key live in a private temp folder for as long as a job needs them
//! ([`SshKeyFiles`]), and so does the control socket through which a job's
//! commands share one connection ([`Mux`]); [`Tunnel`] holds the port
//! forwards a deploy drives the target through (its Caddy admin API, a
//! release's port, the platform's registry seen from the target).

use secrecy::{ExposeSecret, SecretString};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// ssh's exit code when the connection (not the remote command) failed.
pub const SSH_FAILED: i32 = 255;

/// How to reach a server over SSH: key authentication only, the server's
/// host key pinned in a known_hosts file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshHost {
    /// `user@host`.
    pub destination: String,
    pub port: u16,
    /// A private key file (mode 0600).
    pub identity_file: PathBuf,
    /// Holds the server's host key; any other key is refused.
    pub known_hosts_file: PathBuf,
    /// Where the shared connection's control socket is while a master
    /// ([`Mux::Master`]) runs; `None`: every command connects on its own.
    pub control_path: Option<PathBuf>,
}

/// How a connection uses the host's control socket (OpenSSH
/// multiplexing). A job's long-lived `ssh -N` (its forwards) is the
/// master; the engine's commands are clients, so each runs as a new
/// session on that connection instead of a new TCP connection, key
/// exchange and authentication. A client finding no master (none runs, or
/// it died) connects on its own, silently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mux {
    /// Shares the master's connection when there is one.
    Client,
    /// Serves the control socket for as long as it runs (it is killed, not
    /// left running in the background: no `ControlPersist`).
    Master,
    /// Neither (a short-lived forward of its own).
    Off,
}

impl SshHost {
    /// `ssh` with the options every connection uses, up to (not including)
    /// the destination: the caller adds its own options, then
    /// [`SshHost::destination`] after `--`. A client of the control
    /// socket, if the host has one (see [`Mux`]).
    pub fn base_command(&self) -> tokio::process::Command {
        self.command_as(Mux::Client)
    }

    /// [`SshHost::base_command`] with the given use of the control socket.
    pub fn command_as(&self, mux: Mux) -> tokio::process::Command {
        let mut command = crate::process::clean_command("ssh");
        // ssh keeps the first value of an option: these come first.
        match (&self.control_path, mux) {
            (Some(path), Mux::Client) => {
                command
                    .arg("-o")
                    .arg(format!("ControlPath={}", path.display()))
                    .args(["-o", "ControlMaster=no"]);
            }
            (Some(path), Mux::Master) => {
                command
                    .arg("-o")
                    .arg(format!("ControlPath={}", path.display()))
                    .args(["-o", "ControlMaster=yes", "-o", "ControlPersist=no"]);
            }
            (None, _) | (_, Mux::Off) => {
                command.args(["-o", "ControlPath=none", "-o", "ControlMaster=no"]);
            }
        }
        command
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-i")
            .arg(&self.identity_file)
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                self.known_hosts_file.display()
            ))
            .args(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"])
            .args(["-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10"])
            .args([
                "-o",
                "ServerAliveInterval=10",
                "-o",
                "ServerAliveCountMax=3",
            ])
            .args(["-F", "/dev/null", "-T"]);
        command
    }
}

/// Why an ssh connection failed, from ssh's own words: a wrong host key or
/// a refused key fails the same way again, anything else may pass.
pub fn classify_failure(stderr: &str) -> (&'static str, bool) {
    if stderr.contains("Host key verification failed")
        || stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
    {
        ("host_key_mismatch", false)
    } else if stderr.contains("Permission denied") {
        ("ssh_auth_failed", false)
    } else {
        ("host_unreachable", true)
    }
}

/// The target's key and pinned host key as files in a private folder,
/// removed on drop.
pub struct SshKeyFiles {
    dir: PathBuf,
    pub host: SshHost,
}

impl SshKeyFiles {
    pub fn write(
        user: &str,
        host: &str,
        port: u16,
        private_key: &SecretString,
        known_hosts: &str,
    ) -> std::io::Result<SshKeyFiles> {
        let dir = std::env::temp_dir().join(format!("slipway-ssh-{}", uuid::Uuid::new_v4()));
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        let files = SshKeyFiles {
            host: SshHost {
                destination: format!("{user}@{host}"),
                port,
                identity_file: dir.join("key"),
                known_hosts_file: dir.join("known_hosts"),
                // Short (a socket path has ~100 bytes at most): the folder
                // is `TMP/slipway-ssh-UUID`.
                control_path: Some(dir.join("control")),
            },
            dir,
        };
        let mut key = private_key.expose_secret().trim_end().to_owned();
        // OpenSSH refuses a key file without its final newline.
        key.push('\n');
        write_private(&files.host.identity_file, &key)?;
        write_private(&files.host.known_hosts_file, known_hosts)?;
        Ok(files)
    }
}

fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?
        .write_all(content.as_bytes())
}

impl Drop for SshKeyFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

mod tunnel;
pub use tunnel::{Tunnel, TunnelError};

#[cfg(test)]
mod tests {
    use super::classify_failure;

    #[test]
    fn ssh_failures_say_whether_a_retry_can_help() {
        assert_eq!(
            classify_failure("Host key verification failed."),
            ("host_key_mismatch", false)
        );
        assert_eq!(
            classify_failure("root@10.0.0.1: Permission denied (publickey)."),
            ("ssh_auth_failed", false)
        );
        assert_eq!(
            classify_failure("ssh: connect to host 10.0.0.1 port 22: Connection refused"),
            ("host_unreachable", true)
        );
    }
}
