//! Build settings from the environment (registry, engine, base images,
//! limits), validated at start. Only `from_env` reads the environment;
//! `from_lookup` takes any source so that tests need not touch the process
//! environment.

use crate::plan::version::Version;
use crate::plan::{BaseImages, RuntimeVersions, VersionedImage};
use crate::registries::PullSettings;
use secrecy::SecretString;
use slipway_shared::build_settings::AppBuildSettings;
use slipway_shared::config::ConfigError;
use std::path::PathBuf;
use std::time::Duration;

/// Where `scripts/build-tools.sh` keeps its state and the containers.conf.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/slipway";

/// The program that builds images. Only the argv differs between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Buildah,
    Podman,
    /// `docker build` against a Docker engine; not available on the
    /// project's machines, so its argv is untested here.
    Docker,
}

impl Engine {
    pub fn program(self) -> &'static str {
        match self {
            Engine::Buildah => "buildah",
            Engine::Podman => "podman",
            Engine::Docker => "docker",
        }
    }
}

#[derive(Debug, Clone)]
pub struct RegistrySettings {
    /// `host:port`, e.g. `127.0.0.1:5000`; images are pushed to `ADDRESS/slipway/...`.
    pub address: String,
    /// Off by default for a loopback registry (plain HTTP), on for any other.
    pub tls_verify: bool,
    pub username: Option<String>,
    pub password: Option<SecretString>,
}

#[derive(Debug, Clone)]
pub struct BuildSettings {
    pub registry: RegistrySettings,
    pub engine: Engine,
    /// Memory limit of the build's containers, in the engine's format (`2g`, `512m`).
    pub memory_limit: Option<String>,
    /// Time limit of one build (the push is not counted).
    pub time_limit: Duration,
    pub base_images: BaseImages,
    /// The runtime versions the base images offer, and the Go module proxy.
    pub runtimes: RuntimeVersions,
    /// Where base images are pulled from and when (the build's own
    /// registries.conf, mirrors, pull credentials, refresh policy).
    pub pull: PullSettings,
    /// The containers.conf the engine is pointed to (`CONTAINERS_CONF`).
    pub containers_conf: Option<PathBuf>,
    /// Root of per-build work dirs (generated Containerfiles, digest files).
    pub work_dir: PathBuf,
    /// Images kept per app in local storage (the newest ones), for rollbacks.
    pub images_kept: usize,
}

impl BuildSettings {
    /// Reads `SLIPWAY_*` variables:
    ///
    /// | variable | default |
    /// |---|---|
    /// | `SLIPWAY_REGISTRY` | `127.0.0.1:5000` |
    /// | `SLIPWAY_REGISTRY_TLS_VERIFY` | `false` for loopback, else `true` |
    /// | `SLIPWAY_REGISTRY_USERNAME`, `SLIPWAY_REGISTRY_PASSWORD` | none (both or neither) |
    /// | `SLIPWAY_BUILD_ENGINE` | `buildah` (`podman`, `docker`) |
    /// | `SLIPWAY_BUILD_MEMORY` | `4g` (`none` for no limit) |
    /// | `SLIPWAY_BUILD_TIMEOUT` | `45m` |
    /// | `SLIPWAY_BASE_IMAGE_{DEBIAN,NODE,PYTHON,GO,RUST,STATIC}` | `localhost/slipway/<stack>:bookworm` |
    /// | `SLIPWAY_PYTHON_IMAGES` | `3.11.2=localhost/slipway/python:bookworm,3.13.5=localhost/slipway/python:trixie` |
    /// | `SLIPWAY_NODE_VERSION`, `SLIPWAY_GO_VERSION` | `18.20.4`, `1.19.8` (of the Node and Go base images) |
    /// | `SLIPWAY_GOPROXY` | `https://proxy.golang.org,direct` |
    /// | `SLIPWAY_REGISTRY_SEARCH`, `SLIPWAY_REGISTRY_MIRRORS`, `SLIPWAY_BASE_IMAGE_PULL`, `SLIPWAY_PULL_CREDENTIALS_FILE` | see `registries::PullSettings` |
    /// | `SLIPWAY_CONTAINERS_CONF` | `CONTAINERS_CONF`, else `/var/lib/slipway/containers.conf` if it exists |
    /// | `SLIPWAY_BUILD_DIR` | `/var/lib/slipway/builds` |
    /// | `SLIPWAY_IMAGES_KEPT` | `5` |
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let invalid = |name: &'static str, value: &str, reason: &str| ConfigError::Invalid {
            name,
            value: value.to_string(),
            reason: reason.to_string(),
        };

        let address = get("SLIPWAY_REGISTRY").unwrap_or_else(|| "127.0.0.1:5000".into());
        if address.contains("://") || address.contains('/') || address.is_empty() {
            return Err(invalid(
                "SLIPWAY_REGISTRY",
                &address,
                "must be host[:port], without a scheme or path",
            ));
        }
        let loopback = ["127.", "localhost:", "[::1]:"]
            .iter()
            .any(|p| address.starts_with(p))
            || address == "localhost";
        let tls_verify = match get("SLIPWAY_REGISTRY_TLS_VERIFY") {
            None => !loopback,
            Some(v) => parse_bool(&v).ok_or_else(|| {
                invalid("SLIPWAY_REGISTRY_TLS_VERIFY", &v, "must be true or false")
            })?,
        };
        let username = get("SLIPWAY_REGISTRY_USERNAME");
        let password = get("SLIPWAY_REGISTRY_PASSWORD").map(SecretString::from);
        if username.is_some() != password.is_some() {
            return Err(ConfigError::Missing {
                name: if username.is_some() {
                    "SLIPWAY_REGISTRY_PASSWORD"
                } else {
                    "SLIPWAY_REGISTRY_USERNAME"
                },
            });
        }

        let engine = match get("SLIPWAY_BUILD_ENGINE").as_deref() {
            None | Some("buildah") => Engine::Buildah,
            Some("podman") => Engine::Podman,
            Some("docker") => Engine::Docker,
            Some(other) => {
                return Err(invalid(
                    "SLIPWAY_BUILD_ENGINE",
                    other,
                    "must be buildah, podman or docker",
                ))
            }
        };
        let memory_limit = match get("SLIPWAY_BUILD_MEMORY") {
            None => Some("4g".to_string()),
            Some(v) if v == "none" => None,
            Some(v) if valid_memory(&v) => Some(v.to_lowercase()),
            Some(v) => {
                return Err(invalid(
                    "SLIPWAY_BUILD_MEMORY",
                    &v,
                    "must be a size like 512m or 4g, or none",
                ))
            }
        };
        let time_limit = match get("SLIPWAY_BUILD_TIMEOUT") {
            None => Duration::from_secs(45 * 60),
            Some(v) => match humantime::parse_duration(v.trim()) {
                Ok(d) if !d.is_zero() => d,
                Ok(_) => return Err(invalid("SLIPWAY_BUILD_TIMEOUT", &v, "must not be zero")),
                Err(e) => return Err(invalid("SLIPWAY_BUILD_TIMEOUT", &v, &e.to_string())),
            },
        };

        let defaults = BaseImages::default();
        let image = |name: &str, default: String| get(name).unwrap_or(default);
        let base_images = BaseImages {
            debian: image("SLIPWAY_BASE_IMAGE_DEBIAN", defaults.debian),
            node: image("SLIPWAY_BASE_IMAGE_NODE", defaults.node),
            python: image("SLIPWAY_BASE_IMAGE_PYTHON", defaults.python),
            go: image("SLIPWAY_BASE_IMAGE_GO", defaults.go),
            rust: image("SLIPWAY_BASE_IMAGE_RUST", defaults.rust),
            static_site: image("SLIPWAY_BASE_IMAGE_STATIC", defaults.static_site),
        };

        let runtimes = runtime_versions(&get)?;
        let pull = PullSettings::from_lookup(get)?;

        let state_conf = PathBuf::from(DEFAULT_STATE_DIR).join("containers.conf");
        let containers_conf = get("SLIPWAY_CONTAINERS_CONF")
            .or_else(|| get("CONTAINERS_CONF"))
            .map(PathBuf::from)
            .or_else(|| state_conf.is_file().then_some(state_conf));
        if let Some(path) = &containers_conf {
            if !path.is_file() {
                return Err(invalid(
                    "SLIPWAY_CONTAINERS_CONF",
                    &path.display().to_string(),
                    "no such file (scripts/build-tools.sh writes one)",
                ));
            }
        }
        let work_dir = get("SLIPWAY_BUILD_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR).join("builds"));
        let images_kept =
            slipway_shared::config::images_kept(get("SLIPWAY_IMAGES_KEPT").as_deref())?;

        Ok(BuildSettings {
            registry: RegistrySettings {
                address,
                tls_verify,
                username,
                password,
            },
            engine,
            memory_limit,
            time_limit,
            base_images,
            runtimes,
            pull,
            containers_conf,
            work_dir,
            images_kept,
        })
    }
}

impl BuildSettings {
    /// What `plan::detect` needs for one app: its Dockerfile path (if it
    /// names one), the names of its build variables, and these base images.
    pub fn plan_settings(&self, app: &AppBuildSettings) -> crate::plan::PlanSettings {
        crate::plan::PlanSettings {
            dockerfile: app.dockerfile.clone(),
            base_images: self.base_images.clone(),
            build_args: app.arg_names(),
            commands: app.commands.clone(),
            runtimes: self.runtimes.clone(),
        }
    }
}

/// `SLIPWAY_PYTHON_IMAGES` (`VERSION=IMAGE,...`), `SLIPWAY_NODE_VERSION`,
/// `SLIPWAY_GO_VERSION`, `SLIPWAY_GOPROXY`; `scripts/build-tools.sh` writes
/// the first three from what its images carry.
fn runtime_versions(get: &dyn Fn(&str) -> Option<String>) -> Result<RuntimeVersions, ConfigError> {
    let defaults = RuntimeVersions::default();
    let invalid = |name: &'static str, value: &str, reason: &str| ConfigError::Invalid {
        name,
        value: value.to_string(),
        reason: reason.to_string(),
    };
    let version = |name: &'static str, default: Version| match get(name) {
        None => Ok(default),
        Some(v) => {
            Version::parse(&v).ok_or_else(|| invalid(name, &v, "must be a version like 1.22.3"))
        }
    };
    let python = match get("SLIPWAY_PYTHON_IMAGES") {
        None => defaults.python,
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|entry| {
                let (v, image) = entry.split_once('=').unwrap_or((entry, ""));
                match (Version::parse(v), image.trim()) {
                    (Some(version), image) if !image.is_empty() => Ok(VersionedImage {
                        version,
                        image: image.to_string(),
                    }),
                    _ => Err(invalid(
                        "SLIPWAY_PYTHON_IMAGES",
                        &list,
                        "must be VERSION=IMAGE entries joined by commas",
                    )),
                }
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    Ok(RuntimeVersions {
        python,
        node: version("SLIPWAY_NODE_VERSION", defaults.node)?,
        go: version("SLIPWAY_GO_VERSION", defaults.go)?,
        goproxy: get("SLIPWAY_GOPROXY").unwrap_or(defaults.goproxy),
    })
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// `<digits>[b|k|m|g]`, as buildah, podman and docker take it.
fn valid_memory(value: &str) -> bool {
    let value = value.trim().to_ascii_lowercase();
    let digits = value.trim_end_matches(['b', 'k', 'm', 'g']);
    value.len() - digits.len() <= 1
        && !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit())
        && digits.parse::<u64>().is_ok_and(|n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Settings from `vars`, with a containers.conf that exists unless `vars` names one.
    fn settings(vars: &[(&str, &str)]) -> Result<BuildSettings, ConfigError> {
        let conf = tempfile::NamedTempFile::new().expect("temp file");
        let mut all: HashMap<String, String> = HashMap::from([(
            "SLIPWAY_CONTAINERS_CONF".to_string(),
            conf.path().display().to_string(),
        )]);
        all.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        BuildSettings::from_lookup(|name| all.get(name).cloned())
    }

    #[test]
    fn defaults_build_with_buildah_against_the_loopback_registry() {
        let s = settings(&[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.registry.address, "127.0.0.1:5000");
        assert!(!s.registry.tls_verify);
        assert_eq!(s.engine, Engine::Buildah);
        assert_eq!(s.memory_limit.as_deref(), Some("4g"));
        assert_eq!(s.time_limit, Duration::from_secs(2700));
        assert_eq!(s.images_kept, 5);
        assert_eq!(s.base_images, BaseImages::default());
        assert_eq!(s.work_dir, PathBuf::from("/var/lib/slipway/builds"));
    }

    #[test]
    fn a_remote_registry_verifies_tls_and_takes_credentials() {
        let s = settings(&[
            ("SLIPWAY_REGISTRY", "registry.example.com"),
            ("SLIPWAY_REGISTRY_USERNAME", "bot"),
            ("SLIPWAY_REGISTRY_PASSWORD", "s3cret"),
            ("SLIPWAY_BUILD_ENGINE", "podman"),
            ("SLIPWAY_BUILD_MEMORY", "none"),
            ("SLIPWAY_BASE_IMAGE_NODE", "registry.example.com/node:20"),
        ])
        .unwrap();
        assert!(s.registry.tls_verify);
        assert_eq!(s.registry.username.as_deref(), Some("bot"));
        assert!(
            !format!("{s:?}").contains("s3cret"),
            "the password never prints"
        );
        assert_eq!(s.engine, Engine::Podman);
        assert_eq!(s.memory_limit, None);
        assert_eq!(s.base_images.node, "registry.example.com/node:20");
    }

    #[test]
    fn runtime_versions_and_the_go_proxy_come_from_the_environment() {
        let s = settings(&[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.runtimes, RuntimeVersions::default());
        let s = settings(&[
            (
                "SLIPWAY_PYTHON_IMAGES",
                "3.12.8=registry.example.com/py:3.12, 3.13.1=registry.example.com/py:3.13",
            ),
            ("SLIPWAY_NODE_VERSION", "20.11.1"),
            ("SLIPWAY_GO_VERSION", "1.23.4"),
            ("SLIPWAY_GOPROXY", "http://127.0.0.1:3000"),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let pythons: Vec<(String, &str)> = s
            .runtimes
            .python
            .iter()
            .map(|p| (p.version.to_string(), p.image.as_str()))
            .collect();
        assert_eq!(
            pythons,
            vec![
                ("3.12.8".to_string(), "registry.example.com/py:3.12"),
                ("3.13.1".to_string(), "registry.example.com/py:3.13"),
            ]
        );
        assert_eq!(s.runtimes.node, Version::new(20, 11, 1));
        assert_eq!(s.runtimes.go, Version::new(1, 23, 4));
        assert_eq!(s.runtimes.goproxy, "http://127.0.0.1:3000");
    }

    #[test]
    fn invalid_values_name_the_variable() {
        for (name, value) in [
            ("SLIPWAY_REGISTRY", "https://r.example"),
            ("SLIPWAY_REGISTRY_TLS_VERIFY", "maybe"),
            ("SLIPWAY_BUILD_ENGINE", "kaniko"),
            ("SLIPWAY_BUILD_MEMORY", "lots"),
            ("SLIPWAY_BUILD_MEMORY", "2gb"),
            ("SLIPWAY_BUILD_TIMEOUT", "soon"),
            ("SLIPWAY_PYTHON_IMAGES", "3.11.2"),
            ("SLIPWAY_PYTHON_IMAGES", "three=localhost/py"),
            ("SLIPWAY_NODE_VERSION", "lts"),
            ("SLIPWAY_GO_VERSION", "1.x"),
            ("SLIPWAY_IMAGES_KEPT", "0"),
            ("SLIPWAY_CONTAINERS_CONF", "/nonexistent/containers.conf"),
        ] {
            let error = settings(&[(name, value)])
                .err()
                .unwrap_or_else(|| panic!("{name}={value} accepted"));
            assert!(error.to_string().contains(name), "{error}");
        }
        let error = settings(&[("SLIPWAY_REGISTRY_USERNAME", "bot")]).unwrap_err();
        assert!(
            error.to_string().contains("SLIPWAY_REGISTRY_PASSWORD"),
            "{error}"
        );
    }
}
