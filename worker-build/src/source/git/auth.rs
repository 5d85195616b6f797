//! Turning a credential into what git needs, without it ever reaching argv,
//! a log line or an error message.
//!
//! A token becomes an `Authorization: Basic` header set through
//! `GIT_CONFIG_KEY_n`/`GIT_CONFIG_VALUE_n`, scoped to the repository's URL so
//! that a redirect to another host does not carry it. A deploy key is written
//! to a 0600 file in a 0700 directory of its own, removed when the fetch ends,
//! and used through `GIT_SSH_COMMAND` with no agent, no user config and batch
//! mode (no prompt can hang a job).
//!
//! Host keys: with `known_hosts` given, ssh checks strictly against it. Without
//! one, `StrictHostKeyChecking=accept-new` trusts the first key it sees (into a
//! throwaway file), so a deploy key works without extra set-up; that gives no
//! protection against a man in the middle on the first (every) fetch, so users
//! who care give `known_hosts`.

use super::exec::Scrubber;
use super::url::{Remote, Scheme};
use super::GitCredential;
use base64::Engine;
use secrecy::ExposeSecret;
use slipway_shared::job::JobError;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Token user name when none is given: GitHub wants it for app tokens, and
/// GitLab and Gitea accept any name next to a token.
pub const DEFAULT_TOKEN_USER: &str = "x-access-token";

/// What one fetch adds to git's environment.
#[derive(Default)]
pub(super) struct Access {
    /// `git -c` style settings, passed through `GIT_CONFIG_*`.
    pub config: Vec<(String, String)>,
    pub env: Vec<(String, String)>,
    pub scrubber: Scrubber,
    /// Logged before the fetch (never secret).
    pub notes: Vec<String>,
    _key_dir: Option<KeyDir>,
}

/// `ssh_options` go on the ssh command line (the pinned address).
pub(super) fn prepare(
    remote: &Remote,
    credential: Option<&GitCredential>,
    ssh_options: Option<&str>,
) -> Result<Access, JobError> {
    let mut access = Access::default();
    let from_url;
    let credential = match (credential, &remote.userinfo) {
        (Some(credential), Some(_)) => {
            access
                .notes
                .push("the user name and password in the URL are ignored: the app's stored credential is used".into());
            Some(credential)
        }
        (Some(credential), None) => Some(credential),
        (None, Some((user, password))) => {
            from_url = GitCredential::Token {
                username: Some(user.clone()).filter(|u| !u.is_empty()),
                token: password.clone().into(),
            };
            access.notes.push(
                "using the password written in the repository URL; store it as the app's token instead"
                    .into(),
            );
            Some(&from_url)
        }
        (None, None) => None,
    };
    if let Some((_, password)) = &remote.userinfo {
        access.scrubber.add(password.clone());
    }
    match (remote.scheme, credential) {
        (Scheme::Https | Scheme::Http, Some(GitCredential::Token { username, token })) => {
            let token = token.expose_secret();
            let user = username.as_deref().unwrap_or(DEFAULT_TOKEN_USER);
            let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}"));
            access.scrubber.add(token.to_owned());
            access.scrubber.add(basic.clone());
            access.config.push((
                format!("http.{}.extraHeader", remote.fetch_url),
                format!("Authorization: Basic {basic}"),
            ));
            if remote.scheme == Scheme::Http {
                access
                    .notes
                    .push("warning: the credential is sent over plain http, unencrypted".into());
            }
        }
        (Scheme::Ssh, credential) => {
            let key = match credential {
                Some(GitCredential::SshKey {
                    private_key,
                    known_hosts,
                }) => Some((private_key.expose_secret(), known_hosts.as_deref())),
                None => None,
                Some(GitCredential::Token { .. }) => return Err(mismatch("a token", remote)),
            };
            let dir = KeyDir::create()?;
            let mut command = dir.ssh_command(key)?;
            if let Some(options) = ssh_options {
                command.push(' ');
                command.push_str(options);
            }
            access.env.push(("GIT_SSH_COMMAND".into(), command));
            access.env.push(("GIT_SSH_VARIANT".into(), "ssh".into()));
            if key.and_then(|(_, hosts)| hosts).is_none() {
                access.notes.push(
                    "no known_hosts given: the server's host key is accepted without a check"
                        .into(),
                );
            }
            access._key_dir = Some(dir);
        }
        (_, None) => {}
        (_, Some(GitCredential::Token { .. })) => return Err(mismatch("a token", remote)),
        (_, Some(GitCredential::SshKey { .. })) => return Err(mismatch("a deploy key", remote)),
    }
    Ok(access)
}

fn mismatch(what: &str, remote: &Remote) -> JobError {
    let works_with = if what == "a token" {
        "https:// or http:// URLs"
    } else {
        "ssh:// or user@host:path URLs"
    };
    JobError::permanent(
        "source_credential_mismatch",
        format!(
            "{what} cannot be used with the {} URL {}: it works only with {works_with}",
            remote.scheme.name(),
            remote.display
        ),
    )
}

/// A private directory holding the deploy key and known_hosts; removed on drop.
struct KeyDir(PathBuf);

impl KeyDir {
    fn create() -> Result<KeyDir, JobError> {
        let path =
            std::env::temp_dir().join(format!("slipway-git-ssh-{}", uuid::Uuid::new_v4().simple()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| local_error("creating a directory for the ssh key", e))?;
        Ok(KeyDir(path))
    }

    fn write(&self, name: &str, contents: &str) -> Result<PathBuf, JobError> {
        let path = self.0.join(name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| local_error("writing the ssh key", e))?;
        file.write_all(contents.as_bytes())
            .map_err(|e| local_error("writing the ssh key", e))?;
        Ok(path)
    }

    /// git runs this through the shell, so every path is quoted.
    fn ssh_command(&self, key: Option<(&str, Option<&str>)>) -> Result<String, JobError> {
        let mut command = String::from(
            "ssh -F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes -o IdentityAgent=none \
             -o GlobalKnownHostsFile=/dev/null -o ConnectTimeout=30 -o ServerAliveInterval=15",
        );
        let known_hosts = key.and_then(|(_, hosts)| hosts);
        let hosts_file = self.write("known_hosts", &normalize(known_hosts.unwrap_or("")))?;
        let checking = if known_hosts.is_some() {
            "yes"
        } else {
            "accept-new"
        };
        command.push_str(&format!(
            " -o UserKnownHostsFile={} -o StrictHostKeyChecking={checking}",
            quote(&hosts_file)
        ));
        match key {
            Some((private_key, _)) => {
                let key_file = self.write("deploy_key", &normalize(private_key))?;
                command.push_str(&format!(" -o IdentityFile={}", quote(&key_file)));
            }
            // IdentitiesOnly with no IdentityFile: no key of the worker's own is offered.
            None => command.push_str(" -o IdentityFile=none"),
        }
        Ok(command)
    }
}

impl Drop for KeyDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// OpenSSH rejects a key file without its final newline or with CRLFs, as
/// pasted from some browsers.
fn normalize(text: &str) -> String {
    let mut text = text.replace("\r\n", "\n");
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

fn quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

fn local_error(what: &str, e: std::io::Error) -> JobError {
    JobError::Retryable(format!("{what} failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_shared::domain::GitUrl;

    fn remote(url: &str) -> Remote {
        super::super::url::parse(&GitUrl::parse(url).unwrap()).unwrap()
    }

    fn token(username: Option<&str>) -> GitCredential {
        GitCredential::Token {
            username: username.map(String::from),
            token: "t0ken-value".to_owned().into(),
        }
    }

    fn code(result: Result<Access, JobError>) -> String {
        match result {
            Err(JobError::Permanent { code, .. }) => code,
            Err(other) => panic!("expected a permanent error, got {other:?}"),
            Ok(_) => panic!("expected a permanent error"),
        }
    }

    #[test]
    fn a_token_becomes_a_basic_header_scoped_to_the_repository() {
        let access = prepare(
            &remote("https://h.example/o/r.git"),
            Some(&token(None)),
            None,
        )
        .unwrap();
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{DEFAULT_TOKEN_USER}:t0ken-value"));
        assert_eq!(
            access.config,
            [(
                "http.https://h.example/o/r.git.extraHeader".to_owned(),
                format!("Authorization: Basic {basic}")
            )]
        );
        assert!(access.env.is_empty());
        let scrubbed = access.scrubber.scrub(format!("x t0ken-value {basic} y"));
        assert_eq!(scrubbed, "x [REDACTED] [REDACTED] y");
    }

    #[test]
    fn a_credential_for_another_transport_is_refused() {
        let key = GitCredential::SshKey {
            private_key: "k".to_owned().into(),
            known_hosts: None,
        };
        assert_eq!(
            code(prepare(&remote("git://h/r"), Some(&token(None)), None)),
            "source_credential_mismatch"
        );
        assert_eq!(
            code(prepare(&remote("ssh://h/r"), Some(&token(None)), None)),
            "source_credential_mismatch"
        );
        assert_eq!(
            code(prepare(&remote("https://h/r"), Some(&key), None)),
            "source_credential_mismatch"
        );
    }

    #[test]
    fn a_deploy_key_lives_in_a_private_dir_until_the_fetch_ends() {
        let key = GitCredential::SshKey {
            private_key:
                "-----BEGIN OPENSSH PRIVATE KEY-----\r\nabc\r\n-----END OPENSSH PRIVATE KEY-----"
                    .to_owned()
                    .into(),
            known_hosts: Some("[h]:2222 ssh-ed25519 AAAA".into()),
        };
        let access = prepare(&remote("git@h:o/r.git"), Some(&key), None).unwrap();
        let (_, command) = access
            .env
            .iter()
            .find(|(k, _)| k == "GIT_SSH_COMMAND")
            .unwrap();
        assert!(command.contains("StrictHostKeyChecking=yes") && command.contains("BatchMode=yes"));
        let dir = access._key_dir.as_ref().unwrap().0.clone();
        let key_file = dir.join("deploy_key");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let written = std::fs::read_to_string(&key_file).unwrap();
        assert!(written.ends_with("KEY-----\n") && !written.contains('\r'));
        drop(access);
        assert!(!dir.exists(), "removed with the fetch");
    }
}
