//! Where the API is and which token to send: `slipway login` stores both in
//! the user's config dir (`$XDG_CONFIG_HOME/slipway/config.toml`, mode
//! 0600); `SLIPWAY_URL` and `SLIPWAY_TOKEN` win over the file, so CI needs
//! no login. A token never travels over plain `http://` to a host that is
//! not this machine.

use crate::error::{CliError, Result};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

/// What `slipway login` writes.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Stored {
    pub url: Option<String>,
    pub token: Option<String>,
}

/// The API to talk to and the token to send.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub url: reqwest::Url,
    pub token: String,
}

/// The config file: `SLIPWAY_CONFIG`, else `slipway/config.toml` in the
/// user's config dir.
pub fn path() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("SLIPWAY_CONFIG") {
        return Ok(PathBuf::from(path));
    }
    dirs::config_dir()
        .map(|dir| dir.join("slipway").join("config.toml"))
        .ok_or_else(|| {
            CliError::local(
                "no_config_dir",
                "no config dir for this user (set HOME, XDG_CONFIG_HOME or SLIPWAY_CONFIG)",
            )
        })
}

pub fn load() -> Result<Stored> {
    let path = path()?;
    match fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).map_err(|e| {
            CliError::local(
                "bad_config",
                format!("{}: {e} (run `slipway login` again)", path.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Stored::default()),
        Err(e) => Err(anyhow::Error::new(e)
            .context(format!("reading {}", path.display()))
            .into()),
    }
}

/// Writes the file readable by its owner only: created 0600 in a 0700
/// dir, replaced by a rename so no reader sees half of it.
pub fn save(stored: &Stored) -> Result<PathBuf> {
    let path = path()?;
    let dir = path.parent().map(PathBuf::from).unwrap_or_default();
    let io = |e: std::io::Error| {
        CliError::Other(anyhow::Error::new(e).context(format!("writing {}", path.display())))
    };
    fs::create_dir_all(&dir).map_err(io)?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(io)?;
    let text = toml::to_string(stored).map_err(|e| CliError::Other(e.into()))?;
    let temp = dir.join(".config.toml.tmp");
    let _ = fs::remove_file(&temp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    fs::rename(&temp, &path).map_err(io)?;
    Ok(path)
}

/// The URL given (flag or `SLIPWAY_URL`), else the stored one.
pub fn endpoint(url_flag: Option<&str>) -> Result<Endpoint> {
    let stored = load()?;
    let url = url_flag.map(str::to_owned).or(stored.url).ok_or_else(|| {
        CliError::local(
            "not_logged_in",
            "no API URL: run `slipway login`, or set SLIPWAY_URL and SLIPWAY_TOKEN",
        )
    })?;
    let token = std::env::var("SLIPWAY_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .or(stored.token)
        .ok_or_else(|| {
            CliError::local(
                "not_logged_in",
                "no token: run `slipway login`, or set SLIPWAY_TOKEN",
            )
        })?;
    let url = parse_url(&url)?;
    Ok(Endpoint { url, token })
}

/// Parses the API URL and refuses one a token may not be sent to:
/// `https://` anywhere, `http://` only to a loopback host.
pub fn parse_url(text: &str) -> Result<reqwest::Url> {
    let url = reqwest::Url::parse(text.trim_end_matches('/'))
        .map_err(|e| CliError::local("invalid_url", format!("`{text}` is not a URL: {e}")))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(CliError::local(
            "insecure_url",
            format!(
                "refusing to send a token over plain http:// to {}: use https:// \
                 (plain http is allowed only to this machine: localhost, 127.0.0.0/8, ::1)",
                url.host_str().unwrap_or_default()
            ),
        )),
        other => Err(CliError::local(
            "invalid_url",
            format!("`{other}://` is not an API URL: use https:// (or http:// to localhost)"),
        )),
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => {
            let name = host.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_go_over_https_or_to_loopback_only() {
        for ok in [
            "https://api.example.com",
            "https://10.0.0.1:8443/",
            "http://127.0.0.1:8080",
            "http://127.9.0.1",
            "http://[::1]:8080",
            "http://localhost:8080",
            "http://api.localhost",
        ] {
            assert!(parse_url(ok).is_ok(), "{ok}");
        }
        for refused in [
            "http://api.example.invalid",
            "http://10.0.0.1:8080",
            "http://0.0.0.0:8080",
            "http://localhost.example.com",
            "http://[::ffff:7f00:1]",
            "ftp://127.0.0.1",
        ] {
            assert!(parse_url(refused).is_err(), "{refused}");
        }
    }
}
