//! Running a child process for a job: in its own process group, with a
//! clean environment, every output line streamed to the job's logs as it is
//! printed, and the whole group killed the moment the job is cancelled.

use crate::job::JobError;
use crate::logsink::LogHandle;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::process::{ExitStatus, Stdio};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

pub struct Finished {
    pub pid: u32,
    pub status: ExitStatus,
}

const SETPRIV: &str = "/usr/bin/setpriv";

/// A command with only PATH and HOME from the platform's environment, so
/// no platform secret (database URL, keys) reaches a child. Where util-linux'
/// `setpriv` exists the child also gets SIGKILL when the worker dies, so a
/// killed worker leaves no orphan running its job (the sweeper re-runs it).
pub fn clean_command(program: &str) -> Command {
    let mut command = if std::path::Path::new(SETPRIV).exists() {
        let mut command = Command::new(SETPRIV);
        command.args(["--pdeathsig", "KILL", "--", program]);
        command
    } else {
        Command::new(program)
    };
    command
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("HOME", "/tmp")
        .env("LANG", "C.UTF-8");
    command
}

/// Runs `command` to completion, or kills its process group on `cancel`
/// (then `Err(JobError::Cancelled)`).
pub async fn run_logged(
    mut command: Command,
    logs: &LogHandle,
    cancel: &CancellationToken,
) -> Result<Finished, JobError> {
    command
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|e| {
        JobError::permanent("spawn_failed", format!("cannot start {command:?}: {e}"))
    })?;
    let pid = child.id().unwrap_or(0);
    logs.info(format!("started process group {pid}")).await;
    let stdout = child
        .stdout
        .take()
        .map(|out| tokio::spawn(pump(out, logs.clone(), "stdout")));
    let stderr = child
        .stderr
        .take()
        .map(|err| tokio::spawn(pump(err, logs.clone(), "stderr")));
    // Biased: a child that already finished reports its result even if a
    // cancel arrived at the same moment; fencing decides whether it counts.
    let status = tokio::select! {
        biased;
        status = child.wait() => status,
        _ = cancel.cancelled() => {
            kill_group(pid);
            let _ = child.wait().await;
            for pump in [stdout, stderr].into_iter().flatten() {
                pump.abort();
            }
            return Err(JobError::Cancelled);
        }
    }
    .map_err(|e| JobError::Retryable(format!("waiting for the child failed: {e}")))?;
    // The group may have left grandchildren holding the pipes open.
    kill_group(pid);
    for pump in [stdout, stderr].into_iter().flatten() {
        let _ = pump.await;
    }
    Ok(Finished { pid, status })
}

fn kill_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        if pid > 0 {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

async fn pump(stream: impl AsyncRead + Unpin, logs: LogHandle, name: &'static str) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        logs.line(name, line).await;
    }
}
