//! The fleet of the `build` and `deploy` scenarios: the release API binary
//! and the worker binaries a scenario asks for as OS processes, each in its
//! own process group and stopped by its pid, and an HTTP client holding a
//! project token. The `build` scenario runs no provision or deploy worker:
//! past the build a deployment would start containers and add routes to
//! the platform's Caddy, which a build benchmark must not touch; the
//! `deploy` scenario runs all three against a Caddy of its own.

use crate::harness::{self, Env};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

pub const API: &str = "slipway-api";

/// One process this benchmark started.
struct Process {
    name: String,
    child: Child,
    pid: i32,
    log: PathBuf,
}

impl Process {
    fn spawn(dir: &Path, binary: &str, env: &[(String, String)]) -> anyhow::Result<Process> {
        let log = std::env::temp_dir().join(format!(
            "slipway-bench-{binary}-{}.log",
            uuid::Uuid::new_v4().simple()
        ));
        let file = std::fs::File::create(&log)?;
        let child = Command::new(dir.join(binary))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| anyhow::anyhow!("spawning {}: {e}", dir.join(binary).display()))?;
        let pid = child
            .id()
            .ok_or_else(|| anyhow::anyhow!("{binary} exited at once"))? as i32;
        eprintln!(
            "[bench] started {binary} (pid {pid}, log {})",
            log.display()
        );
        Ok(Process {
            name: binary.to_owned(),
            child,
            pid,
            log,
        })
    }

    fn tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// SIGTERM, then SIGKILL to its whole group (a build's buildah
    /// children included) if it has not exited within `grace`.
    async fn stop(mut self, grace: Duration) {
        let _ = kill(Pid::from_raw(self.pid), Signal::SIGTERM);
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            eprintln!("[bench] {} ignored SIGTERM; killing", self.name);
        }
        let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
        let _ = self.child.wait().await;
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

pub struct Fleet {
    processes: Vec<Process>,
    pub api_url: String,
    client: reqwest::Client,
    token: String,
}

impl Fleet {
    /// Starts the API and one process per `(binary, extra env)` of
    /// `workers`; the extra env goes to that worker only (registry, base
    /// images, build dir, Caddy).
    pub async fn start(
        env: &Env,
        dir: &Path,
        workers: Vec<(&str, Vec<(String, String)>)>,
    ) -> anyhow::Result<Fleet> {
        let port = slipway_testkit::free_port();
        let common: Vec<(String, String)> = [
            ("SLIPWAY_DATABASE_URL", env.db.url.clone()),
            ("SLIPWAY_AMQP_URL", env.amqp_url.clone()),
            ("SLIPWAY_QUEUE_PREFIX", env.prefix.clone()),
            ("SLIPWAY_METRICS_ADDR", "127.0.0.1:0".into()),
            ("SLIPWAY_SECRET_KEY", "ab".repeat(32)),
            ("SLIPWAY_SHUTDOWN_GRACE", "10s".into()),
            // The benchmarks' git daemons listen on loopback.
            ("SLIPWAY_OUTBOUND_ALLOW", "loopback".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let mut fleet = Fleet {
            processes: Vec::new(),
            api_url: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
            token: String::new(),
        };
        let mut api_env = common.clone();
        api_env.push(("SLIPWAY_API_ADDR".into(), format!("127.0.0.1:{port}")));
        api_env.push((
            "SLIPWAY_ADMIN_TOKEN".into(),
            format!("bench-admin-{}", uuid::Uuid::new_v4().simple()),
        ));
        fleet.processes.push(Process::spawn(dir, API, &api_env)?);
        let healthz = format!("{}/healthz", fleet.api_url);
        if let Err(error) = slipway_testkit::wait_http_ok(&healthz, Duration::from_secs(30)).await {
            let tail = fleet.processes[0].tail(20);
            fleet.stop().await;
            anyhow::bail!("the API did not come up: {error:#}\n{tail}");
        }
        for (binary, extra) in workers {
            let mut worker_env = common.clone();
            let stage = binary.trim_start_matches("slipway-worker-");
            worker_env.push(("SLIPWAY_WORKER_ID".into(), format!("bench-{stage}-1")));
            worker_env.extend(extra);
            match Process::spawn(dir, binary, &worker_env) {
                Ok(process) => fleet.processes.push(process),
                Err(error) => {
                    fleet.stop().await;
                    return Err(error);
                }
            }
        }
        let pool = &env.db.pool;
        let project = harness::create_project(pool).await?;
        fleet.token = harness::create_token(pool, project).await?;
        Ok(fleet)
    }

    /// A request with the project token; status and JSON body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.api_url))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(30));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    /// The project token the fleet made (for clients of its own, the CLI).
    pub fn token(&self) -> &str {
        &self.token
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let (status, body) = self.call(reqwest::Method::GET, path, None).await?;
        anyhow::ensure!(status == 200, "GET {path}: {status} {body}");
        Ok(body)
    }

    /// `(binary, pid)` of every process of the fleet.
    pub fn pids(&self) -> Vec<(String, i32)> {
        self.processes
            .iter()
            .map(|p| (p.name.clone(), p.pid))
            .collect()
    }

    /// The last lines of every process' log, for error messages.
    pub fn tails(&self) -> String {
        self.processes
            .iter()
            .map(|p| format!("--- {}\n{}", p.name, p.tail(15)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub async fn stop(&mut self) {
        let started = Instant::now();
        // The worker first, so it is not left waiting on a gone API.
        while let Some(process) = self.processes.pop() {
            process.stop(Duration::from_secs(15)).await;
        }
        eprintln!(
            "[bench] fleet stopped in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
}

pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SLIPWAY_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let workspace = workspace();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace.join("target"), |t| workspace.join(t));
    target.join("release")
}

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf()
}

/// Builds the binaries (a no-op when up to date): stale ones would carry
/// older migrations than the database the bench made.
pub async fn ensure_binaries(dir: &Path, binaries: &[&str]) -> anyhow::Result<()> {
    if std::env::var_os("SLIPWAY_BIN_DIR").is_some() {
        anyhow::ensure!(
            binaries.iter().all(|b| dir.join(b).is_file()),
            "binaries missing in SLIPWAY_BIN_DIR={}",
            dir.display()
        );
        return Ok(());
    }
    eprintln!("[bench] building the API and worker binaries (release)");
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build
        .current_dir(workspace())
        .args(["build", "--release", "--bins"]);
    for binary in binaries {
        build.args(["-p", binary]);
    }
    let status = build
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .status()
        .await?;
    anyhow::ensure!(status.success(), "cargo build failed: {status}");
    Ok(())
}

/// The API and the three workers, as the deploy-side scenarios run them.
pub const FULL_FLEET: [&str; 4] = [
    API,
    "slipway-worker-build",
    "slipway-worker-provision",
    "slipway-worker-deploy",
];

/// The three workers of [`FULL_FLEET`] with their settings for deploys to
/// the local target behind `caddy` (server `caddy_server`, HTTP only: the
/// figures are of HTTP deploys, and the default HTTPS address may be
/// another Caddy's), images through `registry`, builds in `builds`.
pub fn local_target_workers(
    registry: &str,
    caddy: &slipway_testkit::caddy::Caddy,
    caddy_server: &str,
    builds: &Path,
) -> Vec<(&'static str, Vec<(String, String)>)> {
    let target: Vec<(String, String)> = [
        ("SLIPWAY_REGISTRY", registry.to_owned()),
        ("SLIPWAY_CADDY_ADMIN", caddy.admin_url()),
        ("SLIPWAY_CADDY_HTTP_ADDR", caddy.http_addr().to_owned()),
        ("SLIPWAY_CADDY_HTTPS_ADDR", "off".to_owned()),
        ("SLIPWAY_CADDY_SERVER", caddy_server.to_owned()),
        ("SLIPWAY_BASE_DOMAIN", "localhost".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .chain(crate::build::images::containers_conf())
    .collect();
    let mut build = target.clone();
    build.push(("SLIPWAY_BUILD_DIR".into(), builds.display().to_string()));
    vec![
        (FULL_FLEET[1], build),
        (FULL_FLEET[2], target.clone()),
        (FULL_FLEET[3], target),
    ]
}
