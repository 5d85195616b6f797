//! Push webhooks from GitHub, GitLab and Gitea: signature checks over the
//! raw body (constant time), the push event each provider sends, and the
//! repository URL normalisation that matches a push to an app.
//!
//! - GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`,
//!   event in `X-GitHub-Event` (`push`, `ping`), id in `X-GitHub-Delivery`.
//! - Gitea (and Forgejo): `X-Gitea-Signature: <hex HMAC-SHA256>` (or
//!   `X-Forgejo-Signature`, or GitHub's header, which Gitea also sends),
//!   event in `X-Gitea-Event` / `X-Forgejo-Event`, id in `X-Gitea-Delivery`.
//! - GitLab: `X-Gitlab-Token` carries the secret itself (compared as SHA-256
//!   digests in constant time). A GitLab signing token follows Standard
//!   Webhooks: `webhook-signature: v1,<base64 HMAC-SHA256(secret,
//!   "{webhook-id}.{webhook-timestamp}.{body}")>`, checked with a five-minute
//!   window on the timestamp. Event in `X-Gitlab-Event` (`Push Hook`).

use axum::http::HeaderMap;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    GitHub,
    GitLab,
    Gitea,
}

impl Provider {
    pub fn parse(value: &str) -> Option<Provider> {
        match value {
            "github" => Some(Provider::GitHub),
            "gitlab" => Some(Provider::GitLab),
            "gitea" => Some(Provider::Gitea),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::GitHub => "github",
            Provider::GitLab => "gitlab",
            Provider::Gitea => "gitea",
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No signature header (or token) of the provider at all.
    Unsigned(&'static str),
    /// A signature that does not verify, or cannot be read.
    BadSignature(&'static str),
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// Hex HMAC-SHA256 of `body`, compared in constant time by `verify_slice`.
fn verify_hex(secret: &[u8], body: &[u8], hex_tag: &str) -> bool {
    let Ok(tag) = hex::decode(hex_tag) else {
        return false;
    };
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    mac.verify_slice(&tag).is_ok()
}

/// Checks the request against the app's secret.
pub fn verify(
    provider: Provider,
    headers: &HeaderMap,
    body: &[u8],
    secret: &str,
    now_unix: i64,
) -> Result<(), Refusal> {
    let key = secret.as_bytes();
    match provider {
        Provider::GitHub => {
            let Some(value) = header(headers, "x-hub-signature-256") else {
                return Err(Refusal::Unsigned(
                    "X-Hub-Signature-256 is missing (set the webhook's secret; SHA-1 signatures are not accepted)",
                ));
            };
            let tag = value.strip_prefix("sha256=").unwrap_or("");
            if verify_hex(key, body, tag) {
                Ok(())
            } else {
                Err(Refusal::BadSignature(
                    "X-Hub-Signature-256 does not match the body",
                ))
            }
        }
        Provider::Gitea => {
            let tag = header(headers, "x-gitea-signature")
                .or_else(|| header(headers, "x-forgejo-signature"))
                .or_else(|| {
                    header(headers, "x-hub-signature-256").map(|v| v.trim_start_matches("sha256="))
                });
            match tag {
                None => Err(Refusal::Unsigned(
                    "X-Gitea-Signature is missing (set the webhook's secret)",
                )),
                Some(tag) if verify_hex(key, body, tag) => Ok(()),
                Some(_) => Err(Refusal::BadSignature(
                    "X-Gitea-Signature does not match the body",
                )),
            }
        }
        Provider::GitLab => {
            let signature = header(headers, "webhook-signature");
            let token = header(headers, "x-gitlab-token");
            if signature.is_none() && token.is_none() {
                return Err(Refusal::Unsigned(
                    "X-Gitlab-Token is missing (set the webhook's secret token)",
                ));
            }
            if let Some(token) = token {
                // Digests first: equal lengths, so not even the length leaks.
                let same: bool = Sha256::digest(token.as_bytes())
                    .ct_eq(&Sha256::digest(key))
                    .into();
                if !same {
                    return Err(Refusal::BadSignature(
                        "X-Gitlab-Token is not the app's webhook secret",
                    ));
                }
            }
            if let Some(signature) = signature {
                verify_standard(headers, signature, body, secret, now_unix)?;
            }
            Ok(())
        }
    }
}

/// Standard Webhooks (GitLab signing tokens): any `v1,<base64>` entry of
/// the header may match; a `whsec_` secret is base64 under its prefix.
fn verify_standard(
    headers: &HeaderMap,
    signature: &str,
    body: &[u8],
    secret: &str,
    now_unix: i64,
) -> Result<(), Refusal> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let (Some(id), Some(timestamp)) = (
        header(headers, "webhook-id"),
        header(headers, "webhook-timestamp"),
    ) else {
        return Err(Refusal::BadSignature(
            "webhook-signature needs webhook-id and webhook-timestamp",
        ));
    };
    let at: i64 = timestamp
        .parse()
        .map_err(|_| Refusal::BadSignature("webhook-timestamp is not a number"))?;
    if (now_unix - at).abs() > 300 {
        return Err(Refusal::BadSignature(
            "webhook-timestamp is more than five minutes away",
        ));
    }
    let key = match secret.strip_prefix("whsec_") {
        Some(encoded) => b64
            .decode(encoded)
            .map_err(|_| Refusal::BadSignature("the stored secret is not a valid whsec_ key"))?,
        None => secret.as_bytes().to_vec(),
    };
    for entry in signature.split_whitespace() {
        let Some(tag) = entry.strip_prefix("v1,").and_then(|t| b64.decode(t).ok()) else {
            continue;
        };
        let mut mac = HmacSha256::new_from_slice(&key).expect("HMAC takes any key length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        if mac.verify_slice(&tag).is_ok() {
            return Ok(());
        }
    }
    Err(Refusal::BadSignature(
        "webhook-signature does not match the body",
    ))
}

/// What kind of event the provider says this is.
pub enum Event {
    Push,
    Ping,
    Other(String),
}

pub fn event(provider: Provider, headers: &HeaderMap) -> Event {
    let name = match provider {
        Provider::GitHub => header(headers, "x-github-event"),
        Provider::Gitea => {
            header(headers, "x-gitea-event").or_else(|| header(headers, "x-forgejo-event"))
        }
        Provider::GitLab => header(headers, "x-gitlab-event"),
    }
    .unwrap_or_default();
    match (provider, name) {
        (Provider::GitHub | Provider::Gitea, "push") | (Provider::GitLab, "Push Hook") => {
            Event::Push
        }
        (Provider::GitHub, "ping") => Event::Ping,
        (_, other) => Event::Other(other.to_owned()),
    }
}

/// The provider's id of this delivery, for dropping redeliveries.
pub fn delivery_id(provider: Provider, headers: &HeaderMap) -> Option<String> {
    let names: &[&str] = match provider {
        Provider::GitHub => &["x-github-delivery"],
        Provider::Gitea => &["x-gitea-delivery", "x-forgejo-delivery"],
        Provider::GitLab => &["idempotency-key", "webhook-id", "x-gitlab-event-uuid"],
    };
    names
        .iter()
        .find_map(|n| header(headers, n))
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .map(str::to_owned)
}

/// A push, as the three providers describe it.
#[derive(Debug)]
pub struct Push {
    pub git_ref: String,
    pub after: String,
    pub deleted: bool,
    /// Every URL the payload gives for the repository.
    pub repo_urls: Vec<String>,
    pub default_branch: Option<String>,
}

/// Reads a push payload: JSON, or the form encoding GitHub and Gitea can
/// send (`payload=<json>`).
pub fn parse_push(body: &[u8], form: bool) -> Result<Push, String> {
    let value: Value = if form {
        let fields: Vec<(String, String)> =
            serde_urlencoded::from_bytes(body).map_err(|e| e.to_string())?;
        let payload = fields
            .into_iter()
            .find(|(k, _)| k == "payload")
            .ok_or("the form has no `payload` field")?
            .1;
        serde_json::from_str(&payload).map_err(|e| e.to_string())?
    } else {
        serde_json::from_slice(body).map_err(|e| e.to_string())?
    };
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    let git_ref = text(&value, "ref").ok_or("the payload has no `ref`")?;
    let after = text(&value, "after").ok_or("the payload has no `after`")?;
    let mut repo_urls = Vec::new();
    let mut default_branch = None;
    for object in ["repository", "project"] {
        let Some(repo) = value.get(object) else {
            continue;
        };
        for key in [
            "clone_url",
            "ssh_url",
            "git_url",
            "html_url",
            "url",
            "svn_url",
            "git_http_url",
            "git_ssh_url",
            "http_url",
            "web_url",
            "homepage",
        ] {
            if let Some(url) = text(repo, key) {
                repo_urls.push(url);
            }
        }
        default_branch = default_branch.or_else(|| text(repo, "default_branch"));
    }
    let deleted = value
        .get("deleted")
        .and_then(Value::as_bool)
        .unwrap_or(false)
        || after.bytes().all(|b| b == b'0');
    Ok(Push {
        git_ref,
        after,
        deleted,
        repo_urls,
        default_branch,
    })
}

/// A repository's identity across URL spellings: host (with a non-default
/// port), path without `.git` and trailing slashes, lowercase (the forges
/// treat owner and name case-insensitively); no scheme, no user.
pub fn repo_key(url: &str) -> Option<String> {
    let url = url.trim().to_ascii_lowercase();
    let (authority, path, default_port) = if let Some((scheme, rest)) = url.split_once("://") {
        if scheme == "file" {
            return Some(format!("file:{}", clean_path(rest)));
        }
        let default_port = match scheme {
            "https" => "443",
            "http" => "80",
            "ssh" | "git+ssh" => "22",
            "git" => "9418",
            _ => return None,
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        (authority.to_owned(), path.to_owned(), default_port)
    } else {
        // scp-like `user@host:path`
        let (authority, path) = url.split_once(':')?;
        (authority.to_owned(), path.to_owned(), "22")
    };
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority.as_str(), |(_, h)| h);
    let host = match host_port.rsplit_once(':') {
        Some((host, port)) if port == default_port => host,
        _ => host_port,
    };
    if host.is_empty() {
        return None;
    }
    Some(format!("{host}/{}", clean_path(&path)))
}

fn clean_path(path: &str) -> String {
    let path = path.trim_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    path.trim_matches('/').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, v.parse().unwrap());
        }
        map
    }

    fn hex_mac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        let mut mac = HmacSha256::new_from_slice(key).unwrap();
        for p in parts {
            mac.update(p);
        }
        mac.finalize().into_bytes().to_vec()
    }

    #[test]
    fn github_and_gitea_signatures() {
        let body = br#"{"ref":"refs/heads/main"}"#;
        let tag = hex::encode(hex_mac(b"s3cret", &[body]));
        let good = headers(&[("x-hub-signature-256", &format!("sha256={tag}"))]);
        assert_eq!(verify(Provider::GitHub, &good, body, "s3cret", 0), Ok(()));
        assert!(matches!(
            verify(Provider::GitHub, &good, body, "other", 0),
            Err(Refusal::BadSignature(_))
        ));
        assert!(matches!(
            verify(Provider::GitHub, &good, b"{}", "s3cret", 0),
            Err(Refusal::BadSignature(_))
        ));
        let bare = headers(&[("x-hub-signature-256", &tag)]);
        assert!(matches!(
            verify(Provider::GitHub, &bare, body, "s3cret", 0),
            Err(Refusal::BadSignature(_))
        ));
        assert!(matches!(
            verify(Provider::GitHub, &HeaderMap::new(), body, "s3cret", 0),
            Err(Refusal::Unsigned(_))
        ));
        let gitea = headers(&[("x-gitea-signature", &tag)]);
        assert_eq!(verify(Provider::Gitea, &gitea, body, "s3cret", 0), Ok(()));
        let forgejo = headers(&[("x-forgejo-signature", &tag)]);
        assert_eq!(verify(Provider::Gitea, &forgejo, body, "s3cret", 0), Ok(()));
        let wrong = headers(&[("x-gitea-signature", "zz")]);
        assert!(matches!(
            verify(Provider::Gitea, &wrong, body, "s3cret", 0),
            Err(Refusal::BadSignature(_))
        ));
    }

    #[test]
    fn gitlab_token_and_signing_token() {
        let body = b"{}";
        assert_eq!(
            verify(
                Provider::GitLab,
                &headers(&[("x-gitlab-token", "s3cret")]),
                body,
                "s3cret",
                0
            ),
            Ok(())
        );
        assert!(matches!(
            verify(
                Provider::GitLab,
                &headers(&[("x-gitlab-token", "s3cre")]),
                body,
                "s3cret",
                0
            ),
            Err(Refusal::BadSignature(_))
        ));
        assert!(matches!(
            verify(Provider::GitLab, &HeaderMap::new(), body, "s3cret", 0),
            Err(Refusal::Unsigned(_))
        ));
        let b64 = base64::engine::general_purpose::STANDARD;
        let tag = b64.encode(hex_mac(b"s3cret", &[b"msg_1.1700000000.", body]));
        let signed = |ts: &str, sig: &str| {
            headers(&[
                ("webhook-id", "msg_1"),
                ("webhook-timestamp", ts),
                ("webhook-signature", sig),
            ])
        };
        let now = 1_700_000_100;
        let good = signed("1700000000", &format!("v1,AAAA v1,{tag}"));
        assert_eq!(verify(Provider::GitLab, &good, body, "s3cret", now), Ok(()));
        assert!(verify(Provider::GitLab, &good, b"{ }", "s3cret", now).is_err());
        assert!(
            verify(Provider::GitLab, &good, body, "s3cret", now + 600).is_err(),
            "stale"
        );
        assert!(verify(
            Provider::GitLab,
            &signed("1700000001", &format!("v1,{tag}")),
            body,
            "s3cret",
            now
        )
        .is_err());
        let key = b64.encode(b"raw-key-bytes");
        let tag = b64.encode(hex_mac(b"raw-key-bytes", &[b"msg_1.1700000000.", body]));
        let whsec = format!("whsec_{key}");
        assert_eq!(
            verify(
                Provider::GitLab,
                &signed("1700000000", &format!("v1,{tag}")),
                body,
                &whsec,
                now
            ),
            Ok(())
        );
    }

    #[test]
    fn repository_urls_normalise() {
        let key = repo_key("https://github.com/Acme/Web.git").unwrap();
        for same in [
            "https://github.com/acme/web",
            "https://user:tok@github.com:443/acme/web/",
            "git@github.com:acme/web.git",
            "ssh://git@github.com/acme/web.git",
            "ssh://git@github.com:22/acme/web",
            "git://github.com/acme/web.git",
        ] {
            assert_eq!(repo_key(same).as_deref(), Some(key.as_str()), "{same}");
        }
        for other in [
            "https://github.com/acme/web2",
            "https://gitlab.com/acme/web",
            "https://github.com:8443/acme/web",
            "https://github.com/other/web",
        ] {
            assert_ne!(repo_key(other).as_deref(), Some(key.as_str()), "{other}");
        }
        assert_eq!(
            repo_key("file:///srv/git/app.git").as_deref(),
            Some("file:srv/git/app")
        );
        assert_eq!(repo_key("ftp://x/y"), None);
    }

    #[test]
    fn push_payloads_of_each_provider() {
        let github = br#"{"ref":"refs/heads/main","after":"abc","deleted":false,
            "repository":{"clone_url":"https://github.com/a/b.git","ssh_url":"git@github.com:a/b.git","default_branch":"main"}}"#;
        let push = parse_push(github, false).unwrap();
        assert_eq!(
            (push.git_ref.as_str(), push.after.as_str(), push.deleted),
            ("refs/heads/main", "abc", false)
        );
        assert_eq!(push.repo_urls.len(), 2);
        assert_eq!(push.default_branch.as_deref(), Some("main"));
        let gitlab = br#"{"object_kind":"push","ref":"refs/heads/dev","after":"0000000000000000000000000000000000000000",
            "project":{"git_http_url":"http://gl/a/b.git","git_ssh_url":"git@gl:a/b.git","default_branch":"main"}}"#;
        let push = parse_push(gitlab, false).unwrap();
        assert!(push.deleted);
        assert_eq!(push.repo_urls, vec!["http://gl/a/b.git", "git@gl:a/b.git"]);
        let form = format!(
            "payload={}",
            url_escape(
                r#"{"ref":"refs/heads/main","after":"abc","repository":{"clone_url":"https://h/a/b.git"}}"#
            )
        );
        assert_eq!(parse_push(form.as_bytes(), true).unwrap().after, "abc");
        assert!(parse_push(b"{}", false).is_err());
        assert!(parse_push(b"not json", false).is_err());
    }

    fn url_escape(s: &str) -> String {
        s.bytes().map(|b| format!("%{b:02X}")).collect()
    }
}
