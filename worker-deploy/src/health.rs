//! Health of a release. Its rule ([`HealthRule`], from the app's
//! runtime settings) is either the listening check (`listening`: the app's
//! process listens on its port inside its container and stays up for a
//! settle time; `verdict` and `proc_net` are its pure parts) or the HTTP
//! check in this file: GET `http://127.0.0.1:PORT/PATH` until it answers
//! 2xx or 3xx, at most `attempts` times, `interval` apart, each try cut
//! off after `timeout`. A failure names what was checked and the last
//! status or connection error, which is what an operator needs to see.

pub mod listening;
pub mod proc_net;
mod rule;
pub mod sock_diag;
pub mod verdict;

pub use listening::{wait_listening, ListenError, Listening, ListeningCheck};
pub use rule::{HealthRule, Unhealthy};

use slipway_shared::job::JobError;
use std::time::{Duration, Instant};

/// An app's health-check settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// Starts with `/`.
    pub path: String,
    /// Pause between the end of one try and the start of the next.
    pub interval: Duration,
    /// Limit of a single try.
    pub timeout: Duration,
    pub attempts: u32,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            path: "/healthz".into(),
            interval: Duration::from_millis(500),
            timeout: Duration::from_secs(2),
            attempts: 20,
        }
    }
}

/// A passed check.
#[derive(Debug, Clone)]
pub struct Healthy {
    pub status: u16,
    /// Tries it took, the successful one included.
    pub attempts: u32,
    pub elapsed: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("GET {path}: {last} (the last of {attempts} attempts in {:.1} s)", elapsed.as_secs_f64())]
    Unhealthy {
        url: String,
        /// The path and query of `url`.
        path: String,
        attempts: u32,
        elapsed: Duration,
        /// `status 503` or `error: ...`.
        last: String,
    },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

impl HealthError {
    pub fn code(&self) -> &'static str {
        match self {
            HealthError::Unhealthy { .. } => "health_check_failed",
            HealthError::Client(_) => "health_check_error",
        }
    }

    /// A release that failed its check fails the deployment: another
    /// attempt would start the same image the same way.
    pub fn into_job_error(self) -> JobError {
        JobError::permanent(self.code(), self.to_string())
    }
}

impl From<HealthError> for JobError {
    fn from(e: HealthError) -> Self {
        e.into_job_error()
    }
}

/// Checks `http://127.0.0.1:{host_port}{check.path}`.
pub async fn wait_healthy(host_port: u16, check: &HealthCheck) -> Result<Healthy, HealthError> {
    let path = if check.path.starts_with('/') {
        check.path.clone()
    } else {
        format!("/{}", check.path)
    };
    wait_healthy_url(&format!("http://127.0.0.1:{host_port}{path}"), check).await
}

/// Checks `url`, a loopback address (no proxy is ever used, redirects are
/// not followed: a 3xx counts as healthy).
pub async fn wait_healthy_url(url: &str, check: &HealthCheck) -> Result<Healthy, HealthError> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(check.timeout)
        .build()
        .map_err(|e| HealthError::Client(e.to_string()))?;
    let started = Instant::now();
    let mut last = String::from("no attempt made");
    let attempts = check.attempts.max(1);
    for attempt in 1..=attempts {
        match client.get(url).send().await {
            Ok(resp) if resp.status().is_success() || resp.status().is_redirection() => {
                return Ok(Healthy {
                    status: resp.status().as_u16(),
                    attempts: attempt,
                    elapsed: started.elapsed(),
                });
            }
            Ok(resp) => last = format!("status {}", resp.status()),
            Err(e) => last = format!("error: {}", error_chain(&e)),
        }
        if attempt < attempts {
            tokio::time::sleep(check.interval).await;
        }
    }
    let path = match url
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
    {
        Some(path) => path.to_owned(),
        None => "/".to_owned(),
    };
    Err(HealthError::Unhealthy {
        url: url.to_string(),
        path,
        attempts,
        elapsed: started.elapsed(),
        last,
    })
}

/// reqwest's top-level message ("error sending request") hides the cause.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
