//! Driving the container engine (podman's CLI, or Docker's on an ssh target
//! that has only Docker) for an app's releases: pull an image by digest,
//! run a release on a fresh loopback port, stop, remove, inspect, tail its
//! logs and list what runs under a label. The two CLIs take the same `run`,
//! `port`, `logs` and `inspect` words; where they differ (podman's
//! `--ignore` and `--tls-verify`, `ps` output) [`EngineKind`] decides.
//!
//! Commands go through a [`Host`]: the same engine commands run on the
//! Slipway host ([`Host::Local`]) or on a server reached over SSH
//! ([`Host::Ssh`], as Kamal does). Every command has a time limit and a
//! clean environment (only `CONTAINERS_CONF` of the platform's own variables
//! reaches podman; none reaches Docker).
//!
//! An app's environment reaches podman as `--env NAME` with the value in
//! podman's own environment, never in its argv, so secrets do not show up in
//! `ps` or in error messages. Over SSH the command and its environment travel
//! as a script on ssh's stdin (`sh -s`), never on ssh's command line.

pub mod api;
pub mod book;
mod docker;
pub mod events;
mod host;
mod probe;
pub mod service;
mod volumes;

pub use host::{Host, SshHost};

use host::SSH_FAILED;
use serde::Deserialize;
use slipway_shared::job::JobError;
pub use slipway_shared::target::EngineKind;
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

/// Label holding the app id on every release container.
pub const LABEL_APP: &str = "io.slipway.app";
/// Label holding the release id on every release container.
pub const LABEL_RELEASE: &str = "io.slipway.release";
/// The port an app listens on inside its container unless it says otherwise.
pub const DEFAULT_CONTAINER_PORT: u16 = 8080;

/// The engine's cap on one container's log file.
const LOG_MAX_SIZE: &str = "10m";
const PULL_TIMEOUT: Duration = Duration::from_secs(600);
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// A port picked by the bind probe can be taken before podman binds it.
const PORT_ATTEMPTS: usize = 3;
/// Names the engine's CLI itself reads from its environment (which daemon
/// or service, which config); an app variable with such a name goes into
/// the argv instead, so it cannot redirect the command.
const RESERVED_ENV: [&str; 12] = [
    "PATH",
    "HOME",
    "LANG",
    "CONTAINERS_CONF",
    "TMPDIR",
    "CONTAINER_HOST",
    "CONTAINER_CONNECTION",
    "DOCKER_HOST",
    "DOCKER_CONTEXT",
    "DOCKER_CONFIG",
    "DOCKER_API_VERSION",
    "DOCKER_TLS_VERIFY",
];

/// One container engine on one host.
#[derive(Debug, Clone)]
pub struct Engine {
    host: Host,
    kind: EngineKind,
    containers_conf: Option<PathBuf>,
    /// The local engine's API, once its service runs: the listening check
    /// looks through it (and reads `/proc` in-process) instead of the CLI.
    api: Option<api::EngineApi>,
}

/// What to run for one release.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    /// Container name, unique on the host.
    pub name: String,
    /// `REGISTRY/REPO@sha256:...`, pulled beforehand with [`Engine::pull`].
    pub image: String,
    /// The app's variables. `PORT` is always set to `container_port`.
    pub env: Vec<(String, String)>,
    pub container_port: u16,
    /// `None`: a free port on 127.0.0.1 is chosen.
    pub host_port: Option<u16>,
    /// A podman `--memory` value such as `256m`.
    pub memory: Option<String>,
    /// A podman `--cpus` value such as `0.5`.
    pub cpus: Option<f64>,
    pub labels: Vec<(String, String)>,
    /// Overrides the image's command when not empty.
    pub command: Vec<String>,
    /// Named volumes and where they are mounted (`-v NAME:PATH`), handed
    /// to the image's user (see `volumes`).
    pub volumes: Vec<(String, String)>,
    /// podman's `--network` mode, when not the default.
    pub network: Option<String>,
}

impl ContainerSpec {
    /// The spec of one release of an app: named
    /// `slipway-<app>-<release>` (the last 12 hex digits of each id, which
    /// are random in v4 and v7 ids alike), labelled with both ids, listening
    /// on [`DEFAULT_CONTAINER_PORT`].
    pub fn for_release(app_id: Uuid, release_id: Uuid, image: impl Into<String>) -> Self {
        ContainerSpec {
            name: format!("slipway-{}-{}", short(app_id), short(release_id)),
            image: image.into(),
            env: Vec::new(),
            container_port: DEFAULT_CONTAINER_PORT,
            host_port: None,
            memory: None,
            cpus: None,
            labels: vec![
                (LABEL_APP.into(), app_id.to_string()),
                (LABEL_RELEASE.into(), release_id.to_string()),
            ],
            command: Vec::new(),
            volumes: Vec::new(),
            network: None,
        }
    }
}

fn short(id: Uuid) -> String {
    let simple = id.simple().to_string();
    simple[simple.len() - 12..].to_string()
}

/// A started container.
#[derive(Debug, Clone)]
pub struct RunningContainer {
    pub name: String,
    pub id: String,
    /// Published on 127.0.0.1 of the engine's host.
    pub host_port: u16,
    pub container_port: u16,
    /// How long `podman run -d` took.
    pub start_time: Duration,
}

/// One container as `list` sees it.
#[derive(Debug, Clone)]
pub struct ContainerInfo {
    pub name: String,
    pub id: String,
    pub image: String,
    /// podman's state word: `running`, `exited`, `created`, ...
    pub state: String,
    pub labels: BTreeMap<String, String>,
    /// The first port published on the host, if any.
    pub host_port: Option<u16>,
    /// The main process's PID (0 when not running) and the last exit
    /// code, as podman's own list shows them; `None` from Docker's.
    pub process: Option<(u32, i32)>,
}

impl ContainerInfo {
    pub fn is_running(&self) -> bool {
        self.state == "running"
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot reach {destination} over SSH: {stderr}")]
    HostUnreachable { destination: String, stderr: String },
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("`{command}` did not finish within {timeout:?}")]
    TimedOut { command: String, timeout: Duration },
    #[error("pulling {reference} failed: {output}")]
    PullFailed {
        reference: String,
        /// False when the registry answered that the image does not exist
        /// or refused access: another attempt fails the same way.
        retryable: bool,
        output: String,
    },
    #[error("starting container {name} failed: {stderr}")]
    StartFailed { name: String, stderr: String },
    #[error("invalid container spec: {0}")]
    InvalidSpec(String),
    #[error("no free port on 127.0.0.1: {0}")]
    NoFreePort(std::io::Error),
    #[error("`{command}` failed: {stderr}")]
    Failed { command: String, stderr: String },
    #[error("unexpected output from `{command}`: {detail}")]
    BadOutput { command: String, detail: String },
}

impl EngineError {
    /// A stable code for API answers and logs.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::HostUnreachable { .. } => "host_unreachable",
            EngineError::Spawn { .. } => "engine_unavailable",
            EngineError::TimedOut { .. } => "engine_timeout",
            EngineError::PullFailed { .. } => "image_pull_failed",
            EngineError::StartFailed { .. } => "container_start_failed",
            EngineError::InvalidSpec(_) => "invalid_container_spec",
            EngineError::NoFreePort(_) => "no_free_port",
            EngineError::Failed { .. } | EngineError::BadOutput { .. } => "engine_failed",
        }
    }

    pub fn is_retryable(&self) -> bool {
        match self {
            EngineError::PullFailed { retryable, .. } => *retryable,
            EngineError::Spawn { .. }
            | EngineError::StartFailed { .. }
            | EngineError::InvalidSpec(_) => false,
            EngineError::TimedOut { .. }
            | EngineError::HostUnreachable { .. }
            | EngineError::NoFreePort(_)
            | EngineError::Failed { .. }
            | EngineError::BadOutput { .. } => true,
        }
    }

    pub fn into_job_error(self) -> JobError {
        if self.is_retryable() {
            JobError::Retryable(format!("{}: {self}", self.code()))
        } else {
            JobError::permanent(self.code(), self.to_string())
        }
    }
}

impl From<EngineError> for JobError {
    fn from(e: EngineError) -> Self {
        e.into_job_error()
    }
}

struct Output {
    success: bool,
    stdout: String,
    stderr: String,
}

impl Engine {
    /// podman on this host, with `CONTAINERS_CONF` pointing at
    /// `containers_conf` when given.
    pub fn local(containers_conf: Option<PathBuf>) -> Engine {
        Engine {
            host: Host::Local,
            kind: EngineKind::Podman,
            containers_conf,
            api: None,
        }
    }

    /// This local engine, looking at containers through `api` (see
    /// `probe`).
    pub fn with_api(self, api: api::EngineApi) -> Engine {
        Engine {
            api: Some(api),
            ..self
        }
    }

    /// `kind` on a server reached over SSH; `containers_conf` (podman's) is
    /// a path on that server.
    pub fn ssh(host: SshHost, kind: EngineKind, containers_conf: Option<PathBuf>) -> Engine {
        Engine {
            host: Host::Ssh(host),
            kind,
            containers_conf: containers_conf.filter(|_| kind == EngineKind::Podman),
            api: None,
        }
    }

    pub fn kind(&self) -> EngineKind {
        self.kind
    }

    fn program(&self) -> &'static str {
        self.kind.as_str()
    }

    fn is_docker(&self) -> bool {
        self.kind == EngineKind::Docker
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    /// Pulls `reference` (by digest) unless it is already present; returns
    /// how long that took. Errors: `image_pull_failed`, permanent when the
    /// registry says the manifest or repository is unknown or access is
    /// denied, retryable otherwise (registry unreachable, timeouts).
    /// Docker has no `--tls-verify`: its daemon trusts a registry on
    /// loopback (where an ssh target's forward to the registry is) without
    /// TLS by itself.
    pub async fn pull(&self, reference: &str, tls_verify: bool) -> Result<Duration, EngineError> {
        let started = Instant::now();
        let mut args = strings(&["pull", "--quiet"]);
        if !self.is_docker() {
            args.push(format!("--tls-verify={tls_verify}"));
        }
        args.push(reference.to_owned());
        let out = self.exec(&args, &[], PULL_TIMEOUT).await?;
        if !out.success {
            return Err(EngineError::PullFailed {
                reference: reference.into(),
                retryable: pull_failure_is_retryable(&out.stderr),
                output: out.stderr.trim().to_string(),
            });
        }
        Ok(started.elapsed())
    }

    /// Starts the container detached, with `--init` so the app gets SIGTERM
    /// on stop, the image never pulled implicitly. A container of the same
    /// name must not exist. On failure nothing of it is left behind.
    pub async fn run(&self, spec: &ContainerSpec) -> Result<RunningContainer, EngineError> {
        validate(spec)?;
        self.own_volumes(&spec.image, &spec.volumes).await?;
        let mut last_stderr = String::new();
        // On a remote host a port free here says nothing: podman picks one
        // there and says which.
        let remote = matches!(self.host, Host::Ssh(_));
        for _ in 0..PORT_ATTEMPTS {
            let host_port = match spec.host_port {
                Some(port) => Some(port),
                None if remote => None,
                None => Some(free_port().map_err(EngineError::NoFreePort)?),
            };
            let (args, env) = run_argv(self.kind, spec, host_port);
            let started = Instant::now();
            let out = self.exec(&args, &env, RUN_TIMEOUT).await?;
            if out.success {
                let host_port = match host_port {
                    Some(port) => port,
                    None => match self.published_port(&spec.name, spec.container_port).await {
                        Ok(port) => port,
                        Err(error) => {
                            let _ = self.remove(&spec.name).await;
                            return Err(error);
                        }
                    },
                };
                return Ok(RunningContainer {
                    name: spec.name.clone(),
                    id: out.stdout.trim().to_string(),
                    host_port,
                    container_port: spec.container_port,
                    start_time: started.elapsed(),
                });
            }
            // A failed `run` may leave a created container holding the name.
            if !out.stderr.contains("already in use") {
                let _ = self.remove(&spec.name).await;
            }
            last_stderr = out.stderr.trim().to_string();
            let port_taken = last_stderr.contains("address already in use");
            if !(port_taken && spec.host_port.is_none()) {
                break;
            }
        }
        Err(EngineError::StartFailed {
            name: spec.name.clone(),
            stderr: last_stderr,
        })
    }

    /// The loopback port podman published `container_port` of `name` on.
    pub async fn published_port(
        &self,
        name: &str,
        container_port: u16,
    ) -> Result<u16, EngineError> {
        let args = strings(&["port", name, &format!("{container_port}/tcp")]);
        let stdout = self.exec_ok(&args, COMMAND_TIMEOUT).await?;
        stdout
            .lines()
            .find_map(|line| line.trim().rsplit_once(':')?.1.parse::<u16>().ok())
            .ok_or_else(|| EngineError::BadOutput {
                command: format!("{} {}", self.program(), args.join(" ")),
                detail: format!("no port in {stdout:?}"),
            })
    }

    /// Stops the container, giving the app `grace` after SIGTERM before it
    /// is killed. A missing container is not an error.
    pub async fn stop(&self, name: &str, grace: Duration) -> Result<(), EngineError> {
        let secs = grace.as_secs() + u64::from(grace.subsec_nanos() > 0);
        // `-t`: Docker's newer CLIs call `--time` `--timeout`.
        let args = if self.is_docker() {
            strings(&["stop", "-t", &secs.to_string(), name])
        } else {
            strings(&["stop", "--ignore", "--time", &secs.to_string(), name])
        };
        self.exec_ok_unless_missing(&args, COMMAND_TIMEOUT + grace)
            .await
    }

    /// Starts a stopped container again, as it was created (same port,
    /// env and limits).
    pub async fn start(&self, name: &str) -> Result<(), EngineError> {
        let args = strings(&["start", name]);
        self.exec_ok(&args, RUN_TIMEOUT).await.map(drop)
    }

    /// Starts a stopped container and returns the loopback port its
    /// `container_port` is published on now: podman keeps the port it
    /// picked at creation, Docker picks a new one on every start.
    pub async fn start_published(
        &self,
        name: &str,
        container_port: u16,
    ) -> Result<u16, EngineError> {
        self.start(name).await?;
        self.published_port(name, container_port).await
    }

    /// Removes the container, killing it if it still runs. A missing
    /// container is not an error.
    pub async fn remove(&self, name: &str) -> Result<(), EngineError> {
        let args = if self.is_docker() {
            strings(&["rm", "--force", name])
        } else {
            strings(&["rm", "--force", "--ignore", "--time", "0", name])
        };
        self.exec_ok_unless_missing(&args, COMMAND_TIMEOUT).await
    }

    /// Whether a container of that name exists and runs.
    pub async fn is_running(&self, name: &str) -> Result<bool, EngineError> {
        let args = strings(&[
            "container",
            "inspect",
            "--format",
            "{{.State.Running}}",
            name,
        ]);
        let out = self.exec(&args, &[], COMMAND_TIMEOUT).await?;
        if !out.success {
            if says_missing(&out.stderr) {
                return Ok(false);
            }
            return Err(self.failed(&args, &out));
        }
        Ok(out.stdout.trim() == "true")
    }

    /// The last `lines` lines the container printed (its stdout, then its
    /// stderr: podman keeps them apart).
    pub async fn logs_tail(&self, name: &str, lines: usize) -> Result<Vec<String>, EngineError> {
        let args = strings(&["logs", "--tail", &lines.to_string(), name]);
        let out = self.exec(&args, &[], COMMAND_TIMEOUT).await?;
        if !out.success {
            return Err(self.failed(&args, &out));
        }
        Ok(out
            .stdout
            .lines()
            .chain(out.stderr.lines())
            .map(String::from)
            .collect())
    }

    /// What the container printed after `since` (RFC 3339; all without),
    /// each line prefixed with its RFC 3339 timestamp: `(stdout, stderr)`.
    pub async fn logs_since(
        &self,
        name: &str,
        since: Option<&str>,
    ) -> Result<(String, String), EngineError> {
        let mut args = strings(&["logs", "--timestamps"]);
        if let Some(since) = since {
            args.extend(["--since".into(), since.to_owned()]);
        }
        args.push(name.to_owned());
        let out = self.exec(&args, &[], COMMAND_TIMEOUT).await?;
        if !out.success {
            return Err(self.failed(&args, &out));
        }
        Ok((out.stdout, out.stderr))
    }

    /// Every container (running or not) whose label `key` equals `value`.
    pub async fn list(&self, key: &str, value: &str) -> Result<Vec<ContainerInfo>, EngineError> {
        self.list_labelled(&format!("{key}={value}")).await
    }

    /// Every app container (labelled [`LABEL_APP`]), stopped ones too: what
    /// a reconciler pass or a monitor round compares with the desired
    /// state, in one look instead of one per app.
    pub async fn list_apps(&self) -> Result<Vec<ContainerInfo>, EngineError> {
        self.list_labelled(LABEL_APP).await
    }

    /// [`Engine::list_apps`], or the local API's kept list of them while it
    /// is recent (see `book`); and where it came from.
    pub async fn list_apps_kept(&self) -> Result<(Vec<ContainerInfo>, book::Look), EngineError> {
        let Some(api) = self.local_api() else {
            return Ok((self.list_apps().await?, book::Look::Fresh));
        };
        let failed = |stderr: String| EngineError::Failed {
            command: format!("GET /libpod/containers/json (label {LABEL_APP})"),
            stderr,
        };
        let (body, look) = api
            .list_apps_kept()
            .await
            .map_err(|e| failed(e.to_string()))?;
        Ok((parse_ps(&body).map_err(failed)?, look))
    }

    /// The containers carrying `label` (`KEY` or `KEY=VALUE`): through the
    /// local engine's API when it runs (one request, no child process),
    /// else the CLI's `ps`.
    async fn list_labelled(&self, label: &str) -> Result<Vec<ContainerInfo>, EngineError> {
        if let Some(api) = self.local_api() {
            let failed = |stderr: String| EngineError::Failed {
                command: format!("GET /libpod/containers/json (label {label})"),
                stderr,
            };
            let body = api.list(label).await.map_err(|e| failed(e.to_string()))?;
            return parse_ps(&body).map_err(failed);
        }
        let filter = format!("label={label}");
        // Docker's `--format json` is recent; `{{json .}}` (one object a
        // line) is old and has the same fields.
        let format = if self.is_docker() {
            "{{json .}}"
        } else {
            "json"
        };
        let args = strings(&["ps", "--all", "--filter", &filter, "--format", format]);
        let stdout = self.exec_ok(&args, COMMAND_TIMEOUT).await?;
        let parsed = if self.is_docker() {
            docker::parse_ps(&stdout)
        } else {
            parse_ps(&stdout)
        };
        parsed.map_err(|detail| EngineError::BadOutput {
            command: format!("{} {}", self.program(), args.join(" ")),
            detail,
        })
    }

    /// The local engine's API, once its service runs (podman's: the local
    /// engine is podman).
    fn local_api(&self) -> Option<&api::EngineApi> {
        self.api.as_ref().filter(|_| self.host == Host::Local)
    }

    /// Removes a named volume (a missing one is fine); fails while a
    /// container still uses it.
    pub async fn remove_volume(&self, name: &str) -> Result<(), EngineError> {
        let args = strings(&["volume", "rm", name]);
        self.exec_ok_unless_missing(&args, COMMAND_TIMEOUT).await
    }

    /// Removes an image name from local storage (a missing one is fine);
    /// the image itself goes with its last name.
    pub async fn remove_image(&self, reference: &str) -> Result<(), EngineError> {
        let args = if self.is_docker() {
            strings(&["rmi", reference])
        } else {
            strings(&["rmi", "--ignore", reference])
        };
        let out = self.exec(&args, &[], COMMAND_TIMEOUT).await?;
        // `--ignore` does not cover a digest reference whose image exists
        // under other names only: podman says "tag not known".
        if out.success || out.stderr.contains("not known") || says_missing(&out.stderr) {
            Ok(())
        } else {
            Err(self.failed(&args, &out))
        }
    }

    /// The names of the images pulled by digest: `(repository, digest)`.
    pub async fn image_digests(&self) -> Result<Vec<(String, String)>, EngineError> {
        let args = strings(&[
            "images",
            "--digests",
            "--format",
            "{{.Repository}} {{.Digest}}",
        ]);
        let stdout = self.exec_ok(&args, COMMAND_TIMEOUT).await?;
        Ok(stdout
            .lines()
            .filter_map(|line| line.trim().split_once(' '))
            .filter(|(_, digest)| digest.starts_with("sha256:"))
            .map(|(repo, digest)| (repo.to_owned(), digest.to_owned()))
            .collect())
    }

    async fn exec_ok(&self, args: &[String], timeout: Duration) -> Result<String, EngineError> {
        let out = self.exec(args, &[], timeout).await?;
        if out.success {
            Ok(out.stdout)
        } else {
            Err(self.failed(args, &out))
        }
    }

    /// Like `exec_ok`, a missing container, volume or image being no error
    /// (what podman's `--ignore` does, and Docker lacks).
    async fn exec_ok_unless_missing(
        &self,
        args: &[String],
        timeout: Duration,
    ) -> Result<(), EngineError> {
        let out = self.exec(args, &[], timeout).await?;
        if out.success || says_missing(&out.stderr) {
            Ok(())
        } else {
            Err(self.failed(args, &out))
        }
    }

    fn failed(&self, args: &[String], out: &Output) -> EngineError {
        EngineError::Failed {
            command: format!("{} {}", self.program(), args.join(" ")),
            stderr: out.stderr.trim().to_string(),
        }
    }

    async fn exec(
        &self,
        args: &[String],
        env: &[(String, String)],
        timeout: Duration,
    ) -> Result<Output, EngineError> {
        let mut all_env = env.to_vec();
        if let Some(conf) = &self.containers_conf {
            all_env.push(("CONTAINERS_CONF".into(), conf.display().to_string()));
        }
        self.exec_program(self.program(), args, &all_env, timeout)
            .await
    }

    /// Runs `program` (the engine, or a plain tool such as `sh`) on the
    /// engine's host.
    async fn exec_program(
        &self,
        program: &'static str,
        args: &[String],
        all_env: &[(String, String)],
        timeout: Duration,
    ) -> Result<Output, EngineError> {
        let (mut command, script) = self.host.command(program, args, all_env);
        command
            .stdin(if script.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|source| EngineError::Spawn {
            program: program.into(),
            source,
        })?;
        let stdin = child.stdin.take();
        let write = async move {
            if let (Some(mut stdin), Some(script)) = (stdin, script) {
                // A failed write shows up as the command's own failure.
                let _ = stdin.write_all(script.as_bytes()).await;
            }
        };
        let run = async { tokio::join!(write, child.wait_with_output()).1 };
        let out = tokio::time::timeout(timeout, run)
            .await
            .map_err(|_| EngineError::TimedOut {
                command: format!("{} {}", program, args.join(" ")),
                timeout,
            })?
            .map_err(|source| EngineError::Spawn {
                program: program.into(),
                source,
            })?;
        if let Host::Ssh(ssh) = &self.host {
            if out.status.code() == Some(SSH_FAILED) {
                return Err(EngineError::HostUnreachable {
                    destination: ssh.destination.clone(),
                    stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
                });
            }
        }
        Ok(Output {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// Whether an engine's error says the container, volume or image does not
/// exist (podman: "no such container"; Docker: "No such container: x",
/// "no such volume", "No such image"). Not any "no such": a Docker client
/// whose daemon is down says "no such file or directory" of its socket.
fn says_missing(stderr: &str) -> bool {
    let lower = stderr.to_lowercase();
    [
        "no such container",
        "no such volume",
        "no such image",
        "no such object",
    ]
    .iter()
    .any(|missing| lower.contains(missing))
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn validate(spec: &ContainerSpec) -> Result<(), EngineError> {
    let bad_name = spec.name.is_empty()
        || !spec
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if bad_name {
        return Err(EngineError::InvalidSpec(format!(
            "container name {:?}",
            spec.name
        )));
    }
    for (key, _) in &spec.env {
        if key.is_empty() || key.contains('=') || key.contains('\0') {
            return Err(EngineError::InvalidSpec(format!(
                "environment variable name {key:?}"
            )));
        }
    }
    Ok(())
}

/// The argv of `podman run` and the environment carrying the app's values.
/// `host_port` `None` lets podman pick the loopback port.
fn run_argv(
    kind: EngineKind,
    spec: &ContainerSpec,
    host_port: Option<u16>,
) -> (Vec<String>, Vec<(String, String)>) {
    let mut args = strings(&["run", "--detach", "--init", "--pull=never", "--name"]);
    args.push(spec.name.clone());
    for (key, value) in &spec.labels {
        args.extend(["--label".into(), format!("{key}={value}")]);
    }
    // Logs are capped by the engine; the followers resume by time, so a
    // rotation loses nothing that was already stored.
    args.extend(["--log-opt".into(), format!("max-size={LOG_MAX_SIZE}")]);
    if kind == EngineKind::Docker {
        args.extend(["--log-opt".into(), "max-file=3".into()]);
    }
    args.extend([
        "--publish".into(),
        match host_port {
            Some(port) => format!("127.0.0.1:{port}:{}", spec.container_port),
            None => format!("127.0.0.1::{}", spec.container_port),
        },
        "--env".into(),
        format!("PORT={}", spec.container_port),
    ]);
    let mut env = Vec::new();
    for (key, value) in spec.env.iter().filter(|(k, _)| k != "PORT") {
        args.push("--env".into());
        if RESERVED_ENV.contains(&key.as_str()) {
            args.push(format!("{key}={value}"));
        } else {
            args.push(key.clone());
            env.push((key.clone(), value.clone()));
        }
    }
    if let Some(memory) = &spec.memory {
        args.extend(["--memory".into(), memory.clone()]);
    }
    if let Some(cpus) = spec.cpus {
        args.extend(["--cpus".into(), cpus.to_string()]);
    }
    for (volume, path) in &spec.volumes {
        args.extend(["--volume".into(), volumes::volume_arg(kind, volume, path)]);
    }
    if let Some(network) = &spec.network {
        args.extend(["--network".into(), network.clone()]);
    }
    args.push(spec.image.clone());
    args.extend(spec.command.iter().cloned());
    (args, env)
}

/// The registry said no (unknown manifest or repository, access denied):
/// the same pull fails again. Anything else may be a passing fault.
fn pull_failure_is_retryable(stderr: &str) -> bool {
    let lower = stderr.to_lowercase();
    ![
        "manifest unknown",
        "name unknown",
        "unauthorized",
        "denied",
        "invalid reference format",
    ]
    .iter()
    .any(|s| lower.contains(s))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PsEntry {
    id: String,
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    image: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    ports: Option<Vec<PsPort>>,
    #[serde(default)]
    pid: i64,
    #[serde(default)]
    exit_code: i64,
}

#[derive(Deserialize)]
struct PsPort {
    host_port: u16,
}

/// podman's own container list, as `ps --format json` prints it and its
/// API (`/libpod/containers/json`) answers.
pub(crate) fn parse_ps(stdout: &str) -> Result<Vec<ContainerInfo>, String> {
    if stdout.trim().is_empty() {
        return Ok(Vec::new());
    }
    let entries: Vec<PsEntry> = serde_json::from_str(stdout).map_err(|e| e.to_string())?;
    Ok(entries
        .into_iter()
        .map(|e| ContainerInfo {
            name: e.names.into_iter().next().unwrap_or_default(),
            id: e.id,
            image: e.image,
            state: e.state,
            labels: e.labels.unwrap_or_default(),
            host_port: e.ports.and_then(|p| p.first().map(|p| p.host_port)),
            process: Some((
                u32::try_from(e.pid).unwrap_or(0),
                i32::try_from(e.exit_code).unwrap_or(-1),
            )),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_out_of_the_argv() {
        let mut spec = ContainerSpec::for_release(Uuid::new_v4(), Uuid::new_v4(), "r@sha256:1");
        spec.env = vec![
            ("SECRET".into(), "hunter2".into()),
            ("PORT".into(), "1".into()),
            ("PATH".into(), "/x".into()),
            ("DOCKER_HOST".into(), "tcp://elsewhere:2375".into()),
        ];
        let (args, env) = run_argv(EngineKind::Podman, &spec, Some(4000));
        assert!(!args.iter().any(|a| a.contains("hunter2")), "{args:?}");
        assert_eq!(env, vec![("SECRET".to_string(), "hunter2".to_string())]);
        assert!(args.contains(&"PORT=8080".to_string()));
        assert!(!args.contains(&"PORT=1".to_string()));
        assert!(args.contains(&"127.0.0.1:4000:8080".to_string()));
        assert!(args.contains(&"PATH=/x".to_string()));
        // Not in the CLI's own environment, where it would pick the daemon.
        assert!(args.contains(&"DOCKER_HOST=tcp://elsewhere:2375".to_string()));
        assert_eq!(args.last().unwrap(), "r@sha256:1");
        assert!(!args.contains(&"--volume".to_string()));
        assert!(args.contains(&"max-size=10m".to_string()));
    }

    #[test]
    fn volumes_and_network_reach_the_argv() {
        let mut spec = ContainerSpec::for_release(Uuid::new_v4(), Uuid::new_v4(), "r@sha256:1");
        spec.volumes = vec![("slipway-a-data".into(), "/data".into())];
        spec.network = Some("slirp4netns:allow_host_loopback=true".into());
        let (args, _) = run_argv(EngineKind::Podman, &spec, Some(4000));
        let joined = args.join(" ");
        assert!(
            joined.contains("--volume slipway-a-data:/data:U"),
            "{joined}"
        );
        assert!(joined.contains("--network slirp4netns:allow_host_loopback=true"));
        assert_eq!(args.last().unwrap(), "r@sha256:1");
    }

    #[test]
    fn release_names_use_the_random_part_of_ids() {
        let app = Uuid::parse_str("0190c1a2-0000-7000-8000-aaaaaaaaaaaa").unwrap();
        let rel = Uuid::parse_str("0190c1a2-0000-7000-8000-bbbbbbbbbbbb").unwrap();
        let spec = ContainerSpec::for_release(app, rel, "i");
        assert_eq!(spec.name, "slipway-aaaaaaaaaaaa-bbbbbbbbbbbb");
    }

    #[test]
    fn pull_failures_are_classified() {
        assert!(!pull_failure_is_retryable(
            "Error: reading manifest sha256:00 in 127.0.0.1:5000/x: manifest unknown: manifest unknown"
        ));
        assert!(pull_failure_is_retryable(
            "pinging container registry 127.0.0.1:1: Get \"http://127.0.0.1:1/v2/\": dial tcp 127.0.0.1:1: connect: connection refused"
        ));
    }

    #[test]
    fn ps_json_is_parsed() {
        let json = r#"[{"Id":"abc","Names":["n1"],"Image":"i","State":"running",
            "Labels":{"io.slipway.app":"a"},"Ports":[{"host_ip":"127.0.0.1","container_port":8080,"host_port":4100,"range":1,"protocol":"tcp"}]}]"#;
        let list = parse_ps(json).unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].name, "n1");
        assert_eq!(list[0].host_port, Some(4100));
        assert!(list[0].is_running());
        assert!(parse_ps("").unwrap().is_empty());
    }

    #[test]
    fn missing_things_are_recognised_in_both_engines_words() {
        assert!(says_missing("Error: no such container x"));
        assert!(says_missing(
            "Error response from daemon: No such container: x"
        ));
        assert!(says_missing(
            "Error response from daemon: get v: no such volume"
        ));
        assert!(!says_missing("permission denied"));
        assert!(!says_missing(
            "failed to connect to the docker API at unix:///var/run/docker.sock; check if the \
             path is correct and if the daemon is running: dial unix /var/run/docker.sock: \
             connect: no such file or directory"
        ));
        assert!(!says_missing(
            "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"
        ));
    }
}
