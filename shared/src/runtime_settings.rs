//! An app's `runtime` settings (`apps.runtime_settings`): port, health
//! check, limits, replicas and drain, with their defaults. The API checks
//! them strictly when an app is created or changed (`422
//! invalid_runtime_settings`: unknown keys and ports below 1024 included);
//! the deploy worker reads stored values leniently for every release.

use std::time::Duration;

/// The app's `runtime` settings, with defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeSettings {
    /// The port the app listens on inside the container (given as `$PORT`).
    pub port: u16,
    /// `None`: the app is healthy when it listens on `port` inside its
    /// container and has stayed up for `health_settle`; a path asks for
    /// an HTTP check of it instead.
    pub health_path: Option<String>,
    pub health_interval: Duration,
    pub health_timeout: Duration,
    pub health_attempts: u32,
    /// How long a listening app must have stayed up to be healthy (the
    /// listening check only).
    pub health_settle: Duration,
    /// Memory limit in the engine's format (`512m`), if any.
    pub memory: Option<String>,
    /// CPUs (`0.5`), if any.
    pub cpus: Option<String>,
    /// Containers of each release behind the app's route.
    pub replicas: u32,
    /// How long a replaced release keeps running after the switch, so the
    /// requests it was answering finish; then it is stopped.
    pub drain: Duration,
}

/// The keys `runtime` may have.
pub const KNOWN_KEYS: [&str; 10] = [
    "port",
    "health_path",
    "health_settle_ms",
    "health_interval_ms",
    "health_timeout_ms",
    "health_attempts",
    "memory",
    "cpus",
    "replicas",
    "drain_ms",
];

/// Ports below this need root to bind; apps run as uid 1000.
pub const FIRST_UNPRIVILEGED_PORT: u16 = 1024;

/// The longest settle time an app may ask for.
pub const MAX_SETTLE: Duration = Duration::from_secs(60);

/// The longest drain an app may ask for.
pub const MAX_DRAIN: Duration = Duration::from_secs(600);

impl Default for RuntimeSettings {
    fn default() -> Self {
        RuntimeSettings {
            port: 8080,
            health_path: None,
            health_interval: Duration::from_millis(250),
            health_timeout: Duration::from_secs(2),
            health_attempts: 60,
            health_settle: Duration::from_secs(1),
            memory: None,
            cpus: None,
            replicas: 1,
            drain: Duration::from_secs(2),
        }
    }
}

impl RuntimeSettings {
    /// What the API accepts: [`RuntimeSettings::parse`], no unknown keys, and
    /// no privileged port. Generated images run the app as uid 1000, which
    /// cannot bind below 1024; the rule holds for every app (a Dockerfile
    /// may run as root, but the platform's proxy serves 80/443 anyway, so no
    /// app needs a low port inside its container).
    pub fn parse_strict(value: &serde_json::Value) -> Result<RuntimeSettings, String> {
        if let Some(map) = value.as_object() {
            if let Some(key) = map.keys().find(|k| !KNOWN_KEYS.contains(&k.as_str())) {
                return Err(format!(
                    "runtime.{key} is not a runtime setting (known: {})",
                    KNOWN_KEYS.join(", ")
                ));
            }
        }
        let settings = Self::parse(value)?;
        if settings.port < FIRST_UNPRIVILEGED_PORT {
            return Err(format!(
                "runtime.port {} is below {FIRST_UNPRIVILEGED_PORT}: apps run as an unprivileged \
                 user (uid 1000), which cannot bind it; listen on $PORT with a port such as 8080 \
                 (the platform's proxy answers on 80 and 443)",
                settings.port
            ));
        }
        Ok(settings)
    }

    /// Reads `port`, `health_path`, `health_interval_ms`, `health_timeout_ms`,
    /// `health_attempts`, `health_settle_ms`, `memory`, `cpus`, `replicas`, `drain_ms`; anything
    /// else is ignored.
    pub fn parse(value: &serde_json::Value) -> Result<RuntimeSettings, String> {
        let mut settings = RuntimeSettings::default();
        let number = |key: &str| -> Result<Option<u64>, String> {
            match value.get(key) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(v) => v
                    .as_u64()
                    .map(Some)
                    .ok_or_else(|| format!("runtime.{key} must be a whole number, not {v}")),
            }
        };
        let text = |key: &str| -> Result<Option<String>, String> {
            match value.get(key) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                Some(serde_json::Value::Number(n)) => Ok(Some(n.to_string())),
                Some(v) => Err(format!("runtime.{key} must be a string, not {v}")),
            }
        };
        if let Some(port) = number("port")? {
            settings.port = u16::try_from(port)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("runtime.port {port} is not a port"))?;
        }
        if let Some(path) = text("health_path")? {
            if !path.starts_with('/') {
                return Err(format!("runtime.health_path {path:?} must start with /"));
            }
            settings.health_path = Some(path);
        }
        if let Some(ms) = number("health_interval_ms")? {
            settings.health_interval = Duration::from_millis(ms.max(10));
        }
        if let Some(ms) = number("health_timeout_ms")? {
            settings.health_timeout = Duration::from_millis(ms.max(10));
        }
        if let Some(ms) = number("health_settle_ms")? {
            settings.health_settle = Some(Duration::from_millis(ms))
                .filter(|settle| *settle <= MAX_SETTLE)
                .ok_or_else(|| {
                    format!(
                        "runtime.health_settle_ms {ms} is over {} ms",
                        MAX_SETTLE.as_millis()
                    )
                })?;
        }
        if let Some(n) = number("health_attempts")? {
            settings.health_attempts = u32::try_from(n.clamp(1, 10_000)).unwrap_or(10_000);
        }
        if let Some(n) = number("replicas")? {
            let max = crate::operation::MAX_REPLICAS;
            settings.replicas = u32::try_from(n)
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| format!("runtime.replicas {n} is not within 1..={max}"))?;
        }
        if let Some(ms) = number("drain_ms")? {
            settings.drain = Some(Duration::from_millis(ms))
                .filter(|drain| *drain <= MAX_DRAIN)
                .ok_or_else(|| {
                    format!("runtime.drain_ms {ms} is over {} ms", MAX_DRAIN.as_millis())
                })?;
        }
        settings.memory = text("memory")?;
        settings.cpus = text("cpus")?;
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn runtime_settings_have_defaults_and_refuse_nonsense() {
        assert_eq!(
            RuntimeSettings::parse(&json!({})).ok(),
            Some(RuntimeSettings::default())
        );
        let custom =
            RuntimeSettings::parse(&json!({"port": 3000, "health_path": "/up", "memory": "256m"}))
                .ok()
                .unwrap_or_default();
        assert_eq!(
            (custom.port, custom.health_path.as_deref()),
            (3000, Some("/up"))
        );
        assert_eq!(RuntimeSettings::default().health_path, None);
        let settled = RuntimeSettings::parse(&json!({"health_settle_ms": 0})).ok();
        assert_eq!(settled.map(|s| s.health_settle), Some(Duration::ZERO));
        assert_eq!(custom.memory.as_deref(), Some("256m"));
        let drained = RuntimeSettings::parse(&json!({"drain_ms": 0})).ok();
        assert_eq!(drained.map(|s| s.drain), Some(Duration::ZERO));
        for bad in [
            json!({"port": 0}),
            json!({"port": 70000}),
            json!({"health_path": "up"}),
            json!({"port": "x"}),
            json!({"replicas": 0}),
            json!({"replicas": 17}),
            json!({"drain_ms": 600_001}),
            json!({"drain_ms": -1}),
            json!({"health_settle_ms": 60_001}),
        ] {
            assert!(RuntimeSettings::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn strict_parsing_refuses_unknown_keys_and_privileged_ports() {
        let typo = json!({"helth_path": "/up"});
        let error = RuntimeSettings::parse_strict(&typo).unwrap_err();
        assert!(error.contains("runtime.helth_path"), "{error}");
        assert!(
            RuntimeSettings::parse(&typo).is_ok(),
            "stored values stay readable"
        );
        let error = RuntimeSettings::parse_strict(&json!({"port": 80})).unwrap_err();
        assert!(
            error.contains("8080") && error.contains("unprivileged"),
            "{error}"
        );
        assert!(RuntimeSettings::parse_strict(&json!({"port": 1024})).is_ok());
        assert!(RuntimeSettings::parse_strict(&json!({})).is_ok());
    }
}
