//! Running one engine command for a job: through `clean_command` and
//! `run_logged` (own process group, clean environment, every line to the
//! job's logs, killed on cancel), with a time limit, and with a copy of the
//! output kept so that a failure can quote its last lines.
//!
//! The engine runs as PID 1 of a fresh PID namespace (`unshare --pid
//! --kill-child`): a `RUN` step's container is started by runc in a session
//! of its own, out of reach of the process-group kill, but the kernel kills
//! every process of a PID namespace (nested ones included) when its first
//! process dies. `--mount-proc` gives runc the `/proc` of that namespace, and
//! the private mount namespace takes the build's mounts away with it.
//!
//! That mount namespace also hides the host's registries.conf drop-ins
//! (Debian's `shortnames.conf` aliases `centos` to quay.io, `fedora` to
//! registry.fedoraproject.org): the build's short names go through
//! Slipway's search registries only, as Docker's would. The bind mount is
//! private to the build; the host's files are untouched.

use slipway_shared::job::JobError;
use slipway_shared::logsink::LogHandle;
use slipway_shared::process::{clean_command, run_logged};
use std::path::Path;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Lines of output quoted in a failure's message.
pub const TAIL_LINES: usize = 20;

/// What a finished command left behind.
pub struct Outcome {
    pub success: bool,
    pub code: Option<i32>,
    /// The last `TAIL_LINES` lines of stdout and stderr.
    pub tail: String,
}

/// How a command ended other than by finishing.
pub enum Stopped {
    Cancelled,
    TimedOut,
    Failed(JobError),
}

const HIDE_REGISTRIES_D: &str = r#"d=/etc/containers/registries.conf.d; c=/var/cache/containers/short-name-aliases.conf
if [ -d "$d" ]; then mount --bind "$0" "$d" || exit 125; fi
if [ -f "$c" ]; then mount --bind /dev/null "$c" || exit 125; fi
exec "$@""#;

pub struct Invocation<'a> {
    pub argv: Vec<String>,
    /// Variables besides the clean defaults (CONTAINERS_CONF, build-arg values).
    pub env: Vec<(String, String)>,
    /// Where the copy of the output goes (inside the build's work dir).
    pub transcript: &'a Path,
    /// Run the engine in its own PID namespace (buildah and podman).
    pub own_pid_namespace: bool,
    /// An empty dir mounted over `/etc/containers/registries.conf.d` for
    /// this command (only with `own_pid_namespace`, which brings the mount
    /// namespace).
    pub hide_registries_d_with: Option<&'a Path>,
    pub time_limit: Duration,
}

pub async fn run(
    invocation: Invocation<'_>,
    logs: &LogHandle,
    cancel: &CancellationToken,
) -> Result<Outcome, Stopped> {
    let mut argv: Vec<String> = Vec::new();
    if invocation.own_pid_namespace {
        argv.extend(
            ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc"].map(String::from),
        );
        if let Some(empty) = invocation.hide_registries_d_with {
            // exec keeps the engine PID 1 of the namespace. Without the
            // drop-in dir there is nothing to hide; the alias cache is
            // hidden too where it exists.
            argv.extend([
                "sh".to_string(),
                "-c".to_string(),
                HIDE_REGISTRIES_D.to_string(),
                empty.display().to_string(),
            ]);
        }
    }
    argv.extend(invocation.argv);
    // bash hands the output to two `tee`s in sessions of their own, then
    // execs the engine (so its exit status is the command's). The tees are
    // outside the process group on purpose: run_logged kills the group as
    // soon as the engine exits, and they must still copy the last lines,
    // which say why a build failed; they end by themselves at EOF.
    let mut command = clean_command("bash");
    command
        .arg("-c")
        .arg(
            r#"t="$1"; shift; exec > >(exec setsid tee -a "$t") 2> >(exec setsid tee -a "$t" >&2); exec "$@""#,
        )
        .arg("slipway-build")
        .arg(invocation.transcript)
        .args(&argv);
    for (name, value) in &invocation.env {
        command.env(name, value);
    }
    let inner = cancel.child_token();
    let timer = {
        let inner = inner.clone();
        let limit = invocation.time_limit;
        tokio::spawn(async move {
            tokio::time::sleep(limit).await;
            inner.cancel();
        })
    };
    let finished = run_logged(command, logs, &inner).await;
    timer.abort();
    let finished = match finished {
        Ok(finished) => finished,
        Err(JobError::Cancelled) if cancel.is_cancelled() => return Err(Stopped::Cancelled),
        Err(JobError::Cancelled) => return Err(Stopped::TimedOut),
        Err(other) => return Err(Stopped::Failed(other)),
    };
    Ok(Outcome {
        success: finished.status.success(),
        code: finished.status.code(),
        tail: tail(invocation.transcript, TAIL_LINES).await,
    })
}

/// The last `n` lines of a transcript. The tees may still be writing the
/// final lines when the engine has exited, so a moment is allowed for that.
async fn tail(path: &Path, n: usize) -> String {
    let mut previous = None;
    for _ in 0..10 {
        let len = tokio::fs::metadata(path).await.map(|m| m.len()).ok();
        if len.is_some() && len == previous {
            break;
        }
        previous = len;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let bytes = tokio::fs::read(path).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
