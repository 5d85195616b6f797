//! App operations: stop, start, restart and destroy. Each is a deployment
//! whose `source` is `{"action": ...}`, so it takes the app's one-per-app
//! lane, has a timeline, logs, attempts and cancel like any deploy. The
//! build stage builds nothing (it records the image of the app's current
//! release, or nothing for a destroy), the provision stage checks the
//! target, and the deploy stage performs the action. The deployment ends
//! `live` when the action is done.
//!
//! Also the custom domain names an app answers at besides its own host.

use crate::domain::Invalid;
use serde::Serialize;
use std::fmt;

/// Most containers one release may run (`runtime.replicas`).
pub const MAX_REPLICAS: u32 = 16;

/// What an operation deployment does on the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AppAction {
    /// Route answers 503, the current release's container is stopped, the
    /// release becomes `paused`.
    Stop,
    /// A fresh container of the current (paused) release's image is started,
    /// health-checked, and the route points at it; a running app is left
    /// alone.
    Start,
    /// A fresh container of the current release's image replaces the running
    /// one with no downtime (health check, then switch, then drain).
    Restart,
    /// Every container of the app and its route are removed, then the app.
    Destroy,
}

impl AppAction {
    pub const ALL: [AppAction; 4] = [Self::Stop, Self::Start, Self::Restart, Self::Destroy];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Start => "start",
            Self::Restart => "restart",
            Self::Destroy => "destroy",
        }
    }

    pub fn parse(value: &str) -> Option<AppAction> {
        Self::ALL.into_iter().find(|a| a.as_str() == value)
    }

    /// The action a deployment's `source` asks for, if it is an operation.
    pub fn of_source(source: &serde_json::Value) -> Option<AppAction> {
        source.get("action")?.as_str().and_then(Self::parse)
    }

    /// The `source` of an operation deployment.
    pub fn source(self) -> serde_json::Value {
        serde_json::json!({ "action": self.as_str() })
    }
}

impl fmt::Display for AppAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A custom domain of an app: a lower-case DNS host name of at least two
/// labels (`www.example.com`), each label 1–63 characters of `a-z`, `0-9`
/// and `-`, not starting or ending with `-`; 253 characters at most. No
/// wildcards, ports or IP addresses.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct DomainName(String);

impl DomainName {
    pub fn parse(value: &str) -> Result<DomainName, Invalid> {
        let bad = |reason: &str| Invalid {
            field: "domains",
            reason: format!("{value:?} {reason}"),
        };
        let host = value.trim_end_matches('.');
        if host.is_empty() || host.len() > 253 {
            return Err(bad("must be 1 to 253 characters"));
        }
        let labels: Vec<&str> = host.split('.').collect();
        if labels.len() < 2 {
            return Err(bad("must have at least two labels (name.tld)"));
        }
        for label in &labels {
            let ok = !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !ok {
                return Err(bad(
                    "is not a lower-case host name (labels of a-z, 0-9 and '-')",
                ));
            }
        }
        if labels
            .last()
            .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
        {
            return Err(bad("looks like an IP address; give a host name"));
        }
        Ok(DomainName(host.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_round_trip_through_sources() {
        for action in AppAction::ALL {
            assert_eq!(AppAction::of_source(&action.source()), Some(action));
        }
        assert_eq!(
            AppAction::of_source(&serde_json::json!({"git_ref": "main"})),
            None
        );
        assert_eq!(
            AppAction::of_source(&serde_json::json!({"action": "explode"})),
            None
        );
    }

    #[test]
    fn domain_names_are_host_names() {
        for good in [
            "www.example.com",
            "a.b",
            "x-1.example.org.",
            "shop.localhost",
        ] {
            assert!(DomainName::parse(good).is_ok(), "{good}");
        }
        assert_eq!(
            DomainName::parse("example.com.").unwrap().as_str(),
            "example.com"
        );
        for bad in [
            "",
            "localhost",
            "Example.com",
            "*.example.com",
            "-a.example.com",
            "a..b",
            "example.com:8080",
            "10.0.0.1",
            "a_b.example.com",
            &format!("{}.com", "a".repeat(64)),
        ] {
            assert!(DomainName::parse(bad).is_err(), "{bad}");
        }
    }
}
