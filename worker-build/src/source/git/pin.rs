//! The outbound policy at the moment of connecting: the repository's host
//! is resolved and checked again (it may answer differently than when the
//! API checked it), and git is made to connect to the address that passed
//! and to no other — whatever the name answers when git would look it up.
//!
//! How each transport is pinned: http(s) through curl's resolve list
//! (`http.curloptResolve`, so the URL, its `Host` header, TLS name checks
//! and the credential's URL scope stay the name's) with redirects off
//! (`http.followRedirects=false`: a redirect would go to a host nobody
//! checked); ssh with `HostName=ADDRESS` and the name as `HostKeyAlias`
//! (host keys are still looked up under the name); `git://` by putting
//! the address in the URL handed to git (git daemon serves by path).

use super::url::{Remote, Scheme};
use slipway_shared::domain::GitUrl;
use slipway_shared::egress::{git_endpoint, EgressError, Host, OutboundPolicy};
use slipway_shared::job::JobError;
use slipway_shared::logsink::LogHandle;
use std::net::SocketAddr;

/// The checked address a name-addressed repository is reached at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Pin {
    /// The host as written in the URL (lowercased; only plain names pass
    /// `Host::parse`, so it is safe inside the shell-quoted ssh command).
    pub name: String,
    /// Every answer (all passed): curl tries them in turn.
    pub addrs: Vec<SocketAddr>,
    /// The one ssh and git:// connect to, which take a single address.
    pub addr: SocketAddr,
}

/// Checks the repository's host against `policy`; a name is pinned to its
/// answers (all of which passed). `None` for `file://` and for an IP
/// literal, which git connects to as written.
pub(super) async fn check(
    url: &GitUrl,
    policy: &OutboundPolicy,
    logs: &LogHandle,
) -> Result<Option<Pin>, JobError> {
    let endpoint = git_endpoint(url).map_err(|reason| {
        JobError::permanent(
            "source_url_invalid",
            format!("the repository URL cannot be used: {reason}"),
        )
    })?;
    let Some(endpoint) = endpoint else {
        return Ok(None);
    };
    let addrs = match policy.resolve(&endpoint).await {
        Ok(addrs) => addrs,
        Err(refused @ EgressError::NotAllowed { .. }) => {
            logs.info(format!("refused to connect: {refused}")).await;
            return Err(JobError::permanent(refused.code(), refused.to_string()));
        }
        // Like git's own "could not resolve host": the resolver may be down.
        Err(unresolvable) => return Err(JobError::Retryable(unresolvable.to_string())),
    };
    let Host::Name(name) = endpoint.host else {
        return Ok(None);
    };
    let addr = first_answering(&addrs).await;
    logs.info(format!(
        "{name} resolves to {addr}, an address the platform may connect to; git connects there"
    ))
    .await;
    Ok(Some(Pin { name, addrs, addr }))
}

/// For a name with several answers (IPv6 and IPv4, say), the first that
/// accepts a TCP connection, since ssh and git:// take one address; the
/// first answer if none does (git then reports the failure).
async fn first_answering(addrs: &[SocketAddr]) -> SocketAddr {
    if let [only] = addrs {
        return *only;
    }
    for addr in addrs {
        let connect = tokio::net::TcpStream::connect(addr);
        if let Ok(Ok(_)) = tokio::time::timeout(std::time::Duration::from_secs(5), connect).await {
            return *addr;
        }
    }
    addrs[0]
}

impl Pin {
    /// What the fetch's git commands get: config settings, the URL to
    /// fetch from, and options for the ssh command.
    pub(super) fn apply(&self, remote: &Remote) -> Pinned {
        match remote.scheme {
            Scheme::Https | Scheme::Http => Pinned {
                config: vec![(
                    "http.curloptResolve".into(),
                    format!(
                        "{}:{}:{}",
                        self.name,
                        self.addr.port(),
                        self.addrs
                            .iter()
                            .map(|a| bracketed(*a))
                            .collect::<Vec<_>>()
                            .join(",")
                    ),
                )],
                fetch_url: remote.fetch_url.clone(),
                ssh_options: None,
            },
            Scheme::Ssh => {
                // ssh records a non-default port's key as `[host]:port`,
                // but takes an alias as written.
                let alias = match self.addr.port() {
                    22 => self.name.clone(),
                    port => format!("[{}]:{port}", self.name),
                };
                Pinned {
                    config: Vec::new(),
                    fetch_url: remote.fetch_url.clone(),
                    ssh_options: Some(format!(
                        "-o HostName={} -o 'HostKeyAlias={alias}'",
                        self.addr.ip()
                    )),
                }
            }
            Scheme::Git => Pinned {
                config: Vec::new(),
                fetch_url: format!("git://{}{}", self.addr, remote.path),
                ssh_options: None,
            },
            Scheme::File => Pinned {
                config: Vec::new(),
                fetch_url: remote.fetch_url.clone(),
                ssh_options: None,
            },
        }
    }
}

pub(super) struct Pinned {
    pub config: Vec<(String, String)>,
    pub fetch_url: String,
    pub ssh_options: Option<String>,
}

fn bracketed(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(v4) => v4.ip().to_string(),
        SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pinned(url: &str, addr: &str) -> Pinned {
        let remote = super::super::url::parse(&GitUrl::parse(url).unwrap()).unwrap();
        let addr: SocketAddr = addr.parse().unwrap();
        let pin = Pin {
            name: "git.example".into(),
            addrs: vec![addr, SocketAddr::new([192, 0, 2, 9].into(), addr.port())],
            addr,
        };
        pin.apply(&remote)
    }

    #[test]
    fn each_transport_connects_to_the_checked_address() {
        let http = pinned("https://git.example/o/r.git", "[2001:db8::5]:443");
        assert_eq!(
            http.config,
            [(
                "http.curloptResolve".to_owned(),
                "git.example:443:[2001:db8::5],192.0.2.9".to_owned()
            )]
        );
        assert_eq!(http.fetch_url, "https://git.example/o/r.git");
        let ssh = pinned("ssh://git@git.example:2222/r", "192.0.2.7:2222");
        assert_eq!(
            ssh.ssh_options.as_deref(),
            Some("-o HostName=192.0.2.7 -o 'HostKeyAlias=[git.example]:2222'")
        );
        let scp = pinned("git@git.example:o/r.git", "192.0.2.7:22");
        assert_eq!(
            scp.ssh_options.as_deref(),
            Some("-o HostName=192.0.2.7 -o 'HostKeyAlias=git.example'")
        );
        let daemon = pinned("git://git.example:9000/o/r", "192.0.2.7:9000");
        assert_eq!(daemon.fetch_url, "git://192.0.2.7:9000/o/r");
    }
}
