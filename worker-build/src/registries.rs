//! Where base images come from: the build worker's own registries
//! configuration (search registries for short names, pull-through mirrors,
//! sealed pull credentials and the refresh policy for cached base images),
//! parsed from `SLIPWAY_*` variables at start and rendered into a
//! containers-registries.conf (v2) that each build is pointed to with
//! `CONTAINERS_REGISTRIES_CONF`. The host's `/etc/containers/registries.conf`
//! plays no part, so `FROM python:3.12` means `docker.io/library/python:3.12`
//! as it does for Docker, whatever the host says.

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use slipway_shared::config::ConfigError;
use slipway_shared::secrets::SecretBox;
use std::path::Path;

/// Docker's registry: where a short name goes unless told otherwise.
pub const DOCKER_HUB: &str = "docker.io";

/// When a base image already in local storage is pulled again
/// (`SLIPWAY_BASE_IMAGE_PULL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull only what local storage lacks (the default: fast, offline-safe).
    Missing,
    /// Ask the registry and pull when it holds a newer image; a registry
    /// that cannot be reached leaves the cached image in use.
    Newer,
    /// Pull on every build; a build fails when its base image cannot be pulled.
    Always,
}

impl PullPolicy {
    fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "missing" => Some(PullPolicy::Missing),
            "newer" => Some(PullPolicy::Newer),
            "always" => Some(PullPolicy::Always),
            _ => None,
        }
    }
}

/// A pull-through mirror of one registry, tried before the registry itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// The registry it mirrors, e.g. `docker.io`.
    pub registry: String,
    /// `host[:port]` of the mirror.
    pub location: String,
    /// Plain HTTP (given as `http://...`).
    pub insecure: bool,
}

/// A login for pulling from one registry (or mirror), opened from its sealed
/// form at start. Debug never shows the password.
#[derive(Clone)]
pub struct PullCredential {
    pub registry: String,
    pub username: String,
    password: SecretString,
}

impl std::fmt::Debug for PullCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PullCredential({} as {})", self.registry, self.username)
    }
}

#[derive(Debug, Clone)]
pub struct PullSettings {
    /// `unqualified-search-registries`, in order; empty means a short name
    /// is an error.
    pub search: Vec<String>,
    pub mirrors: Vec<Mirror>,
    pub policy: PullPolicy,
    pub credentials: Vec<PullCredential>,
}

impl Default for PullSettings {
    fn default() -> Self {
        PullSettings {
            search: vec![DOCKER_HUB.to_string()],
            mirrors: Vec::new(),
            policy: PullPolicy::Missing,
            credentials: Vec::new(),
        }
    }
}

impl PullSettings {
    /// Reads `SLIPWAY_REGISTRY_SEARCH` (comma-separated hosts, default
    /// `docker.io`, `none` for none), `SLIPWAY_REGISTRY_MIRRORS`
    /// (`registry=http[s]://host[:port]`, comma-separated),
    /// `SLIPWAY_BASE_IMAGE_PULL` (`missing`, `newer`, `always`) and
    /// `SLIPWAY_PULL_CREDENTIALS_FILE` (lines of `registry = <sealed hex>`,
    /// opened with `SLIPWAY_SECRET_KEY`).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let search = match get("SLIPWAY_REGISTRY_SEARCH") {
            None => vec![DOCKER_HUB.to_string()],
            Some(v) if v.trim() == "none" => Vec::new(),
            Some(v) => list(&v)
                .map(|host| checked_host(host).map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    invalid(
                        "SLIPWAY_REGISTRY_SEARCH",
                        &v,
                        "must be host[:port] names separated by commas, or none",
                    )
                })?,
        };
        let mirrors = match get("SLIPWAY_REGISTRY_MIRRORS") {
            None => Vec::new(),
            Some(v) => list(&v).map(parse_mirror).collect::<Option<Vec<_>>>().ok_or_else(|| {
                invalid(
                    "SLIPWAY_REGISTRY_MIRRORS",
                    &v,
                    "must be registry=http://host:port or registry=https://host entries separated by commas",
                )
            })?,
        };
        let policy = match get("SLIPWAY_BASE_IMAGE_PULL") {
            None => PullPolicy::Missing,
            Some(v) => PullPolicy::parse(&v).ok_or_else(|| {
                invalid(
                    "SLIPWAY_BASE_IMAGE_PULL",
                    &v,
                    "must be missing, newer or always",
                )
            })?,
        };
        let credentials = match get("SLIPWAY_PULL_CREDENTIALS_FILE") {
            None => Vec::new(),
            Some(path) => {
                let key = get("SLIPWAY_SECRET_KEY").ok_or(ConfigError::Missing {
                    name: "SLIPWAY_SECRET_KEY",
                })?;
                let secrets = SecretBox::from_hex(&key.into())
                    .map_err(|e| invalid("SLIPWAY_SECRET_KEY", "(hidden)", &e.to_string()))?;
                read_credentials(Path::new(&path), &secrets)
                    .map_err(|reason| invalid("SLIPWAY_PULL_CREDENTIALS_FILE", &path, &reason))?
            }
        };
        Ok(PullSettings {
            search,
            mirrors,
            policy,
            credentials,
        })
    }

    /// The registries.conf (v2) for a build. Short names are resolved
    /// through the search registries without prompting (there is no
    /// terminal), mirrors are tried in order before their registry.
    pub fn registries_conf(&self) -> String {
        let quoted: Vec<String> = self.search.iter().map(|h| format!("{h:?}")).collect();
        let mut conf = format!(
            "# Written by slipway-worker-build from SLIPWAY_REGISTRY_SEARCH and SLIPWAY_REGISTRY_MIRRORS.\n\
             unqualified-search-registries = [{}]\n\
             short-name-mode = \"disabled\"\n",
            quoted.join(", ")
        );
        let mut registries: Vec<&str> = Vec::new();
        for mirror in &self.mirrors {
            if !registries.contains(&mirror.registry.as_str()) {
                registries.push(&mirror.registry);
            }
        }
        for registry in registries {
            conf.push_str(&format!(
                "\n[[registry]]\nprefix = {registry:?}\nlocation = {registry:?}\n"
            ));
            for mirror in self.mirrors.iter().filter(|m| m.registry == registry) {
                conf.push_str(&format!(
                    "[[registry.mirror]]\nlocation = {:?}\ninsecure = {}\n",
                    mirror.location, mirror.insecure
                ));
            }
        }
        conf
    }

    /// An auth.json (podman/buildah format) holding the pull credentials,
    /// or `None` when there are none. Secret: write it 0600 and remove it.
    pub fn auth_json(&self) -> Option<SecretString> {
        if self.credentials.is_empty() {
            return None;
        }
        Some(auth_json(self.credentials.iter().map(|c| {
            (
                c.registry.as_str(),
                c.username.as_str(),
                c.password.expose_secret(),
            )
        })))
    }

    /// Where an image of `registry` is pulled from, in order, for messages:
    /// `mirror 127.0.0.1:5001 and docker.io`.
    pub fn sources_of(&self, registry: &str) -> String {
        let mirrors: Vec<&str> = self
            .mirrors
            .iter()
            .filter(|m| m.registry == registry)
            .map(|m| m.location.as_str())
            .collect();
        match mirrors.as_slice() {
            [] => registry.to_string(),
            [one] => format!("mirror {one} and {registry}"),
            many => format!("mirrors {} and {registry}", many.join(", ")),
        }
    }
}

/// `{"auths": {registry: {"auth": base64(user:password)}}}`.
pub fn auth_json<'a>(logins: impl Iterator<Item = (&'a str, &'a str, &'a str)>) -> SecretString {
    let auths: serde_json::Map<String, serde_json::Value> = logins
        .map(|(registry, user, password)| {
            let auth =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            (registry.to_string(), serde_json::json!({ "auth": auth }))
        })
        .collect();
    serde_json::json!({ "auths": auths }).to_string().into()
}

/// `user:password` sealed with the key, as hex: one value of the credentials file.
pub fn seal_credential(key: &SecretString, login: &str) -> anyhow::Result<String> {
    let secrets = SecretBox::from_hex(key)?;
    anyhow::ensure!(
        login
            .split_once(':')
            .is_some_and(|(user, _)| !user.is_empty()),
        "expected user:password on stdin"
    );
    Ok(hex::encode(secrets.seal(login)))
}

/// The operator's file: `registry = <hex of the sealed "user:password">`
/// lines; `#` starts a comment. A plain password is refused: it would sit
/// unencrypted on disk.
fn read_credentials(path: &Path, secrets: &SecretBox) -> Result<Vec<PullCredential>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
    let mut credentials = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |what: &str| format!("line {}: {what}", number + 1);
        let (registry, sealed) = line
            .split_once('=')
            .ok_or_else(|| at("expected registry = <sealed credential>"))?;
        let registry =
            checked_host(registry.trim()).ok_or_else(|| at("the registry must be host[:port]"))?;
        let bytes = hex::decode(sealed.trim()).map_err(|_| {
            at("the credential must be sealed (slipway-worker-build seal-pull-credential)")
        })?;
        let opened = secrets
            .open(&bytes)
            .map_err(|_| at("the credential does not open with SLIPWAY_SECRET_KEY"))?;
        let (username, password) = opened
            .expose_secret()
            .split_once(':')
            .ok_or_else(|| at("the sealed credential must be user:password"))?;
        credentials.push(PullCredential {
            registry: registry.to_string(),
            username: username.to_string(),
            password: password.to_string().into(),
        });
    }
    Ok(credentials)
}

fn list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// `host[:port]`: no scheme, path, spaces or quotes (it goes into TOML).
fn checked_host(host: &str) -> Option<&str> {
    let valid = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    valid.then_some(host)
}

fn parse_mirror(entry: &str) -> Option<Mirror> {
    let (registry, url) = entry.split_once('=')?;
    let (insecure, location) = match url.trim().split_once("://") {
        Some(("http", rest)) => (true, rest),
        Some(("https", rest)) => (false, rest),
        Some(_) => return None,
        None => (false, url.trim()),
    };
    Some(Mirror {
        registry: checked_host(registry.trim())?.to_string(),
        location: checked_host(location.trim_end_matches('/'))?.to_string(),
        insecure,
    })
}

fn invalid(name: &'static str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        name,
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const KEY: &str = "4242424242424242424242424242424242424242424242424242424242424242";

    fn settings(vars: &[(&str, &str)]) -> Result<PullSettings, ConfigError> {
        let vars: HashMap<&str, &str> = vars.iter().copied().collect();
        PullSettings::from_lookup(|name| vars.get(name).map(|v| v.to_string()))
    }

    #[test]
    fn short_names_go_to_docker_hub_by_default() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.search, vec!["docker.io"]);
        assert_eq!(s.policy, PullPolicy::Missing);
        let conf = s.registries_conf();
        assert!(conf.contains("unqualified-search-registries = [\"docker.io\"]\n"));
        assert!(conf.contains("short-name-mode = \"disabled\""));
        assert!(!conf.contains("[[registry]]"));
        assert!(s.auth_json().is_none());
    }

    #[test]
    fn mirrors_come_before_their_registry() {
        let s = settings(&[
            ("SLIPWAY_REGISTRY_SEARCH", "docker.io, quay.io"),
            (
                "SLIPWAY_REGISTRY_MIRRORS",
                "docker.io=http://127.0.0.1:5001,docker.io=https://mirror.example/,quay.io=q.example:8443",
            ),
            ("SLIPWAY_BASE_IMAGE_PULL", "Newer"),
        ])
        .unwrap();
        assert_eq!(s.policy, PullPolicy::Newer);
        assert_eq!(
            s.registries_conf(),
            "# Written by slipway-worker-build from SLIPWAY_REGISTRY_SEARCH and SLIPWAY_REGISTRY_MIRRORS.\n\
             unqualified-search-registries = [\"docker.io\", \"quay.io\"]\n\
             short-name-mode = \"disabled\"\n\
             \n[[registry]]\nprefix = \"docker.io\"\nlocation = \"docker.io\"\n\
             [[registry.mirror]]\nlocation = \"127.0.0.1:5001\"\ninsecure = true\n\
             [[registry.mirror]]\nlocation = \"mirror.example\"\ninsecure = false\n\
             \n[[registry]]\nprefix = \"quay.io\"\nlocation = \"quay.io\"\n\
             [[registry.mirror]]\nlocation = \"q.example:8443\"\ninsecure = false\n"
        );
        assert_eq!(
            s.sources_of("docker.io"),
            "mirrors 127.0.0.1:5001, mirror.example and docker.io"
        );
        assert_eq!(s.sources_of("ghcr.io"), "ghcr.io");
        let none = settings(&[("SLIPWAY_REGISTRY_SEARCH", "none")]).unwrap();
        assert!(none
            .registries_conf()
            .contains("unqualified-search-registries = []"));
    }

    #[test]
    fn invalid_values_name_the_variable() {
        for (name, value) in [
            ("SLIPWAY_REGISTRY_SEARCH", "https://docker.io"),
            ("SLIPWAY_REGISTRY_SEARCH", "docker.io/library"),
            ("SLIPWAY_REGISTRY_MIRRORS", "http://127.0.0.1:5001"),
            ("SLIPWAY_REGISTRY_MIRRORS", "docker.io=ftp://m.example"),
            ("SLIPWAY_REGISTRY_MIRRORS", "docker.io=\"x\""),
            ("SLIPWAY_BASE_IMAGE_PULL", "sometimes"),
        ] {
            let error = settings(&[(name, value)])
                .err()
                .unwrap_or_else(|| panic!("{name}={value} accepted"));
            assert!(error.to_string().contains(name), "{error}");
        }
    }

    #[test]
    fn sealed_credentials_open_and_never_print() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let sealed = seal_credential(&KEY.to_string().into(), "bot:pa55word").unwrap();
        std::fs::write(file.path(), format!("# pulls\n127.0.0.1:5001 = {sealed}\n")).unwrap();
        let path = file.path().display().to_string();
        let s = settings(&[
            ("SLIPWAY_PULL_CREDENTIALS_FILE", &path),
            ("SLIPWAY_SECRET_KEY", KEY),
        ])
        .unwrap();
        assert_eq!(s.credentials.len(), 1);
        assert!(!format!("{s:?}").contains("pa55word"), "{s:?}");
        let json: serde_json::Value =
            serde_json::from_str(s.auth_json().unwrap().expose_secret()).unwrap();
        let expected = base64::engine::general_purpose::STANDARD.encode("bot:pa55word");
        assert_eq!(json["auths"]["127.0.0.1:5001"]["auth"], expected.as_str());

        let error = settings(&[("SLIPWAY_PULL_CREDENTIALS_FILE", &path)]).unwrap_err();
        assert!(error.to_string().contains("SLIPWAY_SECRET_KEY"), "{error}");
        std::fs::write(file.path(), "docker.io = bot:plain-password\n").unwrap();
        let error = settings(&[
            ("SLIPWAY_PULL_CREDENTIALS_FILE", &path),
            ("SLIPWAY_SECRET_KEY", KEY),
        ])
        .unwrap_err();
        assert!(error.to_string().contains("must be sealed"), "{error}");
        assert!(!error.to_string().contains("plain-password"), "{error}");
    }
}
