//! Targets as validated values: where an app's releases run. `local` is the
//! Slipway host (settings from the workers' environment, see
//! [`crate::local_target`]); `ssh` is a Linux server with podman or Docker
//! reached over SSH. Everything that reaches an ssh command line (host, user, port,
//! addresses, paths) is checked here, so a value that could be read as an
//! option or break out of a quoted word cannot exist past the API.

use crate::domain::Invalid;
use crate::tls::TlsIssuer;
use serde::{Deserialize, Serialize};

fn invalid(field: &'static str, reason: impl Into<String>) -> Invalid {
    Invalid {
        field,
        reason: reason.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    Local,
    Ssh,
}

impl TargetKind {
    pub fn parse(value: &str) -> Result<TargetKind, Invalid> {
        match value {
            "local" => Ok(TargetKind::Local),
            "ssh" => Ok(TargetKind::Ssh),
            other => Err(invalid(
                "kind",
                format!("`{other}` is not a target kind (local or ssh)"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Local => "local",
            TargetKind::Ssh => "ssh",
        }
    }
}

/// The container engine that runs an ssh target's releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EngineKind {
    Podman,
    Docker,
}

impl EngineKind {
    pub fn parse(value: &str) -> Result<EngineKind, Invalid> {
        match value {
            "podman" => Ok(EngineKind::Podman),
            "docker" => Ok(EngineKind::Docker),
            other => Err(invalid(
                "engine",
                format!("`{other}` is not a container engine (podman or docker)"),
            )),
        }
    }

    /// Also the name of its command-line program.
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Podman => "podman",
            EngineKind::Docker => "docker",
        }
    }
}

/// A host name or IP address an ssh client is pointed at: letters, digits,
/// `.`, `-`, `:` (IPv6), never starting with `-` (it would be an option).
pub fn parse_host(value: &str) -> Result<String, Invalid> {
    let ok = !value.is_empty()
        && value.len() <= 253
        && !value.starts_with('-')
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c));
    if ok {
        Ok(value.to_owned())
    } else {
        Err(invalid(
            "host",
            "must be a host name or IP address (letters, digits, '.', '-', ':')",
        ))
    }
}

/// A POSIX user name.
pub fn parse_user(value: &str) -> Result<String, Invalid> {
    let ok = !value.is_empty()
        && value.len() <= 32
        && value.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-".contains(c));
    if ok {
        Ok(value.to_owned())
    } else {
        Err(invalid(
            "user",
            "must be a user name (a-z, 0-9, '_', '-', starting with a letter or '_')",
        ))
    }
}

/// `HOST:PORT` as Caddy and ssh forwards take it (`127.0.0.1:2019`).
pub fn parse_addr(field: &'static str, value: &str) -> Result<String, Invalid> {
    let bad = || {
        invalid(
            field,
            format!("`{value}` must be HOST:PORT, e.g. 127.0.0.1:2019"),
        )
    };
    let (host, port) = value.rsplit_once(':').ok_or_else(bad)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if port.parse::<u16>().ok().filter(|p| *p > 0).is_none() || parse_host(host).is_err() {
        return Err(bad());
    }
    Ok(value.to_owned())
}

/// An absolute path without anything a shell or ssh could misread.
pub fn parse_path(field: &'static str, value: &str) -> Result<String, Invalid> {
    let ok = value.starts_with('/')
        && value.len() <= 1024
        && !value.split('/').any(|part| part == "..")
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c));
    if ok {
        Ok(value.to_owned())
    } else {
        Err(invalid(
            field,
            "must be an absolute path of letters, digits, '/', '.', '_', '-'",
        ))
    }
}

/// The settings of an ssh target that are not how to log in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshTargetSettings {
    /// The target's own Caddy admin API, as seen on the target.
    pub caddy_admin: String,
    /// Where the target's Caddy serves the apps.
    pub apps_addr: String,
    /// Folder provisioning makes for the platform's files on the target.
    pub data_dir: String,
    /// `CONTAINERS_CONF` for podman on the target, if any.
    pub containers_conf: Option<String>,
    /// Where the target's Caddy serves the apps over HTTPS (`0.0.0.0:443`);
    /// `None`: HTTP only.
    #[serde(default)]
    pub https_addr: Option<String>,
    /// Where the HTTPS certificates come from.
    #[serde(default)]
    pub tls: TlsIssuer,
    /// The engine asked for; `None`: the one provisioning finds, podman
    /// before Docker.
    #[serde(default)]
    pub engine: Option<EngineKind>,
}

impl Default for SshTargetSettings {
    fn default() -> Self {
        SshTargetSettings {
            caddy_admin: "127.0.0.1:2019".into(),
            apps_addr: "0.0.0.0:80".into(),
            data_dir: "/var/lib/slipway".into(),
            containers_conf: None,
            https_addr: None,
            tls: TlsIssuer::Internal,
            engine: None,
        }
    }
}

impl SshTargetSettings {
    /// Every field optional; absent ones take the defaults.
    pub fn parse(
        caddy_admin: Option<&str>,
        apps_addr: Option<&str>,
        data_dir: Option<&str>,
        containers_conf: Option<&str>,
    ) -> Result<SshTargetSettings, Invalid> {
        let default = SshTargetSettings::default();
        Ok(SshTargetSettings {
            caddy_admin: caddy_admin
                .map(|a| parse_addr("caddy_admin", a))
                .transpose()?
                .unwrap_or(default.caddy_admin),
            apps_addr: apps_addr
                .map(|a| parse_addr("apps_addr", a))
                .transpose()?
                .unwrap_or(default.apps_addr),
            data_dir: data_dir
                .map(|p| parse_path("data_dir", p))
                .transpose()?
                .unwrap_or(default.data_dir),
            containers_conf: containers_conf
                .map(|p| parse_path("containers_conf", p))
                .transpose()?,
            https_addr: None,
            tls: TlsIssuer::Internal,
            engine: None,
        })
    }

    /// Releases run under `engine` (`podman` or `docker`) whatever else the
    /// server has.
    pub fn with_engine(mut self, engine: Option<&str>) -> Result<SshTargetSettings, Invalid> {
        self.engine = engine.map(EngineKind::parse).transpose()?;
        Ok(self)
    }

    /// HTTPS on `https_addr` with certificates from `tls` (which must be
    /// the internal CA or ACME; ACME needs the apps on port 80 or HTTPS on
    /// port 443 of the names' address, which Caddy's challenges reach).
    pub fn with_https(
        mut self,
        https_addr: Option<&str>,
        tls: TlsIssuer,
    ) -> Result<SshTargetSettings, Invalid> {
        match https_addr {
            Some(addr) => {
                self.https_addr = Some(parse_addr("https_addr", addr)?);
                self.tls = tls;
            }
            None if !tls.is_internal() => {
                return Err(invalid(
                    "https_addr",
                    "is required with the acme issuer (e.g. 0.0.0.0:443)",
                ))
            }
            None => {}
        }
        Ok(self)
    }

    /// The URL apps answer at through the target's Caddy.
    pub fn app_url(&self, host: &str) -> String {
        match self.apps_addr.rsplit_once(':').map(|(_, p)| p) {
            Some("80") | None => format!("http://{host}/"),
            Some(port) => format!("http://{host}:{port}/"),
        }
    }
}

/// The SHA-256 fingerprint (`SHA256:…`, as `ssh-keygen -l` prints it) of
/// the public half of an OpenSSH private key, read from the key file's
/// unencrypted header; `None` for other formats.
pub fn openssh_fingerprint(private_key: &str) -> Option<String> {
    use base64::Engine;
    use sha2::Digest;
    let body: String = private_key
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----") && !l.is_empty())
        .collect();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(body)
        .ok()?;
    let mut rest = raw.strip_prefix(b"openssh-key-v1\0".as_slice())?;
    let mut string = || -> Option<Vec<u8>> {
        let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let value = rest.get(4..4 + len)?.to_vec();
        rest = &rest[4 + len..];
        Some(value)
    };
    let (_cipher, _kdf, _kdf_options) = (string()?, string()?, string()?);
    // The number of keys, then the first public key blob.
    rest = rest.get(4..)?;
    let blob = {
        let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        rest.get(4..4 + len)?.to_vec()
    };
    let digest = sha2::Sha256::digest(&blob);
    Some(format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_values_are_checked() {
        assert!(parse_host("10.213.0.2").is_ok());
        assert!(parse_host("web-1.example.com").is_ok());
        for bad in ["", "-oProxyCommand=x", "a b", "h;rm", "h'"] {
            assert!(parse_host(bad).is_err(), "{bad}");
        }
        assert!(parse_user("deploy").is_ok());
        assert!(parse_user("Root").is_err());
        assert!(parse_user("-x").is_err());
        assert!(parse_addr("a", "127.0.0.1:2019").is_ok());
        assert!(parse_addr("a", "[::1]:2019").is_ok());
        for bad in ["127.0.0.1", "x:0", "x:99999", ":80", "a b:1"] {
            assert!(parse_addr("a", bad).is_err(), "{bad}");
        }
        assert!(parse_path("p", "/var/lib/slipway").is_ok());
        for bad in ["var", "/a/../b", "/a b", "/a'b"] {
            assert!(parse_path("p", bad).is_err(), "{bad}");
        }
        let defaults = SshTargetSettings::parse(None, None, None, None).unwrap();
        assert_eq!(defaults, SshTargetSettings::default());
        assert_eq!(defaults.app_url("a.b.c"), "http://a.b.c/");
        let docker = defaults.clone().with_engine(Some("docker")).unwrap();
        assert_eq!(docker.engine, Some(EngineKind::Docker));
        assert!(defaults.clone().with_engine(Some("lxc")).is_err());
        // Settings stored before engines were chosen read as "whichever".
        let old: SshTargetSettings = serde_json::from_value(serde_json::json!({
            "caddy_admin": "127.0.0.1:2019", "apps_addr": "0.0.0.0:80",
            "data_dir": "/var/lib/slipway", "containers_conf": null}))
        .unwrap();
        assert_eq!(old.engine, None);
    }
}
