//! The deploy worker's own settings, validated at start: the local target
//! (shared with the provision worker) and how often the reconciler looks.
//! Only `from_env` reads the environment; `from_lookup` takes any source so
//! that tests need not touch the process environment.

use slipway_shared::config::ConfigError;
use slipway_shared::local_target::LocalTarget;
use std::time::Duration;

/// How often the reconciler looks unless `SLIPWAY_RECONCILE_INTERVAL` says:
/// a backstop, since engine events repair the local target at once.
pub const DEFAULT_RECONCILE_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct DeploySettings {
    pub target: LocalTarget,
    /// `None`: the reconciler is off (`SLIPWAY_RECONCILE_INTERVAL=off`).
    pub reconcile_interval: Option<Duration>,
}

impl DeploySettings {
    /// The target's variables (see [`LocalTarget::from_lookup`]) and
    /// `SLIPWAY_RECONCILE_INTERVAL` (`60s`; `off` turns it off).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let target = LocalTarget::from_lookup(&lookup)?;
        let reconcile_interval = match lookup("SLIPWAY_RECONCILE_INTERVAL")
            .as_deref()
            .map(str::trim)
        {
            None | Some("") => Some(DEFAULT_RECONCILE_INTERVAL),
            Some("off") => None,
            Some(value) => {
                let interval =
                    humantime::parse_duration(value).map_err(|e| ConfigError::Invalid {
                        name: "SLIPWAY_RECONCILE_INTERVAL",
                        value: value.to_owned(),
                        reason: e.to_string(),
                    })?;
                if interval < Duration::from_millis(100) {
                    return Err(ConfigError::Invalid {
                        name: "SLIPWAY_RECONCILE_INTERVAL",
                        value: value.to_owned(),
                        reason: "must be at least 100ms (or `off`)".into(),
                    });
                }
                Some(interval)
            }
        };
        Ok(DeploySettings {
            target,
            reconcile_interval,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> Result<DeploySettings, ConfigError> {
        let value = value.to_owned();
        DeploySettings::from_lookup(move |name| {
            (name == "SLIPWAY_RECONCILE_INTERVAL").then(|| value.clone())
        })
    }

    #[test]
    fn the_reconcile_interval_has_a_default_and_can_be_off() {
        assert_eq!(
            with("").map(|s| s.reconcile_interval).ok(),
            Some(Some(DEFAULT_RECONCILE_INTERVAL))
        );
        assert_eq!(
            with("2s").map(|s| s.reconcile_interval).ok(),
            Some(Some(Duration::from_secs(2)))
        );
        assert_eq!(with("off").map(|s| s.reconcile_interval).ok(), Some(None));
        assert!(with("0s").is_err());
        assert!(with("soon").is_err());
    }
}
