//! How a provider call fails. A refusal keeps the provider's own status,
//! code and words, so what a user reads is what the provider said.

use crate::driver::ProviderKind;
use std::time::Duration;

#[derive(Debug, Clone, thiserror::Error)]
pub enum CloudError {
    /// The provider answered with an error status.
    #[error("{} answered {status} {code}: {message}", provider.display_name())]
    Api {
        provider: ProviderKind,
        status: u16,
        /// The provider's error code (`not_found`, `uniqueness_error`,
        /// `itemNotFound`, …), or the status reason when it gave none.
        code: String,
        message: String,
        /// Seconds the provider asked to wait (429, 503).
        retry_after: Option<Duration>,
    },
    /// The provider could not be reached or its answer could not be read.
    #[error("{} could not be reached: {detail}", provider.display_name())]
    Transport {
        provider: ProviderKind,
        detail: String,
    },
    #[error("{} answered something this driver cannot read: {detail}", provider.display_name())]
    Decode {
        provider: ProviderKind,
        detail: String,
    },
    /// Asynchronous work the provider reported as failed (a Hetzner action
    /// in `error`, a Nova server in `ERROR`), with its words.
    #[error("{} failed to {what}: {message}", provider.display_name())]
    Failed {
        provider: ProviderKind,
        what: String,
        message: String,
    },
    #[error("{} did not finish {what} within {}s", provider.display_name(), limit.as_secs())]
    Timeout {
        provider: ProviderKind,
        what: String,
        limit: Duration,
    },
}

impl CloudError {
    pub fn status(&self) -> Option<u16> {
        match self {
            CloudError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The provider refused the credentials.
    pub fn is_auth(&self) -> bool {
        matches!(self.status(), Some(401 | 403))
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// Worth sending again: rate limits, the provider's own trouble, a
    /// connection that failed.
    pub fn is_transient(&self) -> bool {
        match self {
            CloudError::Api { status, .. } => matches!(status, 429 | 502 | 503 | 504),
            CloudError::Transport { .. } => true,
            _ => false,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            CloudError::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}
