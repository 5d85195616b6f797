//! Where engine commands run: on the Slipway host, or on a server reached
//! with the OpenSSH client, the command and its environment sent as a shell
//! script on ssh's stdin so that nothing secret appears on a command line.

use std::path::PathBuf;

/// Where the engine runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// The Slipway host itself.
    Local,
    /// A server reached with the OpenSSH client.
    Ssh(SshHost),
}

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
}

/// ssh's exit code when the connection (not the remote command) failed.
pub(super) const SSH_FAILED: i32 = 255;

impl Host {
    /// The command that runs `program` with `args` and extra environment
    /// `env` on this host, and what to write to its stdin.
    pub(super) fn command(
        &self,
        program: &str,
        args: &[String],
        env: &[(String, String)],
    ) -> (tokio::process::Command, Option<String>) {
        match self {
            Host::Local => {
                let mut command = slipway_shared::process::clean_command(program);
                command.args(args).envs(env.iter().map(|(k, v)| (k, v)));
                (command, None)
            }
            Host::Ssh(ssh) => {
                let mut command = slipway_shared::process::clean_command("ssh");
                command
                    .arg("-p")
                    .arg(ssh.port.to_string())
                    .arg("-i")
                    .arg(&ssh.identity_file)
                    .arg("-o")
                    .arg(format!(
                        "UserKnownHostsFile={}",
                        ssh.known_hosts_file.display()
                    ))
                    .args(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"])
                    .args(["-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10"])
                    .args(["-o", "LogLevel=ERROR", "-T", "--"])
                    .arg(&ssh.destination)
                    .arg("sh -s");
                (command, Some(remote_script(program, args, env)))
            }
        }
    }
}

/// A shell script that exports `env` and execs `program args`.
fn remote_script(program: &str, args: &[String], env: &[(String, String)]) -> String {
    let mut script = String::new();
    for (key, value) in env {
        script.push_str(&format!("export {key}={}\n", shell_quote(value)));
    }
    script.push_str("exec");
    for word in std::iter::once(program).chain(args.iter().map(String::as_str)) {
        script.push(' ');
        script.push_str(&shell_quote(word));
    }
    script.push('\n');
    script
}

fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_scripts_quote_every_word() {
        let script = remote_script(
            "podman",
            &["run".into(), "it's".into()],
            &[("K".into(), "a b'c".into())],
        );
        assert_eq!(
            script,
            "export K='a b'\\''c'\nexec 'podman' 'run' 'it'\\''s'\n"
        );
    }
}
