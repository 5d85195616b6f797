//! An `ssh -N` process holding port forwards to and from a target for as
//! long as a job needs them, killed on drop.
//!
//! Local forwards (`-L`) make an address on the target (its Caddy admin
//! API, a release's loopback port) reachable here on a 127.0.0.1 port, so
//! the worker's own HTTP client drives them — the same code as on the
//! local target, and no curl needed on the server. Remote forwards (`-R`)
//! make an address here (the platform's registry) reachable on the
//! target's loopback, on a port sshd picks (`-R 127.0.0.1:0:…`, reported
//! by ssh as "Allocated port N"), so the target pulls the image through the
//! SSH connection and the registry never has to be exposed.

use super::{classify_failure, Mux, SshHost};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};

const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// A local port picked by a bind probe may be taken before ssh binds it.
const ATTEMPTS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    #[error("cannot start ssh: {0}")]
    Spawn(std::io::Error),
    #[error("ssh to {destination} failed: {stderr}")]
    Failed {
        destination: String,
        code: &'static str,
        retryable: bool,
        stderr: String,
    },
    #[error("the SSH forwards to {destination} were not ready within {READY_TIMEOUT:?}: {stderr}")]
    NotReady { destination: String, stderr: String },
}

impl TunnelError {
    pub fn code(&self) -> &'static str {
        match self {
            TunnelError::Spawn(_) => "ssh_unavailable",
            TunnelError::Failed { code, .. } => code,
            TunnelError::NotReady { .. } => "tunnel_not_ready",
        }
    }

    pub fn is_retryable(&self) -> bool {
        match self {
            TunnelError::Spawn(_) => false,
            TunnelError::Failed { retryable, .. } => *retryable,
            TunnelError::NotReady { .. } => true,
        }
    }

    pub fn into_job_error(self) -> crate::job::JobError {
        if self.is_retryable() {
            crate::job::JobError::Retryable(format!("{}: {self}", self.code()))
        } else {
            crate::job::JobError::permanent(self.code(), self.to_string())
        }
    }
}

pub struct Tunnel {
    child: tokio::process::Child,
    local_ports: Vec<u16>,
    remote_ports: Vec<u16>,
}

impl Tunnel {
    /// Opens forwards: each of `to_target` (`HOST:PORT` as the target sees
    /// it) on a 127.0.0.1 port here, each of `to_here` (`HOST:PORT` as this
    /// host sees it) on a 127.0.0.1 port of the target. Returns once all
    /// of them accept connections.
    pub async fn open(
        host: &SshHost,
        to_target: &[String],
        to_here: &[String],
    ) -> Result<Tunnel, TunnelError> {
        Self::open_as(host, to_target, to_here, Mux::Off).await
    }

    /// [`Tunnel::open`] whose connection is also the master of the host's
    /// control socket: the host's other commands share it while it runs.
    pub async fn open_master(
        host: &SshHost,
        to_target: &[String],
        to_here: &[String],
    ) -> Result<Tunnel, TunnelError> {
        Self::open_as(host, to_target, to_here, Mux::Master).await
    }

    async fn open_as(
        host: &SshHost,
        to_target: &[String],
        to_here: &[String],
        mux: Mux,
    ) -> Result<Tunnel, TunnelError> {
        let mut last = None;
        for _ in 0..ATTEMPTS {
            match Self::try_open(host, to_target, to_here, mux).await {
                Ok(tunnel) => return Ok(tunnel),
                Err(TunnelError::Failed { stderr, .. })
                    if stderr.contains("local port forwarding failed")
                        || stderr.contains("cannot listen to port") =>
                {
                    last = Some(stderr);
                }
                Err(e) => return Err(e),
            }
        }
        Err(TunnelError::Failed {
            destination: host.destination.clone(),
            code: "tunnel_failed",
            retryable: true,
            stderr: last.unwrap_or_default(),
        })
    }

    /// The port here that reaches `to_target[i]`.
    pub fn local_port(&self, i: usize) -> u16 {
        self.local_ports[i]
    }

    /// The port on the target's loopback that reaches `to_here[i]`.
    pub fn remote_port(&self, i: usize) -> u16 {
        self.remote_ports[i]
    }

    async fn try_open(
        host: &SshHost,
        to_target: &[String],
        to_here: &[String],
        mux: Mux,
    ) -> Result<Tunnel, TunnelError> {
        let mut local_ports = Vec::with_capacity(to_target.len());
        let mut command = host.command_as(mux);
        command.args([
            "-N",
            "-o",
            "ExitOnForwardFailure=yes",
            "-o",
            "LogLevel=INFO",
        ]);
        for addr in to_target {
            let port = free_port().map_err(TunnelError::Spawn)?;
            local_ports.push(port);
            command.arg("-L").arg(format!("127.0.0.1:{port}:{addr}"));
        }
        for addr in to_here {
            command.arg("-R").arg(format!("127.0.0.1:0:{addr}"));
        }
        command
            .arg("--")
            .arg(&host.destination)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(TunnelError::Spawn)?;
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        if let Some(stderr) = child.stderr.take() {
            let lines = lines.clone();
            // Drains ssh's stderr for the tunnel's whole life, so a chatty
            // ssh never blocks on a full pipe; keeps the last lines.
            tokio::spawn(async move {
                let mut reader = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    let mut lines = lines.lock().unwrap_or_else(|e| e.into_inner());
                    if lines.len() > 200 {
                        lines.drain(..100);
                    }
                    lines.push(line);
                }
            });
        }
        let text = |lines: &Arc<Mutex<Vec<String>>>| {
            lines.lock().unwrap_or_else(|e| e.into_inner()).join("\n")
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        let remote_ports = loop {
            if let Ok(Some(_status)) = child.try_wait() {
                // Let the reader catch ssh's last words.
                tokio::time::sleep(Duration::from_millis(50)).await;
                let stderr = text(&lines);
                let (code, retryable) = classify_failure(&stderr);
                return Err(TunnelError::Failed {
                    destination: host.destination.clone(),
                    code,
                    retryable,
                    stderr: stderr.trim().to_owned(),
                });
            }
            let found = allocated_ports(&text(&lines), to_here);
            if let Some(ports) = found {
                if all_accept(&local_ports).await && master_listens(host, mux) {
                    break ports;
                }
            }
            if Instant::now() > deadline {
                return Err(TunnelError::NotReady {
                    destination: host.destination.clone(),
                    stderr: text(&lines),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        Ok(Tunnel {
            child,
            local_ports,
            remote_ports,
        })
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// The ports ssh reported for each remote forward ("Allocated port N for
/// remote forward to HOST:PORT"), once all are there.
fn allocated_ports(stderr: &str, to_here: &[String]) -> Option<Vec<u16>> {
    to_here
        .iter()
        .map(|addr| {
            let (host, port) = addr.rsplit_once(':')?;
            let suffix = format!(" for remote forward to {host}:{port}");
            stderr.lines().find_map(|line| {
                let rest = line.trim().strip_prefix("Allocated port ")?;
                let (n, tail) = rest.split_once(' ')?;
                (format!(" {tail}") == suffix).then(|| n.parse().ok())?
            })
        })
        .collect()
}

/// Whether a master serves its control socket yet (so the host's next
/// command shares its connection instead of making one of its own; a
/// master with no forwards is ready only then).
fn master_listens(host: &SshHost, mux: Mux) -> bool {
    match (&host.control_path, mux) {
        (Some(path), Mux::Master) => path.exists(),
        _ => true,
    }
}

/// Whether ssh listens on every local forward's port yet.
async fn all_accept(ports: &[u16]) -> bool {
    for port in ports {
        let connect = tokio::net::TcpStream::connect(("127.0.0.1", *port));
        if !matches!(
            tokio::time::timeout(Duration::from_millis(500), connect).await,
            Ok(Ok(_))
        ) {
            return false;
        }
    }
    true
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[cfg(test)]
mod tests {
    use super::allocated_ports;

    #[test]
    fn allocated_ports_are_read_from_ssh_messages() {
        let stderr = "Allocated port 41235 for remote forward to 127.0.0.1:5000\n";
        assert_eq!(
            allocated_ports(stderr, &["127.0.0.1:5000".into()]),
            Some(vec![41235])
        );
        assert_eq!(allocated_ports(stderr, &["127.0.0.1:5001".into()]), None);
        assert_eq!(allocated_ports("", &[]), Some(vec![]));
    }
}
