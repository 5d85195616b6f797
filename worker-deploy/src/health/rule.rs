//! Which check an app's release must pass, from its runtime settings, and
//! running it on the release's target. Without `runtime.health_path` the
//! app is healthy when it listens on its port inside its container and has
//! stayed up for the settle time (most apps have no health route); with
//! one, when `GET PATH` answers 2xx or 3xx. Deploys, the reconciler's
//! repairs and the monitor all use the same rule.

use super::listening::{wait_listening_seen, ListeningCheck};
use super::verdict::Observation;
use super::{wait_healthy, HealthCheck};
use crate::site::Site;
use crate::target::RuntimeSettings;
use slipway_shared::job::JobError;

/// The check a release must pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthRule {
    /// The app's process listens on its port in its network namespace.
    Listening(ListeningCheck),
    /// `GET PATH` answers 2xx or 3xx through the published port.
    Http(HealthCheck),
}

/// Why a release is not healthy.
#[derive(Debug)]
pub enum Unhealthy {
    /// The app failed the check; the text names what was checked.
    Failed(String),
    /// The check could not run (the target or its engine failing).
    Unchecked(JobError),
}

impl HealthRule {
    /// The rule of an app with these settings. The listening wait is as
    /// long as the HTTP check's tries would be.
    pub fn for_app(runtime: &RuntimeSettings) -> HealthRule {
        match &runtime.health_path {
            Some(path) => HealthRule::Http(HealthCheck {
                path: path.clone(),
                interval: runtime.health_interval,
                timeout: runtime.health_timeout,
                attempts: runtime.health_attempts,
            }),
            None => HealthRule::Listening(ListeningCheck {
                port: runtime.port,
                settle: runtime.health_settle,
                wait: runtime.health_interval * runtime.health_attempts,
                interval: runtime.health_interval,
            }),
        }
    }

    /// The same rule, looked at once (the monitor's): a single HTTP try;
    /// no wait for a port, though a settle under way is finished.
    pub fn once(self) -> HealthRule {
        match self {
            HealthRule::Http(check) => HealthRule::Http(HealthCheck {
                attempts: 1,
                ..check
            }),
            HealthRule::Listening(check) => HealthRule::Listening(ListeningCheck {
                wait: std::time::Duration::ZERO,
                ..check
            }),
        }
    }

    /// What is checked, for log lines.
    pub fn describe(&self) -> String {
        match self {
            HealthRule::Http(check) => {
                format!("GET {} (up to {} tries)", check.path, check.attempts)
            }
            HealthRule::Listening(check) => format!(
                "port {} listening inside the container, up for {:.1} s (waiting up to {:.1} s)",
                check.port,
                check.settle.as_secs_f64(),
                check.wait.as_secs_f64()
            ),
        }
    }

    /// Checks container `name`, published on `port` of the site's
    /// loopback; returns what the check said.
    pub async fn check(&self, site: &Site, name: &str, port: u16) -> Result<String, Unhealthy> {
        self.check_seen(site, name, port, None).await
    }

    /// [`HealthRule::check`] with a first look at the container already
    /// taken (`seen`, the listening rule's; see `wait_listening`).
    pub async fn check_seen(
        &self,
        site: &Site,
        name: &str,
        port: u16,
        seen: Option<Observation>,
    ) -> Result<String, Unhealthy> {
        match self {
            HealthRule::Http(check) => {
                // On an ssh target through a forward to the port there,
                // held for the check's length.
                let (here, _forward) = site.reach(port).await.map_err(Unhealthy::Unchecked)?;
                let healthy = wait_healthy(here, check)
                    .await
                    .map_err(|e| Unhealthy::Failed(e.to_string()))?;
                Ok(format!(
                    "GET {} answered {} after {} tries in {:.2}s",
                    check.path,
                    healthy.status,
                    healthy.attempts,
                    healthy.elapsed.as_secs_f64()
                ))
            }
            HealthRule::Listening(check) => {
                use super::listening::ListenError;
                match wait_listening_seen(&site.engine, name, check, seen).await {
                    // No " in " before the time: the deploy bench reads it.
                    Ok(listening) => Ok(format!(
                        "port {} listening inside the container and up {:.1} s: {} looks in {:.2}s",
                        check.port,
                        check.settle.as_secs_f64(),
                        listening.probes,
                        listening.elapsed.as_secs_f64(),
                    )),
                    Err(ListenError::Engine { source, .. }) => {
                        Err(Unhealthy::Unchecked(source.into_job_error()))
                    }
                    Err(error) => Err(Unhealthy::Failed(error.to_string())),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_rule_follows_the_health_path_setting() {
        let none = RuntimeSettings::parse(&serde_json::json!({"port": 3000})).unwrap();
        assert_eq!(
            HealthRule::for_app(&none),
            HealthRule::Listening(ListeningCheck {
                port: 3000,
                settle: Duration::from_secs(1),
                wait: Duration::from_secs(15),
                interval: Duration::from_millis(250),
            })
        );
        let path = RuntimeSettings::parse(&serde_json::json!({"health_path": "/up"})).unwrap();
        let HealthRule::Http(check) = HealthRule::for_app(&path) else {
            panic!("a health_path asks for the HTTP check");
        };
        assert_eq!(check.path, "/up");
        let HealthRule::Http(once) = HealthRule::for_app(&path).once() else {
            panic!("still HTTP");
        };
        assert_eq!(once.attempts, 1);
        let HealthRule::Listening(once) = HealthRule::for_app(&none).once() else {
            panic!("still listening");
        };
        assert_eq!(
            (once.wait, once.settle),
            (Duration::ZERO, Duration::from_secs(1))
        );
    }
}
