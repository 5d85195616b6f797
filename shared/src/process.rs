//! Running a child process for a job: in its own process group, with a
//! clean environment, every output line streamed to the job's logs as it is
//! printed, and the whole group killed the moment the job is cancelled.

use crate::job::JobError;
use crate::logsink::LogHandle;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
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
            stop_group(pid).await;
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

/// Sends SIGKILL to the process group led by `pid`. Returns at once: the
/// kernel takes the members down when each is next scheduled.
pub fn kill_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        if pid > 0 {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// How long [`stop_group`] waits for the group's members to be gone.
const GROUP_EXIT_WAIT: Duration = Duration::from_secs(2);

/// Kills the process group led by `pid` and waits until none of its members
/// runs any more (zombies left for their parent to reap do not count), so
/// that a cancelled job has really stopped when the cancel returns: a
/// grandchild (git's remote helper, ssh) that got SIGKILL but was not yet
/// scheduled would otherwise still be running, holding its sockets.
pub async fn stop_group(pid: u32) {
    kill_group(pid);
    let Ok(group) = i32::try_from(pid) else {
        return;
    };
    let deadline = tokio::time::Instant::now() + GROUP_EXIT_WAIT;
    while group_has_running_member(group) && tokio::time::Instant::now() < deadline {
        kill_group(pid);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Whether a process of group `group` is alive (not a zombie), from `/proc`.
fn group_has_running_member(group: i32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        let is_pid = entry
            .file_name()
            .to_str()
            .is_some_and(|name| !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()));
        if !is_pid {
            return false;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        // The command name may hold spaces and parentheses: the fields after
        // the last ')' are state, ppid, pgrp, ...
        let Some(close) = stat.rfind(')') else {
            return false;
        };
        let mut fields = stat[close + 1..].split_whitespace();
        let state = fields.next().unwrap_or("Z");
        let pgrp = fields.nth(1).and_then(|g| g.parse::<i32>().ok());
        pgrp == Some(group) && state != "Z" && state != "X"
    })
}

async fn pump(stream: impl AsyncRead + Unpin, logs: LogHandle, name: &'static str) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        logs.line(name, line).await;
    }
}
