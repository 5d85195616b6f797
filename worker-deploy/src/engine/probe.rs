//! What the listening check looks at, read on the engine's host (this one,
//! or an ssh target through the same session as every engine command):
//! the container's state and main PID from `inspect`, then that PID's
//! `/proc` files — the TCP tables of the container's network namespace and
//! the process's age. Not a connection to the published port: a port
//! forward or a userspace proxy accepts connections before the app does.
//!
//! The local engine, once its API service runs (the health monitor's and
//! the reconciler's engine), asks the API for the state and reads `/proc`
//! in-process: no child process per look, which is most of what an idle
//! app cost (two CLI processes per app every monitor round). A monitor
//! round looks at every container from one list of them (podman's own,
//! which has each one's main PID): no request per container either. Its
//! listeners come from the kernel's socket diagnostics in the container's
//! namespace rather than the `/proc` tables (see `health::sock_diag`).

use super::{says_missing, strings, ContainerInfo, Engine, EngineError, Host, COMMAND_TIMEOUT};
use crate::health::verdict::Observation;
use crate::health::{proc_net, sock_diag};

/// Prints each `/proc` file the check reads after a `==> NAME` marker; a
/// file that cannot be read (the process just exited) is left empty.
const READ_PROC: &str = r#"for f in uptime "$1/stat" "$1/net/tcp" "$1/net/tcp6"; do echo "==> $f"; cat "/proc/$f" 2>/dev/null; done"#;

impl Engine {
    /// One look at the container `name` for the listening check.
    pub async fn observe(&self, name: &str) -> Result<Observation, EngineError> {
        let local_api = self.local_api();
        let (state, pid, code) = match local_api {
            Some(api) => match api.state(name).await {
                Ok(Some((state, pid, code))) => (
                    state,
                    u32::try_from(pid).unwrap_or(0),
                    i32::try_from(code).unwrap_or(-1),
                ),
                Ok(None) => return Ok(Observation::Gone),
                Err(error) => {
                    return Err(EngineError::Failed {
                        command: format!("GET /containers/{name}/json"),
                        stderr: error.to_string(),
                    })
                }
            },
            None => match self.inspect_state(name).await? {
                Some(found) => found,
                None => return Ok(Observation::Gone),
            },
        };
        let pid = match running_pid(&state, pid, code) {
            Ok(pid) => pid,
            Err(observation) => return Ok(observation),
        };
        let files = if local_api.is_some() {
            return Ok(observe_local(pid, None));
        } else {
            let script = vec!["-c".into(), READ_PROC.into(), "sh".into(), pid.to_string()];
            let out = self
                .exec_program("sh", &script, &[], COMMAND_TIMEOUT)
                .await?;
            proc_files(&out.stdout)
        };
        Ok(running(&files))
    }

    /// The same look at `name` from a list of the engine's containers
    /// (see [`Engine::list_apps`]) and this host's `/proc`: no request per
    /// container. `None` when the list cannot tell (not this host's, or
    /// without PIDs): then [`Engine::observe`] looks.
    /// `port`: the app's port; when the IPv4 table shows it listened on a
    /// reachable address, the IPv6 one is not read (the verdict is the
    /// same; each table read walks the kernel's whole socket hash).
    pub fn observe_listed(
        &self,
        listed: &[ContainerInfo],
        name: &str,
        port: u16,
    ) -> Option<Observation> {
        if self.host != Host::Local {
            return None;
        }
        let Some(found) = listed.iter().find(|c| c.name == name) else {
            return Some(Observation::Gone);
        };
        let (pid, code) = found.process?;
        Some(match running_pid(&found.state, pid, code) {
            Ok(pid) => observe_local(pid, Some(port)),
            Err(observation) => observation,
        })
    }
}

/// The PID of a running container's main process, or what a container
/// that does not run is.
fn running_pid(state: &str, pid: u32, code: i32) -> Result<u32, Observation> {
    match state {
        "running" if pid > 0 => Ok(pid),
        "exited" | "stopped" | "dead" => Err(Observation::Exited { code }),
        other => Err(Observation::Other {
            state: other.to_owned(),
        }),
    }
}

/// A running container on this host: its age from `/proc`, its listeners
/// from the kernel's socket diagnostics (see [`sock_diag`]), or from its
/// `/proc` socket tables when this process may not enter its network
/// namespace (a rootless engine's, for a worker that is not its user).
fn observe_local(pid: u32, port: Option<u16>) -> Observation {
    match sock_diag::listening_in(pid) {
        Ok(listening) => {
            let read = |file: String| {
                let text = std::fs::read_to_string(format!("/proc/{file}")).unwrap_or_default();
                (file, text)
            };
            let files = [read("uptime".to_owned()), read(format!("{pid}/stat"))];
            running_with(&files, listening)
        }
        Err(error) => {
            tracing::debug!(pid, %error, "socket diagnostics unavailable; reading the /proc tables");
            running(&read_proc(pid, port))
        }
    }
}

/// The text of the file whose name ends with `suffix`, or "".
fn file<'a>(files: &'a [(String, String)], suffix: &str) -> &'a str {
    files
        .iter()
        .find(|(name, _)| name.ends_with(suffix))
        .map_or("", |(_, text)| text.as_str())
}

/// A running container's observation from its `/proc` files (see
/// [`READ_PROC`]).
fn running(files: &[(String, String)]) -> Observation {
    let mut listening = proc_net::listening(file(files, "/net/tcp"));
    listening.extend(proc_net::listening(file(files, "/net/tcp6")));
    running_with(files, listening)
}

/// A running container's observation from its `/proc` age files and the
/// sockets it listens on.
fn running_with(files: &[(String, String)], listening: Vec<std::net::SocketAddr>) -> Observation {
    let Some(age) = proc_net::process_age(file(files, "uptime"), file(files, "/stat")) else {
        // The process went away between the inspect and the read.
        return Observation::Other {
            state: "exiting".into(),
        };
    };
    Observation::Running { age, listening }
}

impl Engine {
    /// `(state, pid, exit code)` from the CLI's `inspect`; `None`: no
    /// such container.
    async fn inspect_state(&self, name: &str) -> Result<Option<(String, u32, i32)>, EngineError> {
        let args = strings(&[
            "container",
            "inspect",
            "--format",
            "{{.State.Status}} {{.State.Pid}} {{.State.ExitCode}}",
            name,
        ]);
        let out = self.exec(&args, &[], COMMAND_TIMEOUT).await?;
        if !out.success {
            if says_missing(&out.stderr) {
                return Ok(None);
            }
            return Err(self.failed(&args, &out));
        }
        let bad_output = || EngineError::BadOutput {
            command: format!("{} {}", self.program(), args.join(" ")),
            detail: format!("expected STATUS PID EXITCODE, got {:?}", out.stdout.trim()),
        };
        let mut fields = out.stdout.split_whitespace();
        let (Some(state), Some(pid), Some(code)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(bad_output());
        };
        match (pid.parse(), code.parse()) {
            (Ok(pid), Ok(code)) => Ok(Some((state.to_owned(), pid, code))),
            _ => Err(bad_output()),
        }
    }
}

/// The files [`READ_PROC`] prints, read here; a file that cannot be read
/// (the process just exited) is left empty. With `port`, the socket tables
/// are read only as far as a reachable listener on it (see
/// [`read_to_listener`]), and the IPv6 one not at all after one in IPv4.
fn read_proc(pid: u32, port: Option<u16>) -> Vec<(String, String)> {
    let read = |file: String| {
        let text = std::fs::read_to_string(format!("/proc/{file}")).unwrap_or_default();
        (file, text)
    };
    let table = |file: String| match port {
        Some(port) => {
            let (text, found) = read_to_listener(&format!("/proc/{file}"), port);
            ((file, text), found)
        }
        None => (read(file), false),
    };
    let (tcp, found) = table(format!("{pid}/net/tcp"));
    let tcp6 = match found {
        true => (format!("{pid}/net/tcp6"), String::new()),
        false => table(format!("{pid}/net/tcp6")).0,
    };
    vec![
        read("uptime".to_owned()),
        read(format!("{pid}/stat")),
        tcp,
        tcp6,
    ]
}

/// A socket table's lines up to the first listener on `port` at a
/// reachable address, and whether there was one (else the whole table).
/// The kernel lists listening sockets first and makes each read's lines
/// only as far as the read asks: small reads that stop at the listener
/// never reach the established sockets, whose walk goes through the
/// whole host's socket hash however few the container has (most of an
/// idle monitor round's CPU when the tables were read whole).
fn read_to_listener(path: &str, port: u16) -> (String, bool) {
    use std::io::BufRead;
    let Ok(file) = std::fs::File::open(path) else {
        return (String::new(), false);
    };
    let mut lines = std::io::BufReader::with_capacity(256, file);
    let mut text = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        match lines.read_line(&mut line) {
            Ok(0) | Err(_) => return (text, false),
            Ok(_) => {}
        }
        text.push_str(&line);
        let reachable = proc_net::listening(&line)
            .iter()
            .any(|s| s.port() == port && !s.ip().is_loopback() && !is_v6_loopback(s));
        if reachable {
            return (text, true);
        }
    }
}

/// `::1` and `::ffff:127.x.y.z` (`is_loopback` on an IPv6 address knows
/// only the first).
fn is_v6_loopback(socket: &std::net::SocketAddr) -> bool {
    match socket.ip() {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        std::net::IpAddr::V4(_) => false,
    }
}

/// Splits [`READ_PROC`]'s output into `(file, text)`.
fn proc_files(stdout: &str) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = Vec::new();
    for line in stdout.lines() {
        match (line.strip_prefix("==> "), files.last_mut()) {
            (Some(name), _) => files.push((name.to_owned(), String::new())),
            (None, Some((_, text))) => {
                text.push_str(line);
                text.push('\n');
            }
            (None, None) => {}
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_output_is_split_by_file() {
        let out = "==> uptime\n12.0 3.0\n==> 42/stat\n42 (x) S\n==> 42/net/tcp\n  sl local\n   0: row\n==> 42/net/tcp6\n";
        let files = proc_files(out);
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["uptime", "42/stat", "42/net/tcp", "42/net/tcp6"]);
        assert_eq!(files[2].1, "  sl local\n   0: row\n");
        assert_eq!(files[3].1, "");
    }
}
