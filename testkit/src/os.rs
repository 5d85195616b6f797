//! Low-level process plumbing shared by the node, cluster and process
//! helpers: running a helper command with a deadline, and killing or
//! watching a whole process group.
//!
//! Liveness is decided by scanning `/proc` rather than `kill(pid, 0)`: PID 1
//! on these machines is not guaranteed to reap orphans, and a zombie still
//! answers signal 0 although it holds no ports, files or locks any more.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// Whether any live (non-zombie) process belongs to process group `pgid`.
///
/// Useful in tests to assert that killing a server left nothing behind.
pub fn process_group_alive(pgid: i32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<i32>().ok()) else {
            return false;
        };
        matches!(proc_state(pid), Some((state, group)) if group == pgid && state != 'Z' && state != 'X')
    })
}

/// `(state, pgid)` of a process from `/proc/PID/stat`, `None` if it is gone.
pub(crate) fn proc_state(pid: i32) -> Option<(char, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields after the
    // last ')' are the fixed-format ones (state, ppid, pgrp, ...).
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, pgrp))
}

/// Whether `pid` is a live (non-zombie) process.
pub(crate) fn pid_alive(pid: i32) -> bool {
    matches!(proc_state(pid), Some((state, _)) if state != 'Z' && state != 'X')
}

/// SIGKILL every process in group `pgid`, but only while the group still has
/// live members: an empty group's id could in principle be recycled.
pub(crate) fn kill_group(pgid: i32) {
    if pgid > 1 && process_group_alive(pgid) {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    }
}

/// Poll until group `pgid` has no live member; false on timeout.
pub(crate) async fn wait_group_gone(pgid: i32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while process_group_alive(pgid) {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// Poll until `pid` has left the process table entirely (a zombie counts as
/// present); false on timeout.
pub(crate) async fn wait_reaped(pid: i32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while proc_state(pid).is_some() {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// Blocking twin of [`wait_group_gone`] for `Drop` impls, which cannot await.
pub(crate) fn wait_group_gone_blocking(pgid: i32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while process_group_alive(pgid) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// Run a helper command (rabbitmqctl, pg_ctl, ...) to completion and return
/// its stdout; fail with its output if it exits non-zero or overruns
/// `timeout`. It gets its own process group so that an overrunning Erlang CLI
/// (a shell script exec'ing a VM that forks helpers) can be killed entirely.
pub(crate) async fn run(
    cmd: &mut tokio::process::Command,
    timeout: Duration,
) -> anyhow::Result<String> {
    let what = format!("{:?}", cmd.as_std());
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let child = cmd.spawn().with_context(|| format!("spawning {what}"))?;
    let pgid = child.id().map(|p| p as i32);
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(out) => {
            let out = out.with_context(|| format!("waiting for {what}"))?;
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            if !out.status.success() {
                bail!(
                    "{what} failed ({}):\nstdout: {}\nstderr: {}",
                    out.status,
                    stdout.trim(),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            Ok(stdout)
        }
        Err(_) => {
            if let Some(pgid) = pgid {
                kill_group(pgid);
            }
            bail!("{what} did not finish within {timeout:?}")
        }
    }
}

/// Last `n` lines of a text file, for assertion and error messages.
pub(crate) fn file_tail(path: &Path, n: usize) -> String {
    let text = match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => return format!("<cannot read {}: {e}>", path.display()),
    };
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
