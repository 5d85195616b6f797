//! Typed settings read from `SLIPWAY_*` environment variables, validated at
//! start. This is the only module that reads the environment.

mod accounts;
mod web;

pub use accounts::{parse_networks, AccountSettings, SignInLimits, SmtpSettings};
use secrecy::SecretString;
use std::net::SocketAddr;
use std::time::Duration;
pub use web::{WebSettings, DEFAULT_WEB_DIR};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} is required")]
    Missing { name: &'static str },
    #[error("{name}={value:?} is invalid: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
}

/// `SLIPWAY_IMAGES_KEPT` (`value`, default 5, at least 1): images per app
/// kept for rollbacks, in the build worker's storage and on each ssh target.
pub fn images_kept(value: Option<&str>) -> Result<usize, ConfigError> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(5);
    };
    value
        .parse::<usize>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| ConfigError::Invalid {
            name: "SLIPWAY_IMAGES_KEPT",
            value: value.to_owned(),
            reason: "must be a whole number of at least 1".into(),
        })
}

/// Reads one variable; the single place `std::env::var` is called.
fn raw(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn parsed<T, E: std::fmt::Display>(
    name: &'static str,
    default: T,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, ConfigError> {
    match raw(name) {
        None => Ok(default),
        Some(value) => parse(value.trim()).map_err(|e| ConfigError::Invalid {
            name,
            reason: e.to_string(),
            value,
        }),
    }
}

fn duration(name: &'static str, default: Duration) -> Result<Duration, ConfigError> {
    parsed(name, default, humantime::parse_duration)
}

/// Settings every process shares: where the database and broker are and how
/// the queue topology is named.
#[derive(Debug, Clone)]
pub struct CommonSettings {
    pub database_url: SecretString,
    pub amqp_url: SecretString,
    /// Prefix for every exchange and queue name; lets tests and benchmarks
    /// share a broker without seeing each other's messages.
    pub queue_prefix: String,
    pub log_retention: Duration,
    /// `json` for production, anything else for human-readable lines.
    pub log_json: bool,
}

impl CommonSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            database_url: raw("SLIPWAY_DATABASE_URL")
                .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/slipway".into())
                .into(),
            amqp_url: raw("SLIPWAY_AMQP_URL")
                .unwrap_or_else(|| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
                .into(),
            queue_prefix: raw("SLIPWAY_QUEUE_PREFIX").unwrap_or_default(),
            log_retention: duration("SLIPWAY_LOG_RETENTION", Duration::from_secs(30 * 24 * 3600))?,
            log_json: raw("SLIPWAY_LOG_FORMAT").is_some_and(|f| f == "json"),
        })
    }
}

/// Settings of one worker process (one stage each).
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub common: CommonSettings,
    pub metrics_addr: SocketAddr,
    /// Jobs this process runs at once.
    pub concurrency: u16,
    /// Deliveries the broker may send ahead of their claim. A delivery is
    /// acked once its claim commits, so this bounds only deliveries waiting
    /// to be claimed, not running jobs; it defaults to `concurrency`.
    pub prefetch: u16,
    pub worker_id: String,
    pub heartbeat_interval: Duration,
    /// A running job whose heartbeat is older than this is taken back by the sweeper.
    pub lease_timeout: Duration,
    pub sweep_interval: Duration,
    pub stage_timeout: Duration,
    /// Attempts a job of this stage gets before it is dead-lettered.
    pub max_attempts: i32,
    /// Delay tiers for retries; each is one delay queue with a fixed TTL.
    pub retry_tiers: Vec<Duration>,
    pub shutdown_grace: Duration,
    /// The program the probe job runs as a child process.
    pub probe_command: String,
}

impl WorkerSettings {
    /// `default_stage_timeout` differs by stage: a build may run for hours.
    pub fn from_env(default_stage_timeout: Duration) -> Result<Self, ConfigError> {
        let concurrency: u16 = parsed("SLIPWAY_CONCURRENCY", 4, str::parse)?;
        if concurrency == 0 {
            return Err(ConfigError::Invalid {
                name: "SLIPWAY_CONCURRENCY",
                value: "0".into(),
                reason: "must be at least 1".into(),
            });
        }
        let retry_tiers = parsed(
            "SLIPWAY_RETRY_TIERS",
            vec![
                Duration::from_secs(1),
                Duration::from_secs(5),
                Duration::from_secs(30),
                Duration::from_secs(120),
                Duration::from_secs(600),
            ],
            |s| {
                s.split(',')
                    .map(|part| humantime::parse_duration(part.trim()))
                    .collect::<Result<Vec<_>, _>>()
            },
        )?;
        if retry_tiers.is_empty() || retry_tiers.iter().any(|t| t.is_zero()) {
            return Err(ConfigError::Invalid {
                name: "SLIPWAY_RETRY_TIERS",
                value: format!("{retry_tiers:?}"),
                reason: "needs at least one non-zero delay".into(),
            });
        }
        let heartbeat_interval = duration("SLIPWAY_HEARTBEAT_INTERVAL", Duration::from_secs(2))?;
        let lease_timeout = duration("SLIPWAY_LEASE_TIMEOUT", Duration::from_secs(12))?;
        if lease_timeout <= heartbeat_interval * 2 {
            return Err(ConfigError::Invalid {
                name: "SLIPWAY_LEASE_TIMEOUT",
                value: format!("{lease_timeout:?}"),
                reason: "must exceed two heartbeat intervals".into(),
            });
        }
        Ok(Self {
            common: CommonSettings::from_env()?,
            metrics_addr: parsed(
                "SLIPWAY_METRICS_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 9100)),
                str::parse,
            )?,
            concurrency,
            prefetch: parsed("SLIPWAY_PREFETCH", concurrency, str::parse)?,
            worker_id: raw("SLIPWAY_WORKER_ID").unwrap_or_else(default_worker_id),
            heartbeat_interval,
            lease_timeout,
            sweep_interval: duration("SLIPWAY_SWEEP_INTERVAL", Duration::from_secs(3))?,
            stage_timeout: duration("SLIPWAY_STAGE_TIMEOUT", default_stage_timeout)?,
            max_attempts: parsed("SLIPWAY_MAX_ATTEMPTS", 5, str::parse)?,
            retry_tiers,
            shutdown_grace: duration("SLIPWAY_SHUTDOWN_GRACE", Duration::from_secs(30))?,
            probe_command: raw("SLIPWAY_PROBE_COMMAND").unwrap_or_else(|| "sleep".into()),
        })
    }
}

/// Settings of the API process.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    pub common: CommonSettings,
    pub api_addr: SocketAddr,
    pub admin_token: SecretString,
    /// 32-byte AEAD key for secrets at rest, given as 64 hex characters.
    pub secret_key: SecretString,
    /// Which addresses the URLs users give may point at.
    pub outbound: crate::egress::OutboundPolicy,
    /// People, sessions, sign-in limits and the audit log.
    pub accounts: AccountSettings,
    /// The dashboard's built assets, served at `/`.
    pub web: WebSettings,
}

impl ApiSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        let admin_token = raw("SLIPWAY_ADMIN_TOKEN").ok_or(ConfigError::Missing {
            name: "SLIPWAY_ADMIN_TOKEN",
        })?;
        if admin_token.len() < 32 {
            return Err(ConfigError::Invalid {
                name: "SLIPWAY_ADMIN_TOKEN",
                value: "<hidden>".into(),
                reason: "must be at least 32 characters".into(),
            });
        }
        let secret_key = raw("SLIPWAY_SECRET_KEY").ok_or(ConfigError::Missing {
            name: "SLIPWAY_SECRET_KEY",
        })?;
        if hex::decode(secret_key.trim()).map(|k| k.len()) != Ok(32) {
            return Err(ConfigError::Invalid {
                name: "SLIPWAY_SECRET_KEY",
                value: "<hidden>".into(),
                reason: "must be 64 hex characters (32 bytes)".into(),
            });
        }
        Ok(Self {
            common: CommonSettings::from_env()?,
            api_addr: parsed(
                "SLIPWAY_API_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 8080)),
                str::parse,
            )?,
            admin_token: admin_token.into(),
            secret_key: secret_key.into(),
            outbound: outbound_policy()?,
            accounts: AccountSettings::from_env()?,
            web: WebSettings::from_env(),
        })
    }
}

/// Where the cloud drivers connect for an account that names no endpoint:
/// `SLIPWAY_HETZNER_ENDPOINT` (Hetzner Cloud's public API) and
/// `SLIPWAY_OPENSTACK_AUTH_URL` (OVHcloud's Keystone). Tests point both at
/// loopback so that nothing they do reaches a real provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudEndpoints {
    pub hetzner: String,
    pub openstack: String,
}

pub fn cloud_endpoints() -> CloudEndpoints {
    CloudEndpoints {
        hetzner: raw("SLIPWAY_HETZNER_ENDPOINT")
            .unwrap_or_else(|| "https://api.hetzner.cloud/v1".into()),
        openstack: raw("SLIPWAY_OPENSTACK_AUTH_URL")
            .unwrap_or_else(|| "https://auth.cloud.ovh.net/v3".into()),
    }
}

/// `SLIPWAY_SECRET_KEY` for a worker, which needs it only to open what the
/// API sealed (git credentials, secret env vars): `None` when unset.
pub fn worker_secret_box() -> Result<Option<crate::secrets::SecretBox>, ConfigError> {
    let Some(key) = raw("SLIPWAY_SECRET_KEY").filter(|k| !k.trim().is_empty()) else {
        return Ok(None);
    };
    crate::secrets::SecretBox::from_hex(&key.trim().to_owned().into())
        .map(Some)
        .map_err(|_| ConfigError::Invalid {
            name: "SLIPWAY_SECRET_KEY",
            value: "<hidden>".into(),
            reason: "must be 64 hex characters (32 bytes)".into(),
        })
}

/// The outbound address policy (`crate::egress`): the classes
/// `SLIPWAY_OUTBOUND_ALLOW` allows, and the platform's own services as this
/// host's settings name them (every process reads them all, with their
/// defaults, so each refuses the same set whichever it uses itself).
pub fn outbound_policy() -> Result<crate::egress::OutboundPolicy, ConfigError> {
    use crate::egress::{OutboundPolicy, PlatformService};
    let allowed = parsed(
        "SLIPWAY_OUTBOUND_ALLOW",
        Default::default(),
        OutboundPolicy::parse_allow,
    )?;
    let services: [(&'static str, &'static str, &str); 7] = [
        ("the API", "SLIPWAY_API_ADDR", "127.0.0.1:8080"),
        (
            "the database",
            "SLIPWAY_DATABASE_URL",
            "postgres://127.0.0.1:5432",
        ),
        (
            "the add-on database server",
            "SLIPWAY_ADDON_POSTGRES_URL",
            "postgres://127.0.0.1:5432",
        ),
        (
            "the message broker",
            "SLIPWAY_AMQP_URL",
            "amqp://127.0.0.1:5672",
        ),
        ("the image registry", "SLIPWAY_REGISTRY", "127.0.0.1:5000"),
        (
            "Caddy's admin API",
            "SLIPWAY_CADDY_ADMIN",
            "http://127.0.0.1:2019",
        ),
        (
            "a worker's metrics",
            "SLIPWAY_METRICS_ADDR",
            "127.0.0.1:9100",
        ),
    ];
    let platform = services
        .into_iter()
        .filter_map(|(name, variable, default)| {
            let value = raw(variable).unwrap_or_else(|| default.to_owned());
            crate::egress::setting_endpoint(&value)
                .map(|endpoint| PlatformService { name, endpoint })
        })
        .collect();
    Ok(OutboundPolicy::new(allowed, platform))
}

/// Limits on uploaded source archives: the API checks them at upload, the
/// build worker again when it unpacks.
#[derive(Debug, Clone, Copy)]
pub struct ArchiveSettings {
    /// `SLIPWAY_MAX_ARCHIVE_SIZE`: the upload itself (default 100 MiB).
    pub max_archive_bytes: u64,
    /// `SLIPWAY_MAX_UNPACKED_SIZE` (default 2 GiB) and
    /// `SLIPWAY_MAX_ARCHIVE_ENTRIES` (default 100,000).
    pub unpack: crate::archive::Limits,
}

impl Default for ArchiveSettings {
    fn default() -> Self {
        ArchiveSettings {
            max_archive_bytes: 100 * 1024 * 1024,
            unpack: crate::archive::Limits::default(),
        }
    }
}

impl ArchiveSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        let default = ArchiveSettings::default();
        Ok(ArchiveSettings {
            max_archive_bytes: parsed(
                "SLIPWAY_MAX_ARCHIVE_SIZE",
                default.max_archive_bytes,
                byte_size,
            )?,
            unpack: crate::archive::Limits {
                max_unpacked_bytes: parsed(
                    "SLIPWAY_MAX_UNPACKED_SIZE",
                    default.unpack.max_unpacked_bytes,
                    byte_size,
                )?,
                max_entries: parsed(
                    "SLIPWAY_MAX_ARCHIVE_ENTRIES",
                    default.unpack.max_entries,
                    str::parse,
                )?,
            },
        })
    }
}

/// `1048576`, `512KiB`, `100MiB`, `2GiB`.
fn byte_size(value: &str) -> Result<u64, String> {
    let digits = value.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let scale: u64 = match &value[digits.len()..] {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        unit => return Err(format!("unknown unit `{unit}` (use B, KiB, MiB or GiB)")),
    };
    digits
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|n| *n > 0)
        .ok_or_else(|| "must be a positive size like 100MiB".to_owned())
}

fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".into());
    format!("{host}-{}", std::process::id())
}

/// How the provision worker buys and sets up servers.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// How long a new server may take to run at the provider
    /// (`SLIPWAY_SERVER_RUNNING_TIMEOUT`, 10 minutes).
    pub running_timeout: Duration,
    /// How long a running server may take to answer SSH
    /// (`SLIPWAY_SERVER_SSH_TIMEOUT`, 5 minutes).
    pub ssh_timeout: Duration,
    /// How long a provider may take to delete one (`SLIPWAY_SERVER_DELETE_TIMEOUT`).
    pub delete_timeout: Duration,
    /// The port new servers answer SSH on (`SLIPWAY_SERVER_SSH_PORT`, 22).
    pub ssh_port: u16,
    /// An apt source line new servers install from
    /// (`SLIPWAY_SERVER_APT_SOURCE`); none: their own.
    pub apt_source: Option<String>,
    /// How often a provider's asynchronous work is polled
    /// (`SLIPWAY_CLOUD_POLL_INTERVAL`, 2 s).
    pub poll_interval: Duration,
    /// How long a provider may take to save a server image
    /// (`SLIPWAY_SERVER_IMAGE_TIMEOUT`, 20 minutes).
    pub image_timeout: Duration,
    /// The platform's registry (`SLIPWAY_REGISTRY`): a server about to be
    /// saved as an image pulls the project's base images from it.
    pub registry: Option<String>,
    pub endpoints: CloudEndpoints,
}

pub fn server_settings() -> Result<ServerSettings, ConfigError> {
    Ok(ServerSettings {
        running_timeout: duration("SLIPWAY_SERVER_RUNNING_TIMEOUT", Duration::from_secs(600))?,
        ssh_timeout: duration("SLIPWAY_SERVER_SSH_TIMEOUT", Duration::from_secs(300))?,
        delete_timeout: duration("SLIPWAY_SERVER_DELETE_TIMEOUT", Duration::from_secs(300))?,
        ssh_port: parsed("SLIPWAY_SERVER_SSH_PORT", 22, str::parse::<u16>)?,
        apt_source: raw("SLIPWAY_SERVER_APT_SOURCE"),
        poll_interval: duration("SLIPWAY_CLOUD_POLL_INTERVAL", Duration::from_secs(2))?,
        image_timeout: duration("SLIPWAY_SERVER_IMAGE_TIMEOUT", Duration::from_secs(1200))?,
        registry: raw("SLIPWAY_REGISTRY"),
        endpoints: cloud_endpoints(),
    })
}
