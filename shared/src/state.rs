//! The deployment lifecycle: one enum for the states and the one table of
//! allowed transitions that every conditional `UPDATE` is checked against.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Where a deployment is in its build-to-live path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentState {
    /// Accepted; waiting for its build job, or held behind the app's running deployment.
    Queued,
    /// A build worker holds the build job.
    Building,
    /// The image exists; waiting for a provision worker.
    Built,
    /// A provision worker is making sure the target exists.
    Provisioning,
    /// The target is ready; waiting for a deploy worker.
    Provisioned,
    /// A deploy worker is starting the new release.
    Deploying,
    /// The new release is running and being health-checked.
    Verifying,
    /// The release serves traffic (for an app operation, such as a stop: the
    /// action is done). Terminal for the pipeline.
    Live,
    /// A stage failed permanently or spent its attempt budget. Terminal.
    Failed,
    /// Cancelled by a user. Terminal.
    Cancelled,
    /// A newer request for the same app replaced it before it started. Terminal.
    Superseded,
}

impl DeploymentState {
    pub const ALL: [DeploymentState; 11] = [
        Self::Queued,
        Self::Building,
        Self::Built,
        Self::Provisioning,
        Self::Provisioned,
        Self::Deploying,
        Self::Verifying,
        Self::Live,
        Self::Failed,
        Self::Cancelled,
        Self::Superseded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Building => "building",
            Self::Built => "built",
            Self::Provisioning => "provisioning",
            Self::Provisioned => "provisioned",
            Self::Deploying => "deploying",
            Self::Verifying => "verifying",
            Self::Live => "live",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Superseded => "superseded",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Live | Self::Failed | Self::Cancelled | Self::Superseded
        )
    }

    /// The terminal states as SQL literals, for `state NOT IN (...)` filters.
    pub const TERMINAL_SQL: &'static str = "('live','failed','cancelled','superseded')";

    /// Whether `self → next` is an allowed transition.
    pub fn can_become(self, next: DeploymentState) -> bool {
        use DeploymentState::*;
        if self.is_terminal() {
            // A dead job can be re-driven: a failed deployment goes back to
            // the entry state of the stage that died.
            return self == Failed && matches!(next, Queued | Built | Provisioned);
        }
        if matches!(next, Failed | Cancelled) {
            return true;
        }
        matches!(
            (self, next),
            (Queued, Building)
                | (Queued, Superseded)
                | (Building, Built)
                | (Built, Provisioning)
                | (Provisioning, Provisioned)
                | (Provisioned, Deploying)
                | (Deploying, Verifying)
                | (Verifying, Live)
        )
    }
}

impl fmt::Display for DeploymentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown deployment state `{0}`")]
pub struct UnknownState(String);

impl FromStr for DeploymentState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::DeploymentState::*;
    use super::*;

    #[test]
    fn the_happy_path_is_allowed_in_order_only() {
        let path = [
            Queued,
            Building,
            Built,
            Provisioning,
            Provisioned,
            Deploying,
            Verifying,
            Live,
        ];
        for pair in path.windows(2) {
            assert!(pair[0].can_become(pair[1]), "{} -> {}", pair[0], pair[1]);
            assert!(!pair[1].can_become(pair[0]), "{} -> {}", pair[1], pair[0]);
        }
        assert!(!Queued.can_become(Live));
    }

    #[test]
    fn terminal_states_stay_terminal_except_redrive() {
        for terminal in [Live, Cancelled, Superseded] {
            for next in DeploymentState::ALL {
                assert!(!terminal.can_become(next), "{terminal} -> {next}");
            }
        }
        assert!(Failed.can_become(Built));
        assert!(!Failed.can_become(Live));
    }

    #[test]
    fn only_queued_can_be_superseded_and_all_open_states_can_fail() {
        for state in DeploymentState::ALL
            .into_iter()
            .filter(|s| !s.is_terminal())
        {
            assert!(state.can_become(Failed));
            assert!(state.can_become(Cancelled));
            assert_eq!(state.can_become(Superseded), state == Queued);
        }
    }

    #[test]
    fn names_round_trip() {
        for state in DeploymentState::ALL {
            assert_eq!(state.as_str().parse::<DeploymentState>().unwrap(), state);
        }
        assert!("nope".parse::<DeploymentState>().is_err());
    }
}
