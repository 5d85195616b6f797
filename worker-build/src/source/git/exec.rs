//! Running one git command of a fetch: in its own process group with a clean
//! environment, every output line (scrubbed of the fetch's secrets) streamed
//! to the job's logs, the whole group killed on cancel or when the fetch's
//! time limit passes, and the last lines of stderr kept so that a failure can
//! be classified.
//!
//! This mirrors `slipway_shared::process::run_logged`, which cannot be used
//! as is because it hands no output back: git reports every failure (missing
//! repository, missing ref, refused credential, refused connection) as exit
//! status 128 and only its stderr tells them apart.

use slipway_shared::job::JobError;
use slipway_shared::logsink::LogHandle;
use slipway_shared::process::{kill_group, stop_group};
use std::collections::VecDeque;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Lines of each stream kept for classification and error messages.
const KEPT_LINES: usize = 40;

/// Values that must not leave a git process: replaced in every line before
/// it is logged or kept.
#[derive(Clone, Default)]
pub(super) struct Scrubber(Vec<String>);

impl Scrubber {
    pub(super) fn add(&mut self, secret: impl Into<String>) {
        let secret = secret.into();
        if !secret.is_empty() {
            self.0.push(secret);
        }
    }

    pub(super) fn scrub(&self, line: String) -> String {
        self.0.iter().fold(line, |line, secret| {
            if line.contains(secret.as_str()) {
                line.replace(secret.as_str(), "[REDACTED]")
            } else {
                line
            }
        })
    }
}

/// When the whole fetch must be done.
#[derive(Clone, Copy)]
pub(super) struct Deadline {
    pub at: Instant,
    pub limit: Duration,
}

pub(super) struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
}

impl Output {
    pub(super) fn success(&self) -> bool {
        self.status.success()
    }
}

pub(super) async fn run(
    mut command: Command,
    logs: &LogHandle,
    cancel: &CancellationToken,
    deadline: Deadline,
    scrubber: &Scrubber,
) -> Result<Output, JobError> {
    if cancel.is_cancelled() {
        return Err(JobError::Cancelled);
    }
    command
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .map_err(|e| JobError::Retryable(format!("cannot start git: {e}")))?;
    let pid = child.id().unwrap_or(0);
    let stdout = child
        .stdout
        .take()
        .map(|out| tokio::spawn(pump(out, logs.clone(), "stdout", scrubber.clone())));
    let stderr = child
        .stderr
        .take()
        .map(|err| tokio::spawn(pump(err, logs.clone(), "stderr", scrubber.clone())));
    let stop = tokio::select! {
        biased;
        status = child.wait() => Ok(status),
        _ = cancel.cancelled() => Err(JobError::Cancelled),
        _ = tokio::time::sleep_until(deadline.at) => Err(JobError::Retryable(format!(
            "fetching the source did not finish within {}",
            humanize(deadline.limit)
        ))),
    };
    let status = match stop {
        Ok(status) => status,
        Err(error) => {
            stop_group(pid).await;
            let _ = child.wait().await;
            for pump in [stdout, stderr].into_iter().flatten() {
                pump.abort();
            }
            return Err(error);
        }
    }
    .map_err(|e| JobError::Retryable(format!("waiting for git failed: {e}")))?;
    // Helpers git started (git-remote-http, ssh) may still hold the pipes.
    kill_group(pid);
    Ok(Output {
        status,
        stdout: collect(stdout).await,
        stderr: collect(stderr).await,
    })
}

async fn collect(pump: Option<JoinHandle<Vec<String>>>) -> Vec<String> {
    match pump {
        Some(pump) => pump.await.unwrap_or_default(),
        None => Vec::new(),
    }
}

async fn pump(
    stream: impl AsyncRead + Unpin,
    logs: LogHandle,
    name: &'static str,
    scrubber: Scrubber,
) -> Vec<String> {
    let mut kept = VecDeque::with_capacity(KEPT_LINES);
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let line = scrubber.scrub(line);
        if kept.len() == KEPT_LINES {
            kept.pop_front();
        }
        kept.push_back(line.clone());
        logs.line(name, line).await;
    }
    kept.into()
}

pub(super) fn humanize(limit: Duration) -> String {
    humantime::format_duration(Duration::from_secs(limit.as_secs().max(1))).to_string()
}

#[cfg(test)]
mod tests {
    use super::Scrubber;

    #[test]
    fn scrubs_every_secret() {
        let mut scrubber = Scrubber::default();
        scrubber.add("tok3n");
        scrubber.add("");
        scrubber.add("b64==");
        assert_eq!(
            scrubber.scrub("a tok3n and b64== and tok3n".into()),
            "a [REDACTED] and [REDACTED] and [REDACTED]"
        );
    }
}
