//! What can go wrong in a command, and the exit code each kind gives: an
//! answer of the API keeps its stable `code` and `message` so scripts and
//! people see what the server said.

use std::fmt;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The API refused: its status, `code` and `message`.
    #[error("{code}: {message} (HTTP {status})")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// Refused here before anything was sent (a bad argument, a missing
    /// login, a token that would travel in clear text).
    #[error("{code}: {message}")]
    Local { code: &'static str, message: String },
    /// The server could not be reached or answered something that is not
    /// the API.
    #[error("cannot reach the API at {url}: {detail}")]
    Transport { url: String, detail: String },
    /// A deployment (or operation) ended without going live.
    #[error("{0}")]
    Failed(Outcome),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// A deployment that ended in a state other than `live`.
#[derive(Debug)]
pub struct Outcome {
    pub id: String,
    pub state: String,
    pub code: Option<String>,
    pub message: Option<String>,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "deployment {} {}", self.id, self.state)?;
        if let Some(code) = &self.code {
            write!(f, ": {code}")?;
        }
        if let Some(message) = &self.message {
            write!(f, ": {message}")?;
        }
        Ok(())
    }
}

impl CliError {
    pub fn local(code: &'static str, message: impl Into<String>) -> Self {
        CliError::Local {
            code,
            message: message.into(),
        }
    }

    /// Whether the API answered 404 for the route itself (a server without
    /// that feature) rather than for a missing resource behind it.
    pub fn is_missing_route(&self) -> bool {
        matches!(self, CliError::Api { status: 404, message, .. } if message == "route not found")
    }

    /// 1 for a failed deployment or an API refusal, 2 for a local refusal
    /// (usage), 3 when the server could not be reached.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Api { .. } | CliError::Failed(_) | CliError::Other(_) => 1,
            CliError::Local { .. } => 2,
            CliError::Transport { .. } => 3,
        }
    }
}

pub type Result<T, E = CliError> = std::result::Result<T, E>;
