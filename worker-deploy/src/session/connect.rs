//! Opening one persistent SSH session to an ssh target: the master of the
//! target's control socket (the engine's CLI commands of the background
//! loops are sessions on it), carrying the target's Caddy admin API here
//! (`-L`), the platform's registry there (`-R`), and the engine's API
//! socket here (a unix-socket forward added through the master with
//! `ssh -O forward`, once the session said where the socket is).
//!
//! The session's command starts the engine's API service: for podman,
//! `podman system service --time=0` on a socket in a private folder of its
//! own (`mktemp -d`), killed when the session's stdin closes, that is when
//! this end's ssh dies (killed, or the connection lost); for Docker the
//! daemon's socket (`DOCKER_HOST`, else `/var/run/docker.sock`) and a
//! command that only waits for stdin to close. The session prints the
//! socket's path as its first line.

use crate::engine::api::EngineApi;
use slipway_shared::db::targets::SshTarget;
use slipway_shared::ssh::{classify_failure, Mux, SshKeyFiles};
use slipway_shared::target::EngineKind;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};

/// How long a session gets to be up (connected, forwards open, the API
/// answering).
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// One live session: its ssh process (killed on drop) and what it carries.
pub struct Connection {
    process: Process,
    pub shared: Arc<Shared>,
}

/// The session's ssh process, killed on drop.
struct Process {
    child: tokio::process::Child,
    /// Kept open: its closing tells the remote service to stop.
    _stdin: Option<tokio::process::ChildStdin>,
    stderr: Arc<Mutex<Vec<String>>>,
}

/// What the background loops reach the target through while the session
/// is up (a round holds it; the key files go when the last holder does).
pub struct Shared {
    pub target: SshTarget,
    pub api: EngineApi,
    /// The port here of the target's Caddy admin API.
    pub caddy_port: u16,
    /// The port on the target's loopback that reaches the registry.
    pub registry_port: u16,
    pub files: SshKeyFiles,
}

impl Connection {
    /// The ssh process's id (what a test kills).
    pub fn pid(&self) -> Option<u32> {
        self.process.child.id()
    }

    /// Waits until the ssh process ends; says how.
    pub async fn ended(&mut self) -> String {
        let status = self.process.child.wait().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        format!("{status:?}: {}", last_lines(&self.process.stderr))
    }
}

impl Process {
    /// An error saying what failed, with ssh's last words.
    fn failed(&self, what: &str) -> anyhow::Error {
        let stderr = last_lines(&self.stderr);
        let (code, _) = classify_failure(&stderr);
        anyhow::anyhow!("{what} ({code}): {stderr}")
    }

    fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// The session's remote command (run by `sh -c`), named by its first word
/// in process lists (`ps` here and there).
fn remote_script(target: &SshTarget) -> String {
    let script = match target.engine() {
        EngineKind::Docker => concat!(
            "h=\"${DOCKER_HOST:-unix:///var/run/docker.sock}\"; ",
            "case \"$h\" in unix://*) echo \"${h#unix://}\";; ",
            "*) echo \"DOCKER_HOST is not a unix socket: $h\" >&2; exit 1;; esac; ",
            "exec cat >/dev/null"
        )
        .to_owned(),
        EngineKind::Podman => {
            let conf = match &target.settings.containers_conf {
                Some(conf) => format!("CONTAINERS_CONF={} ", shell_quote(conf)),
                None => String::new(),
            };
            format!(
                "set -e; d=$(mktemp -d /tmp/slipway-api-XXXXXX); \
                 {conf}podman system service --time=0 \"unix://$d/api.sock\" \
                 </dev/null >/dev/null 2>&1 & p=$!; echo \"$d/api.sock\"; \
                 cat >/dev/null || true; kill $p 2>/dev/null || true; rm -rf \"$d\""
            )
        }
    };
    format!(": {SESSION_MARK}; {script}")
}

/// The first word of every session's remote command.
pub const SESSION_MARK: &str = "slipway-engine-session";

fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

/// Connects: returns once the engine's API answers through the forward.
pub async fn connect(target: SshTarget, registry: &str) -> anyhow::Result<Connection> {
    let files = target.key_files()?;
    let dir: PathBuf = files
        .host
        .control_path
        .as_ref()
        .and_then(|p| p.parent())
        .map(Into::into)
        .ok_or_else(|| anyhow::anyhow!("the key files have no folder"))?;
    let local_socket = dir.join("api.sock");
    let caddy_port = free_port()?;
    let mut command = files.host.command_as(Mux::Master);
    command
        .args(["-o", "ExitOnForwardFailure=yes", "-o", "LogLevel=INFO"])
        .args(["-o", "StreamLocalBindUnlink=yes"])
        .arg("-L")
        .arg(format!(
            "127.0.0.1:{caddy_port}:{}",
            target.settings.caddy_admin
        ))
        .arg("-R")
        .arg(format!("127.0.0.1:0:{registry}"))
        .arg("--")
        .arg(&files.host.destination)
        .arg(format!("sh -c {}", shell_quote(&remote_script(&target))))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn()?;
    let stderr = Arc::new(Mutex::new(Vec::<String>::new()));
    if let Some(pipe) = child.stderr.take() {
        let lines = stderr.clone();
        // Drained for the session's life, keeping the last lines.
        tokio::spawn(async move {
            let mut reader = BufReader::new(pipe).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                let mut lines = lines.lock().unwrap_or_else(|e| e.into_inner());
                if lines.len() > 100 {
                    lines.drain(..50);
                }
                lines.push(line);
            }
        });
    }
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let mut process = Process {
        child,
        _stdin: stdin,
        stderr,
    };
    let deadline = Instant::now() + READY_TIMEOUT;
    // The session's first line: where the engine's socket is there.
    let mut stdout = BufReader::new(stdout.ok_or_else(|| anyhow::anyhow!("no stdout"))?).lines();
    let remote_socket = match tokio::time::timeout(READY_TIMEOUT, stdout.next_line()).await {
        Ok(Ok(Some(line))) if line.starts_with('/') => line,
        _ => {
            tokio::time::sleep(Duration::from_millis(50)).await;
            return Err(process.failed("the SSH session did not start"));
        }
    };
    // The rest of stdout is drained so the remote side never blocks.
    tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
    let registry_port = loop {
        if let Some(port) = allocated_port(&last_lines(&process.stderr), registry) {
            break port;
        }
        if process.exited() || Instant::now() > deadline {
            return Err(process.failed("the SSH session's forwards failed"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let host = &files.host;
    let forward = host
        .command_as(Mux::Client)
        .args(["-O", "forward", "-L"])
        .arg(format!("{}:{remote_socket}", local_socket.display()))
        .arg("--")
        .arg(&host.destination)
        .stdin(Stdio::null())
        .output()
        .await?;
    anyhow::ensure!(
        forward.status.success(),
        "forwarding the engine's socket {remote_socket}: {}",
        String::from_utf8_lossy(&forward.stderr).trim()
    );
    // The master made the local socket; the service may take a moment to
    // make its own.
    let api = EngineApi::unix(&local_socket)?;
    while api.ping().await.is_err() {
        if process.exited() || Instant::now() > deadline {
            return Err(process.failed("the engine's API does not answer through the SSH session"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(Connection {
        process,
        shared: Arc::new(Shared {
            target,
            api,
            caddy_port,
            registry_port,
            files,
        }),
    })
}

fn last_lines(lines: &Arc<Mutex<Vec<String>>>) -> String {
    lines
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .join("\n")
        .trim()
        .to_owned()
}

/// The port ssh reported for the remote forward to `addr`.
fn allocated_port(stderr: &str, addr: &str) -> Option<u16> {
    let suffix = format!(" for remote forward to {addr}");
    stderr.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("Allocated port ")?;
        let (n, tail) = rest.split_once(' ')?;
        (format!(" {tail}") == suffix).then(|| n.parse().ok())?
    })
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allocated_registry_port_is_read() {
        let stderr = "Warning: x\nAllocated port 40001 for remote forward to 127.0.0.1:5000\n";
        assert_eq!(allocated_port(stderr, "127.0.0.1:5000"), Some(40001));
        assert_eq!(allocated_port(stderr, "127.0.0.1:5001"), None);
    }

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(shell_quote("a'b"), "'a'\\''b'");
    }
}
