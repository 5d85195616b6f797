//! The keys Slipway makes for a server before it buys it: the server's own
//! SSH host key (ed25519), handed over in the cloud-init user data so the
//! first connection is already pinned (never trust-on-first-use), and the
//! client key Slipway logs in with (given to the provider as the server's
//! key pair). Made with `ssh-keygen`, as the rest of Slipway's SSH is.

use slipway_shared::job::JobError;
use std::path::Path;

/// A key pair in OpenSSH form.
pub struct KeyPair {
    pub private: String,
    pub public: String,
}

/// A new ed25519 key pair.
pub async fn generate(comment: &str) -> Result<KeyPair, JobError> {
    let dir = tempdir()?;
    let file = dir.join("key");
    let out = tokio::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(&file)
        .output()
        .await;
    let result = match out {
        Ok(out) if out.status.success() => read(&file),
        Ok(out) => Err(format!(
            "ssh-keygen: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!("cannot run ssh-keygen: {e}")),
    };
    let _ = std::fs::remove_dir_all(&dir);
    result.map_err(|e| JobError::permanent("ssh_unavailable", e))
}

fn read(file: &Path) -> Result<KeyPair, String> {
    let private = std::fs::read_to_string(file).map_err(|e| e.to_string())?;
    let public = std::fs::read_to_string(file.with_extension("pub"))
        .map_err(|e| e.to_string())?
        .trim()
        .to_owned();
    Ok(KeyPair { private, public })
}

fn tempdir() -> Result<std::path::PathBuf, JobError> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = std::env::temp_dir().join(format!("slipway-keygen-{}", uuid::Uuid::new_v4()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| JobError::Retryable(format!("making a folder for new keys: {e}")))?;
    Ok(dir)
}

/// The cloud-init user data of a new server: its host key, replacing
/// whatever the image would generate.
pub fn user_data(host_private: &str, host_public: &str) -> String {
    let indented: String = host_private
        .lines()
        .map(|line| format!("    {line}\n"))
        .collect();
    format!(
        "#cloud-config\nssh_deletekeys: true\nssh_genkeytypes: []\nssh_keys:\n  ed25519_private: |\n{indented}  ed25519_public: {host_public}\n"
    )
}

/// The `known_hosts` line pinning `host_public` at `host:port`.
pub fn known_hosts(host: &str, port: u16, host_public: &str) -> String {
    let mut fields = host_public.split_whitespace();
    let (kind, key) = (
        fields.next().unwrap_or_default(),
        fields.next().unwrap_or_default(),
    );
    if port == 22 {
        format!("{host} {kind} {key}\n")
    } else {
        format!("[{host}]:{port} {kind} {key}\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_key_travels_in_cloud_config() {
        let data = user_data(
            "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n",
            "ssh-ed25519 AAAA host",
        );
        assert!(data.starts_with("#cloud-config\n"));
        assert!(data
            .contains("  ed25519_private: |\n    -----BEGIN OPENSSH PRIVATE KEY-----\n    abc\n"));
        assert!(data.contains("  ed25519_public: ssh-ed25519 AAAA host\n"));
        assert_eq!(
            known_hosts("10.0.0.5", 22, "ssh-ed25519 AAAA c"),
            "10.0.0.5 ssh-ed25519 AAAA\n"
        );
        assert_eq!(
            known_hosts("127.0.0.1", 2222, "ssh-ed25519 AAAA c"),
            "[127.0.0.1]:2222 ssh-ed25519 AAAA\n"
        );
    }
}
