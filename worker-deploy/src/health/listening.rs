//! The listening check's wait: look at the container (see
//! `Engine::observe`) every `interval` until the verdict is healthy, the
//! container exited (at once, not after the whole wait) or `wait` is over.
//! The settle time runs from the start of the app's process, so it
//! overlaps the wait: an app that listens 300 ms after its start is
//! healthy 1 s after it, if it is still up then.

use super::verdict::{judge, Miss, Observation, Verdict};
use crate::engine::{Engine, EngineError};
use std::time::{Duration, Instant};

/// The listening rule's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListeningCheck {
    /// The app's port inside the container.
    pub port: u16,
    /// How long the app's process must have run, listening, to count.
    pub settle: Duration,
    /// How long to wait for it to listen (a settle under way is finished).
    pub wait: Duration,
    /// Pause between two looks.
    pub interval: Duration,
}

/// A passed check.
#[derive(Debug, Clone)]
pub struct Listening {
    pub elapsed: Duration,
    /// Looks it took.
    pub probes: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The wait ended and the port was not reachably listened on.
    #[error("port {port} inside the container: nothing listening after {:.1} s ({miss})", waited.as_secs_f64())]
    NotListening {
        port: u16,
        waited: Duration,
        miss: Miss,
    },
    /// The wait ended with the container neither running nor exited.
    #[error("port {port} inside the container: the container is {state}, not running, after {:.1} s", waited.as_secs_f64())]
    NotRunning {
        port: u16,
        waited: Duration,
        state: String,
    },
    #[error("port {port} inside the container: the container exited with code {code}")]
    Exited {
        port: u16,
        waited: Duration,
        code: i32,
    },
    #[error("port {port} inside the container: the container was removed")]
    Gone { port: u16 },
    /// The check itself could not look (engine or target failing).
    #[error("cannot check port {port} inside the container: {source}")]
    Engine { port: u16, source: EngineError },
}

/// Waits until the app in container `name` listens on `check.port` and has
/// stayed up for `check.settle`.
pub async fn wait_listening(
    engine: &Engine,
    name: &str,
    check: &ListeningCheck,
) -> Result<Listening, ListenError> {
    wait_listening_seen(engine, name, check, None).await
}

/// [`wait_listening`] from a first look already taken (`seen`: a monitor
/// round's, from its one list of the containers); later looks ask the
/// engine.
pub async fn wait_listening_seen(
    engine: &Engine,
    name: &str,
    check: &ListeningCheck,
    mut seen: Option<Observation>,
) -> Result<Listening, ListenError> {
    let started = Instant::now();
    let port = check.port;
    let mut probes = 0;
    loop {
        probes += 1;
        let observation = match seen.take() {
            Some(observation) => observation,
            None => engine
                .observe(name)
                .await
                .map_err(|source| ListenError::Engine { port, source })?,
        };
        let waited = started.elapsed();
        let pause = match judge(&observation, port, check.settle) {
            Verdict::Healthy => {
                return Ok(Listening {
                    elapsed: waited,
                    probes,
                })
            }
            Verdict::Exited { code } => return Err(ListenError::Exited { port, waited, code }),
            Verdict::Gone => return Err(ListenError::Gone { port }),
            // Listening already: finish the settle even past the wait.
            Verdict::Settling { remaining } => remaining,
            Verdict::NotListening(miss) if waited >= check.wait => {
                return Err(ListenError::NotListening { port, waited, miss })
            }
            Verdict::NotRunning { state } if waited >= check.wait => {
                return Err(ListenError::NotRunning {
                    port,
                    waited,
                    state,
                })
            }
            Verdict::NotListening(_) | Verdict::NotRunning { .. } => check.interval,
        };
        tokio::time::sleep(pause).await;
    }
}
