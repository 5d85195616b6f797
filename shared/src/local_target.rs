//! The `local` target: the container engine and Caddy on the Slipway host.
//! Its settings are read by the provision worker (which checks them) and the
//! deploy worker (which uses them).

use crate::addons::AddonServer;
use crate::config::ConfigError;
use crate::tls::TlsIssuer;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct LocalTarget {
    /// Caddy's admin API, e.g. `http://127.0.0.1:2019`.
    pub caddy_admin: String,
    /// The Caddy server (under `apps.http.servers`) that routes apps.
    pub caddy_server: String,
    /// Where that server listens, e.g. `127.0.0.1:8088`.
    pub caddy_http_addr: String,
    /// Where the same apps answer over HTTPS with certificates from Caddy's
    /// internal CA, e.g. `127.0.0.1:8443`; `None` (`off`) for no HTTPS.
    pub caddy_https_addr: Option<String>,
    /// Where HTTPS certificates come from: Caddy's internal CA (local mode)
    /// or an ACME CA (`SLIPWAY_TLS_ISSUER=acme`, for real names).
    pub tls_issuer: TlsIssuer,
    /// Apps answer at `APP.PROJECT.BASE_DOMAIN`.
    pub base_domain: String,
    /// The registry images are pulled from (`host:port`), and whether to
    /// verify its TLS (off for a loopback registry).
    pub registry: String,
    pub registry_tls_verify: bool,
    /// `CONTAINERS_CONF` for podman.
    pub containers_conf: Option<PathBuf>,
    /// The Postgres server of database add-ons (`SLIPWAY_ADDON_POSTGRES_URL`).
    pub addon_postgres: AddonServer,
    /// How often the deploy worker checks the health of serving releases
    /// (the app's `status.health`); `None` (`off`) for never.
    pub health_monitor_interval: Option<Duration>,
    /// How often the deploy worker collects the apps' runtime logs; `None`
    /// (`off`) for never.
    pub runtime_log_interval: Option<Duration>,
    /// Images of an app kept on an ssh target (`SLIPWAY_IMAGES_KEPT`, as
    /// the build worker keeps in local storage): older ones are removed
    /// there after a deploy; a rollback to one pulls it again.
    pub images_kept: usize,
}

impl LocalTarget {
    /// `SLIPWAY_CADDY_ADMIN` (`http://127.0.0.1:2019`), `SLIPWAY_CADDY_SERVER`
    /// (`slipway`), `SLIPWAY_CADDY_HTTP_ADDR` (`127.0.0.1:8088`),
    /// `SLIPWAY_CADDY_HTTPS_ADDR` (`127.0.0.1:8443`, `off` for none),
    /// `SLIPWAY_BASE_DOMAIN` (`localhost`), `SLIPWAY_REGISTRY`
    /// (`127.0.0.1:5000`), `SLIPWAY_REGISTRY_TLS_VERIFY` (false on loopback),
    /// `SLIPWAY_CONTAINERS_CONF` or `CONTAINERS_CONF`,
    /// `SLIPWAY_ADDON_POSTGRES_URL` (the platform's own Postgres),
    /// `SLIPWAY_HEALTH_MONITOR_INTERVAL` (`15s`, `off` for never),
    /// `SLIPWAY_RUNTIME_LOG_INTERVAL` (`1s`, `off` for never),
    /// `SLIPWAY_IMAGES_KEPT` (`5`),
    /// `SLIPWAY_TLS_ISSUER` (`internal`, or `acme` with `SLIPWAY_ACME_CA`
    /// (Let's Encrypt), `SLIPWAY_ACME_EMAIL`, `SLIPWAY_ACME_CA_ROOT`).
    pub fn from_env() -> Result<LocalTarget, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<LocalTarget, ConfigError> {
        let get = |name: &str, default: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        let registry = get("SLIPWAY_REGISTRY", "127.0.0.1:5000");
        let loopback = registry.starts_with("127.") || registry.starts_with("localhost");
        let registry_tls_verify = match lookup("SLIPWAY_REGISTRY_TLS_VERIFY")
            .as_deref()
            .map(str::trim)
        {
            None | Some("") => !loopback,
            Some("true" | "1" | "yes") => true,
            Some("false" | "0" | "no") => false,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "SLIPWAY_REGISTRY_TLS_VERIFY",
                    value: other.to_owned(),
                    reason: "must be true or false".into(),
                })
            }
        };
        let interval = |name: &'static str, default: &str| match get(name, default).as_str() {
            "off" | "0" => Ok(None),
            text => humantime::parse_duration(text)
                .ok()
                .filter(|d| !d.is_zero())
                .map(Some)
                .ok_or_else(|| ConfigError::Invalid {
                    name,
                    value: text.to_owned(),
                    reason: "a duration such as 15s, or off".into(),
                }),
        };
        let health_monitor_interval = interval("SLIPWAY_HEALTH_MONITOR_INTERVAL", "15s")?;
        let runtime_log_interval = interval("SLIPWAY_RUNTIME_LOG_INTERVAL", "1s")?;
        let caddy_admin = get("SLIPWAY_CADDY_ADMIN", "http://127.0.0.1:2019");
        let caddy_admin = if caddy_admin.contains("://") {
            caddy_admin
        } else {
            format!("http://{caddy_admin}")
        };
        let opt = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let issuer = opt("SLIPWAY_TLS_ISSUER");
        let tls_issuer = TlsIssuer::parse(
            issuer.as_deref(),
            TlsIssuer::Internal,
            opt("SLIPWAY_ACME_CA").as_deref(),
            opt("SLIPWAY_ACME_EMAIL").as_deref(),
            opt("SLIPWAY_ACME_CA_ROOT").as_deref(),
        )
        .map_err(|e| ConfigError::Invalid {
            name: "SLIPWAY_TLS_ISSUER",
            value: issuer.clone().unwrap_or_default(),
            reason: e.to_string(),
        })?;
        let images_kept = crate::config::images_kept(lookup("SLIPWAY_IMAGES_KEPT").as_deref())?;
        Ok(LocalTarget {
            images_kept,
            tls_issuer,
            caddy_admin: caddy_admin.trim_end_matches('/').to_owned(),
            caddy_server: get("SLIPWAY_CADDY_SERVER", "slipway"),
            caddy_http_addr: get("SLIPWAY_CADDY_HTTP_ADDR", "127.0.0.1:8088"),
            caddy_https_addr: Some(get("SLIPWAY_CADDY_HTTPS_ADDR", "127.0.0.1:8443"))
                .filter(|addr| !matches!(addr.as_str(), "off" | "none")),
            base_domain: get("SLIPWAY_BASE_DOMAIN", "localhost"),
            registry,
            registry_tls_verify,
            containers_conf: lookup("SLIPWAY_CONTAINERS_CONF")
                .or_else(|| lookup("CONTAINERS_CONF"))
                .filter(|v| !v.trim().is_empty())
                .map(PathBuf::from),
            addon_postgres: AddonServer::parse(&get(
                "SLIPWAY_ADDON_POSTGRES_URL",
                AddonServer::DEFAULT_URL,
            ))?,
            health_monitor_interval,
            runtime_log_interval,
        })
    }

    /// The URL an app answers at through this target's Caddy.
    pub fn app_url(&self, host: &str) -> String {
        let port = self
            .caddy_http_addr
            .rsplit_once(':')
            .map_or("80", |(_, p)| p);
        if port == "80" {
            format!("http://{host}/")
        } else {
            format!("http://{host}:{port}/")
        }
    }

    /// The HTTPS URL of an app, when this target serves HTTPS.
    pub fn app_https_url(&self, host: &str) -> Option<String> {
        let addr = self.caddy_https_addr.as_deref()?;
        let port = addr.rsplit_once(':').map_or("443", |(_, p)| p);
        Some(if port == "443" {
            format!("https://{host}/")
        } else {
            format!("https://{host}:{port}/")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::LocalTarget;

    #[test]
    fn defaults_and_urls() {
        let target = LocalTarget::from_lookup(|_| None).expect("defaults are valid");
        assert_eq!(target.caddy_admin, "http://127.0.0.1:2019");
        assert!(!target.registry_tls_verify);
        assert_eq!(
            target.app_url("web.demo.localhost"),
            "http://web.demo.localhost:8088/"
        );
        assert_eq!(
            target.app_https_url("web.demo.localhost").as_deref(),
            Some("https://web.demo.localhost:8443/")
        );
        let plain =
            LocalTarget::from_lookup(|n| (n == "SLIPWAY_CADDY_HTTPS_ADDR").then(|| "off".into()))
                .expect("valid");
        assert_eq!(plain.app_https_url("web.demo.localhost"), None);
        let bad = LocalTarget::from_lookup(|n| {
            (n == "SLIPWAY_REGISTRY_TLS_VERIFY").then(|| "maybe".into())
        });
        assert!(bad.is_err());
        assert_eq!(target.images_kept, 5);
        for bad in ["0", "many"] {
            let kept =
                LocalTarget::from_lookup(|n| (n == "SLIPWAY_IMAGES_KEPT").then(|| bad.into()));
            assert!(kept.is_err(), "{bad}");
        }
    }
}
