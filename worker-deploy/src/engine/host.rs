//! Where engine commands run: on the Slipway host, or on a server reached
//! with the OpenSSH client, the command and its environment sent as a shell
//! script on ssh's stdin so that nothing secret appears on a command line.

/// Where the engine runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// The Slipway host itself.
    Local,
    /// A server reached with the OpenSSH client.
    Ssh(SshHost),
}

pub use slipway_shared::ssh::SshHost;

/// ssh's exit code when the connection (not the remote command) failed.
pub(super) const SSH_FAILED: i32 = slipway_shared::ssh::SSH_FAILED;

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
                let mut command = ssh.base_command();
                command
                    .args(["-o", "LogLevel=ERROR", "--"])
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
