//! What a fetch needs to know about a repository URL: its transport, the URL
//! handed to git (never carrying a password), the URL shown to users, and
//! any credential a user wrote into the URL itself.

use slipway_shared::domain::GitUrl;
use slipway_shared::job::JobError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scheme {
    Https,
    Http,
    Ssh,
    Git,
    File,
}

impl Scheme {
    pub(super) fn name(self) -> &'static str {
        match self {
            Scheme::Https => "https",
            Scheme::Http => "http",
            Scheme::Ssh => "ssh",
            Scheme::Git => "git",
            Scheme::File => "file",
        }
    }
}

#[derive(Debug)]
pub(super) struct Remote {
    pub scheme: Scheme,
    /// Handed to git: no password, and no user name for http(s).
    pub fetch_url: String,
    /// Shown in logs and errors: like `fetch_url`, plus an ssh user name.
    pub display: String,
    /// `user:password@` from an http(s) URL, percent-decoded.
    pub userinfo: Option<(String, String)>,
    /// From the `/` after the authority on (empty for `user@host:path`).
    pub path: String,
}

pub(super) fn parse(url: &GitUrl) -> Result<Remote, JobError> {
    let raw = url.as_str();
    // git would take a leading dash as an option, whatever comes after `--`
    // in the ssh command it builds.
    if raw.starts_with('-') {
        return Err(unsupported(raw));
    }
    let Some((scheme_text, rest)) = raw.split_once("://") else {
        // scp-like `user@host:path`; no password can be written there.
        return Ok(Remote {
            scheme: Scheme::Ssh,
            fetch_url: raw.to_owned(),
            display: raw.to_owned(),
            userinfo: None,
            path: String::new(),
        });
    };
    let scheme = match scheme_text {
        "https" => Scheme::Https,
        "http" => Scheme::Http,
        "ssh" => Scheme::Ssh,
        "git" => Scheme::Git,
        "file" => Scheme::File,
        _ => return Err(unsupported(raw)),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let (userinfo, host) = match authority.rsplit_once('@') {
        Some((userinfo, host)) => (Some(userinfo), host),
        None => (None, authority),
    };
    let (user, password) = match userinfo {
        Some(info) => match info.split_once(':') {
            Some((user, password)) => (Some(user), Some(password)),
            None => (Some(info), None),
        },
        None => (None, None),
    };
    let http = matches!(scheme, Scheme::Https | Scheme::Http);
    let kept_user = match user {
        Some(user) if !http && !user.is_empty() => format!("{user}@"),
        _ => String::new(),
    };
    let fetch_url = format!("{scheme_text}://{kept_user}{host}{path}");
    let userinfo = match (http, password) {
        (true, Some(password)) => Some((
            percent_decode(user.unwrap_or_default()),
            percent_decode(password),
        )),
        _ => None,
    };
    Ok(Remote {
        scheme,
        display: fetch_url.clone(),
        fetch_url,
        userinfo,
        path: path.to_owned(),
    })
}

fn unsupported(raw: &str) -> JobError {
    let shown: String = raw.chars().take(80).collect();
    JobError::permanent(
        "source_scheme_not_allowed",
        format!("the repository URL {shown:?} uses no supported transport (https, http, ssh, git)"),
    )
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match decoded {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(url: &str) -> Remote {
        parse(&GitUrl::parse(url).unwrap()).unwrap()
    }

    #[test]
    fn http_userinfo_is_taken_out_of_the_url() {
        let r = remote("https://bob:s%40cret@example.com:8443/org/repo.git");
        assert_eq!(r.scheme, Scheme::Https);
        assert_eq!(r.fetch_url, "https://example.com:8443/org/repo.git");
        assert_eq!(r.display, r.fetch_url);
        assert_eq!(r.userinfo, Some(("bob".into(), "s@cret".into())));
    }

    #[test]
    fn ssh_keeps_its_user_but_not_a_password() {
        let r = remote("ssh://git:pw@example.com:2222/repo");
        assert_eq!(r.scheme, Scheme::Ssh);
        assert_eq!(r.fetch_url, "ssh://git@example.com:2222/repo");
        assert!(r.userinfo.is_none());
        let scp = remote("git@example.com:org/repo.git");
        assert_eq!(scp.scheme, Scheme::Ssh);
        assert_eq!(scp.fetch_url, "git@example.com:org/repo.git");
    }

    #[test]
    fn schemes() {
        assert_eq!(remote("git://127.0.0.1:9418/r").scheme, Scheme::Git);
        assert_eq!(remote("file:///srv/r").scheme, Scheme::File);
        assert_eq!(remote("file:///srv/r").fetch_url, "file:///srv/r");
        assert_eq!(remote("http://h/r").scheme, Scheme::Http);
        assert!(parse(&GitUrl::parse("-oProxyCommand=x@h:p").unwrap()).is_err());
    }
}
