//! The local podman's API service, started and supervised by the deploy
//! worker: `podman system service --time=0 unix://SOCKET` (no idle
//! timeout), a socket of the worker's own (several workers on one host
//! each run one; they share the engine's storage and events), restarted
//! with a growing pause when it exits. The child gets SIGKILL when the
//! worker dies (see `slipway_shared::process::clean_command`), so a killed
//! worker leaves no service behind; on shutdown it is killed and its socket
//! removed.

use super::api::EngineApi;
use slipway_shared::process::clean_command;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Child;
use tokio_util::sync::CancellationToken;

/// Longest pause between restarts of a service that keeps exiting.
const MAX_RESTART_PAUSE: Duration = Duration::from_secs(30);
/// How long a fresh service gets to answer before it counts as started.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The socket of this worker's service.
pub fn socket_path() -> PathBuf {
    std::env::temp_dir().join(format!("slipway-podman-{}.sock", std::process::id()))
}

/// Starts the service, waits until it answers, and keeps it running until
/// `shutdown`; returns the client of its socket.
pub async fn supervise(
    containers_conf: Option<PathBuf>,
    shutdown: CancellationToken,
) -> anyhow::Result<(EngineApi, tokio::task::JoinHandle<()>)> {
    let socket = socket_path();
    let _ = std::fs::remove_file(&socket);
    let child = spawn(&socket, containers_conf.as_ref())?;
    // The client checks that the socket exists when it is made.
    let started = std::time::Instant::now();
    while !socket.exists() {
        anyhow::ensure!(
            started.elapsed() < START_TIMEOUT,
            "podman's API service made no socket at {} within {START_TIMEOUT:?}",
            socket.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let api = EngineApi::unix(&socket)?;
    if wait_up(&api, &socket).await {
        tracing::info!(socket = %socket.display(), "podman API service up");
    } else {
        tracing::warn!(socket = %socket.display(), "podman API service does not answer yet");
    }
    let task = tokio::spawn(run(child, socket, containers_conf, api.clone(), shutdown));
    Ok((api, task))
}

fn spawn(socket: &Path, containers_conf: Option<&PathBuf>) -> std::io::Result<Child> {
    let mut command = clean_command("podman");
    if let Some(conf) = containers_conf {
        command.env("CONTAINERS_CONF", conf);
    }
    command
        .args(["system", "service", "--time=0"])
        .arg(format!("unix://{}", socket.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
}

async fn run(
    child: Child,
    socket: PathBuf,
    containers_conf: Option<PathBuf>,
    api: EngineApi,
    shutdown: CancellationToken,
) {
    let mut child = Some(child);
    let mut pause = Duration::from_millis(500);
    loop {
        if let Some(running) = child.as_mut() {
            tokio::select! {
                status = running.wait() => {
                    tracing::warn!(?status, "podman API service exited; restarting it");
                }
                _ = shutdown.cancelled() => {
                    let _ = running.kill().await;
                    let _ = std::fs::remove_file(&socket);
                    return;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.cancelled() => return,
        }
        pause = (pause * 2).min(MAX_RESTART_PAUSE);
        let _ = std::fs::remove_file(&socket);
        child = match spawn(&socket, containers_conf.as_ref()) {
            Ok(next) => Some(next),
            Err(error) => {
                tracing::warn!(%error, "cannot start the podman API service");
                None
            }
        };
        if child.is_some() && wait_up(&api, &socket).await {
            tracing::info!(socket = %socket.display(), "podman API service up again");
            pause = Duration::from_millis(500);
        }
    }
}

/// Whether the service answered within [`START_TIMEOUT`].
async fn wait_up(api: &EngineApi, socket: &Path) -> bool {
    let started = std::time::Instant::now();
    while started.elapsed() < START_TIMEOUT {
        if socket.exists() && api.ping().await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}
