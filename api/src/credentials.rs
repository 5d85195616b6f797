//! An app's private-repository credential at the edge: the request shape,
//! its validation into a [`StoredGitCredential`], whether it suits the app's
//! git URL, and the only view of it the API ever shows (its kind).

use crate::error::ApiError;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};
use slipway_shared::db::sources::StoredGitCredential;

/// `{"token", "username"?}` or `{"ssh_key", "known_hosts"?}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GitCredentialInput {
    token: Option<String>,
    username: Option<String>,
    ssh_key: Option<String>,
    known_hosts: Option<String>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::Invalid {
        code: "invalid_git_credential",
        message: format!("git_credential: {}", message.into()),
    }
}

impl TryFrom<GitCredentialInput> for StoredGitCredential {
    type Error = ApiError;

    fn try_from(input: GitCredentialInput) -> Result<Self, ApiError> {
        match input {
            GitCredentialInput {
                token: Some(token),
                username,
                ssh_key: None,
                known_hosts: None,
            } => {
                if token.is_empty() || token.len() > 4096 || !printable(&token) {
                    return Err(invalid(
                        "token must be 1 to 4096 printable characters without spaces",
                    ));
                }
                if let Some(name) = &username {
                    // The name goes into HTTP basic auth, where `:` ends it.
                    if name.is_empty() || name.len() > 256 || !printable(name) || name.contains(':')
                    {
                        return Err(invalid(
                            "username must be 1 to 256 printable characters without spaces or `:`",
                        ));
                    }
                }
                Ok(StoredGitCredential::Token {
                    username,
                    token: token.into(),
                })
            }
            GitCredentialInput {
                ssh_key: Some(key),
                known_hosts,
                token: None,
                username: None,
            } => {
                check_private_key(&key).map_err(invalid)?;
                if let Some(lines) = &known_hosts {
                    check_known_hosts(lines).map_err(invalid)?;
                }
                Ok(StoredGitCredential::SshKey {
                    private_key: key.into(),
                    known_hosts,
                })
            }
            _ => Err(invalid(
                "give either {\"token\", \"username\"?} or {\"ssh_key\", \"known_hosts\"?}",
            )),
        }
    }
}

fn printable(value: &str) -> bool {
    value.chars().all(|c| c.is_ascii_graphic())
}

/// An unencrypted private key in OpenSSH or PEM form: git runs without a
/// terminal, so a passphrase could never be typed.
pub fn check_private_key(key: &str) -> Result<(), String> {
    let key = key.trim();
    if key.len() > 16 * 1024 || key.contains('\0') {
        return Err(msg("ssh_key is too long or has a NUL byte"));
    }
    let begin = key.lines().next().unwrap_or_default();
    let end = key.lines().last().unwrap_or_default();
    let framed = begin.starts_with("-----BEGIN ")
        && begin.ends_with("PRIVATE KEY-----")
        && end.starts_with("-----END ")
        && end.ends_with("PRIVATE KEY-----");
    if !framed {
        return Err(msg(
            "ssh_key must be a private key (-----BEGIN ... PRIVATE KEY----- ... -----END ... PRIVATE KEY-----)",
        ));
    }
    if key.contains("ENCRYPTED") {
        return Err(msg(
            "ssh_key is protected by a passphrase; give an unencrypted deploy key",
        ));
    }
    if begin == "-----BEGIN OPENSSH PRIVATE KEY-----" {
        let body: String = key
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .map(str::trim)
            .collect();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| msg("ssh_key is not valid base64 inside its frame"))?;
        let magic = b"openssh-key-v1\0";
        let cipher = raw
            .strip_prefix(magic)
            .and_then(|rest| rest.get(..4).zip(rest.get(4..)))
            .and_then(|(len, rest)| {
                let len = u32::from_be_bytes(len.try_into().ok()?) as usize;
                rest.get(..len)
            })
            .ok_or_else(|| msg("ssh_key is not an OpenSSH private key"))?;
        if cipher != b"none" {
            return Err(msg(
                "ssh_key is protected by a passphrase; give an unencrypted deploy key",
            ));
        }
    }
    Ok(())
}

/// Lines of `known_hosts`: `hosts keytype base64key`, comments and blanks allowed.
pub fn check_known_hosts(lines: &str) -> Result<(), String> {
    if lines.len() > 64 * 1024 || lines.contains('\0') {
        return Err(msg("known_hosts is too long or has a NUL byte"));
    }
    for line in lines.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        // A marker (@cert-authority, @revoked) adds one leading field.
        let skip = usize::from(fields.first().is_some_and(|f| f.starts_with('@')));
        if fields.len() < 3 + skip {
            return Err(msg(format!(
                "known_hosts line `{line}` needs hosts, key type and key"
            )));
        }
    }
    Ok(())
}

fn msg(text: impl Into<String>) -> String {
    text.into()
}

/// A token is for HTTP(S) URLs, a key for SSH ones; `git://` and `file://`
/// take no credential at all.
pub fn check_fits_url(git_url: Option<&str>, kind: Option<&str>) -> Result<(), ApiError> {
    let (Some(url), Some(kind)) = (git_url, kind) else {
        return Ok(());
    };
    let wants = if url.starts_with("https://") || url.starts_with("http://") {
        "token"
    } else if url.starts_with("ssh://") || !url.contains("://") {
        "ssh_key"
    } else {
        "none"
    };
    if wants == kind {
        return Ok(());
    }
    Err(ApiError::Invalid {
        code: "git_credential_mismatch",
        message: match wants {
            "none" => format!("git_url `{url}` takes no credential; remove git_credential"),
            _ => format!("git_url `{url}` needs a {wants} credential, not a {kind}"),
        },
    })
}

/// What the API shows: never the secret, only that one is set and its kind.
pub fn view(kind: Option<&str>) -> Value {
    match kind {
        Some(kind) => json!({"kind": kind, "set": true}),
        None => Value::Null,
    }
}

/// For update bodies: absent keeps the stored value, `null` removes it.
pub fn present_or_null<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: Value) -> Result<StoredGitCredential, ApiError> {
        serde_json::from_value::<GitCredentialInput>(value)
            .map_err(|e| invalid(e.to_string()))
            .and_then(StoredGitCredential::try_from)
    }

    fn openssh(cipher: &str) -> String {
        let mut raw = b"openssh-key-v1\0".to_vec();
        raw.extend_from_slice(&(cipher.len() as u32).to_be_bytes());
        raw.extend_from_slice(cipher.as_bytes());
        raw.extend_from_slice(&[0; 40]);
        let body = base64::engine::general_purpose::STANDARD.encode(raw);
        format!("-----BEGIN OPENSSH PRIVATE KEY-----\n{body}\n-----END OPENSSH PRIVATE KEY-----\n")
    }

    #[test]
    fn shapes_are_checked() {
        assert_eq!(parse(json!({"token": "ghp_abc"})).unwrap().kind(), "token");
        assert_eq!(
            parse(json!({"token": "glpat-x", "username": "oauth2"}))
                .unwrap()
                .kind(),
            "token"
        );
        assert_eq!(
            parse(json!({"ssh_key": openssh("none")})).unwrap().kind(),
            "ssh_key"
        );
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----";
        assert!(
            parse(json!({"ssh_key": pem, "known_hosts": "github.com ssh-ed25519 AAAA"})).is_ok()
        );
        for bad in [
            json!({}),
            json!({"token": ""}),
            json!({"token": "has space"}),
            json!({"token": "t", "username": "a:b"}),
            json!({"token": "t", "ssh_key": openssh("none")}),
            json!({"ssh_key": "not a key"}),
            json!({"ssh_key": openssh("aes256-ctr")}),
            json!({"ssh_key": openssh("none"), "known_hosts": "only-a-host"}),
            json!({"ssh_key": openssh("none"), "username": "git"}),
            json!({"password": "x"}),
        ] {
            assert!(parse(bad.clone()).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn kinds_fit_urls() {
        assert!(check_fits_url(Some("https://h/r.git"), Some("token")).is_ok());
        assert!(check_fits_url(Some("git@h:r.git"), Some("ssh_key")).is_ok());
        assert!(check_fits_url(Some("ssh://git@h/r.git"), Some("ssh_key")).is_ok());
        assert!(check_fits_url(Some("https://h/r.git"), Some("ssh_key")).is_err());
        assert!(check_fits_url(Some("git@h:r.git"), Some("token")).is_err());
        assert!(check_fits_url(Some("git://h/r.git"), Some("token")).is_err());
        assert!(check_fits_url(None, Some("token")).is_ok());
        assert!(check_fits_url(Some("git://h/r.git"), None).is_ok());
    }
}
