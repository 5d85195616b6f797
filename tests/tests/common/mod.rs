//! A fleet of real Slipway processes for one test: its own database and
//! queue prefix, the API binary and worker binaries as OS processes, and an
//! HTTP client holding a project token.

#![allow(dead_code)]

pub mod ssh;

use anyhow::Context;
use serde_json::{json, Value};
use slipway_testkit::{
    free_port, fresh_database, fresh_database_on, unique_prefix, wait_http_ok, Proc, TestDb,
};
use std::time::Duration;
use uuid::Uuid;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef0123456789";
pub const TERMINAL: &[&str] = &["live", "failed", "cancelled", "superseded"];

pub struct Options {
    pub build_workers: usize,
    pub provision_workers: usize,
    pub deploy_workers: usize,
    pub amqp_url: String,
    /// Admin URL of a test-owned Postgres cluster; the system one if `None`.
    pub postgres_admin_url: Option<String>,
    pub env: Vec<(&'static str, String)>,
    /// A command prefix every Slipway process runs through (see
    /// `slipway_testkit::dns::DnsServer::wrapper`).
    pub wrapper: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            build_workers: 1,
            provision_workers: 1,
            deploy_workers: 1,
            amqp_url: slipway_testkit::rabbit_url(),
            postgres_admin_url: None,
            env: Vec::new(),
            wrapper: Vec::new(),
        }
    }
}

pub struct Worker {
    pub id: String,
    pub stage: &'static str,
    pub proc: Proc,
}

pub struct Fleet {
    pub db: TestDb,
    pub prefix: String,
    pub amqp_url: String,
    pub api: Proc,
    pub api_url: String,
    pub workers: Vec<Worker>,
    pub client: reqwest::Client,
    pub token: String,
    pub project_id: Uuid,
    extra_env: Vec<(&'static str, String)>,
    wrapper: Vec<String>,
    spawned: usize,
}

impl Fleet {
    pub async fn start(options: Options) -> anyhow::Result<Fleet> {
        let db = match &options.postgres_admin_url {
            Some(admin) => fresh_database_on(admin).await?,
            None => fresh_database().await?,
        };
        let port = free_port();
        let prefix = format!("{}.", unique_prefix());
        let env = base_env(&db.url, &options.amqp_url, &prefix, &options.env);
        let mut api_env = env.clone();
        api_env.push(("SLIPWAY_API_ADDR".into(), format!("127.0.0.1:{port}")));
        api_env.push(("SLIPWAY_ADMIN_TOKEN".into(), ADMIN_TOKEN.into()));
        // Accounts without an endpoint must not reach a real provider from
        // a test (port 9: nothing listens, the connection is refused).
        api_env.push((
            "SLIPWAY_HETZNER_ENDPOINT".into(),
            "http://127.0.0.1:9/v1".into(),
        ));
        api_env.push((
            "SLIPWAY_OPENSTACK_AUTH_URL".into(),
            "http://127.0.0.1:9/v3".into(),
        ));
        api_env.push(("SLIPWAY_SECRET_KEY".into(), "ab".repeat(32)));
        let mut fleet = Fleet {
            api: Proc::spawn_wrapped("slipway-api", &api_env, &options.wrapper)?,
            db,
            prefix,
            amqp_url: options.amqp_url.clone(),
            api_url: format!("http://127.0.0.1:{port}"),
            workers: Vec::new(),
            client: reqwest::Client::new(),
            token: String::new(),
            project_id: Uuid::nil(),
            extra_env: options.env.clone(),
            wrapper: options.wrapper.clone(),
            spawned: 0,
        };
        wait_http_ok(
            &format!("{}/healthz", fleet.api_url),
            Duration::from_secs(30),
        )
        .await
        .with_context(|| fleet.api.log_tail(30))?;
        for (stage, count) in [
            ("build", options.build_workers),
            ("provision", options.provision_workers),
            ("deploy", options.deploy_workers),
        ] {
            for _ in 0..count {
                fleet.spawn_worker(stage)?;
            }
        }
        let project = fleet
            .admin_post("/v1/projects", json!({"name": "p"}))
            .await?;
        fleet.project_id = project["id"].as_str().context("project id")?.parse()?;
        let token = fleet
            .admin_post(
                &format!("/v1/projects/{}/tokens", fleet.project_id),
                json!({"name": "test", "role": "owner"}),
            )
            .await?;
        fleet.token = token["token"].as_str().context("token")?.to_owned();
        Ok(fleet)
    }

    fn base_env(&self) -> Vec<(String, String)> {
        base_env(&self.db.url, &self.amqp_url, &self.prefix, &self.extra_env)
    }

    /// Starts one more worker process for `stage`; returns its id.
    pub fn spawn_worker(&mut self, stage: &'static str) -> anyhow::Result<String> {
        self.spawn_worker_with(stage, &[])
    }

    pub fn spawn_worker_with(
        &mut self,
        stage: &'static str,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<String> {
        self.spawned += 1;
        let id = format!("{stage}-{}", self.spawned);
        let mut env = self.base_env();
        for (key, value) in extra {
            env.retain(|(k, _)| k != key);
            env.push(((*key).to_owned(), (*value).to_owned()));
        }
        env.push(("SLIPWAY_WORKER_ID".into(), id.clone()));
        let proc = Proc::spawn_wrapped(&format!("slipway-worker-{stage}"), &env, &self.wrapper)?;
        self.workers.push(Worker {
            id: id.clone(),
            stage,
            proc,
        });
        Ok(id)
    }

    pub fn worker(&mut self, id: &str) -> &mut Worker {
        self.workers
            .iter_mut()
            .find(|w| w.id == id)
            .expect("known worker")
    }

    pub fn logs(&self) -> String {
        let mut out = format!("--- api\n{}\n", self.api.log_tail(40));
        for worker in &self.workers {
            out.push_str(&format!(
                "--- {}\n{}\n",
                worker.id,
                worker.proc.log_tail(40)
            ));
        }
        out
    }

    pub async fn admin_post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let response = self
            .client
            .post(format!("{}{path}", self.api_url))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        Ok(response.json().await?)
    }

    /// A request with the project token; returns status and JSON body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.api_url))
            .bearer_auth(&self.token);
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

    pub async fn probe(&self, body: Value) -> anyhow::Result<Uuid> {
        let (status, answer) = self
            .call(reqwest::Method::POST, "/v1/probes", Some(body))
            .await?;
        anyhow::ensure!(status == 202, "probe: {status} {answer}");
        Ok(answer["id"].as_str().context("id")?.parse()?)
    }

    pub async fn deployment(&self, id: Uuid) -> anyhow::Result<Value> {
        let (status, body) = self
            .call(reqwest::Method::GET, &format!("/v1/deployments/{id}"), None)
            .await?;
        anyhow::ensure!(
            status == 200,
            "deployment {id}: {status} {body}\n{}",
            self.api.log_tail(20)
        );
        Ok(body)
    }

    /// Waits until the deployment is in one of `states`.
    pub async fn wait_state(
        &self,
        id: Uuid,
        states: &[&str],
        timeout: Duration,
    ) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let deployment = self.deployment(id).await?;
            let state = deployment["state"].as_str().unwrap_or_default().to_owned();
            // A deploy is `live` once it serves and finishes its attempt
            // after draining the release it replaced: wait for that too.
            if states.contains(&state.as_str()) && (state != "live" || attempts_done(&deployment)) {
                return Ok(deployment);
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!(
                    "deployment {id} is {state}, wanted {states:?}\n{deployment:#}\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the deployment's job for `stage` is running; returns the worker holding it.
    pub async fn wait_running(
        &self,
        deployment: Uuid,
        stage: &str,
        timeout: Duration,
    ) -> anyhow::Result<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let worker: Option<String> = sqlx::query_scalar(
                "SELECT lease_worker FROM jobs WHERE deployment_id = $1 AND stage = $2 AND state = 'running'",
            )
            .bind(deployment)
            .bind(stage)
            .fetch_optional(&self.db.pool)
            .await?;
            if let Some(worker) = worker {
                return Ok(worker);
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "{stage} of {deployment} never ran\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The process group the probe's child runs in, from the deployment's logs.
    pub async fn child_pgid(
        &self,
        deployment: Uuid,
        stage: &str,
        timeout: Duration,
    ) -> anyhow::Result<i32> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let line: Option<String> = sqlx::query_scalar(
                "SELECT line FROM deployment_logs WHERE deployment_id = $1 AND stage = $2
                 AND line LIKE 'started process group %' ORDER BY seq DESC LIMIT 1",
            )
            .bind(deployment)
            .bind(stage)
            .fetch_optional(&self.db.pool)
            .await?;
            if let Some(line) = line {
                return Ok(line.trim_start_matches("started process group ").parse()?);
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "no child pid logged\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// How many effect rows each of the deployment's jobs wrote.
    pub async fn effects(&self, deployment: Uuid) -> anyhow::Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT stage, count(*) FROM probe_effects WHERE deployment_id = $1 GROUP BY stage ORDER BY stage",
        )
        .bind(deployment)
        .fetch_all(&self.db.pool)
        .await?)
    }

    /// A metric series (`name` or `name{labels}`) summed over the workers
    /// of `stage` that still answer, from their `/metrics`. The labels
    /// given need only be a subset of a series' labels: the matching
    /// series are added up (`slipway_reconcile_repairs_total{kind="x"}`
    /// counts every target kind).
    pub async fn metric(&self, stage: &str, series: &str) -> anyhow::Result<u64> {
        let mut total = 0;
        for worker in self.workers.iter().filter(|w| w.stage == stage) {
            let Some(addr) = self.metrics_addr(worker)? else {
                continue;
            };
            let Ok(answer) = reqwest::get(format!("http://{addr}/metrics")).await else {
                continue; // a worker the test killed
            };
            total += sum_series(&answer.text().await?, series) as u64;
        }
        Ok(total)
    }

    /// Where a worker serves `/metrics` (`host:port`), from the address it
    /// logged at start; `None` before it logged it.
    pub fn metrics_addr(&self, worker: &Worker) -> anyhow::Result<Option<String>> {
        let log = strip_ansi(&std::fs::read_to_string(worker.proc.log_path())?);
        Ok(log
            .split("metrics_addr=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_owned))
    }

    /// `slipway_reconcile_repairs_total{kind}` over the deploy workers (every target kind).
    pub async fn repairs(&self, kind: &str) -> anyhow::Result<u64> {
        self.metric(
            "deploy",
            &format!("slipway_reconcile_repairs_total{{kind=\"{kind}\"}}"),
        )
        .await
    }

    /// Waits until `at_least` repairs of `kind` are counted: the counter
    /// moves after the repair's last step (a re-created container's port
    /// is recorded after it runs), so it may lag what podman already shows.
    pub async fn wait_repairs(
        &self,
        kind: &str,
        at_least: u64,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        while self.repairs(kind).await? < at_least {
            anyhow::ensure!(
                started.elapsed() < timeout,
                "fewer than {at_least} {kind} repairs counted\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(())
    }

    pub async fn stop(mut self) {
        for worker in &mut self.workers {
            let _ = worker.proc.sigterm();
        }
        let _ = self.api.sigterm();
        for worker in &mut self.workers {
            worker.proc.wait_exit(Duration::from_secs(20)).await;
        }
        self.api.wait_exit(Duration::from_secs(10)).await;
        self.db.drop_database().await;
    }
}

fn base_env(
    db_url: &str,
    amqp_url: &str,
    prefix: &str,
    extra: &[(&'static str, String)],
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("SLIPWAY_DATABASE_URL", db_url.to_owned()),
        ("SLIPWAY_AMQP_URL", amqp_url.to_owned()),
        ("SLIPWAY_QUEUE_PREFIX", prefix.to_owned()),
        ("SLIPWAY_METRICS_ADDR", "127.0.0.1:0".into()),
        ("SLIPWAY_HEARTBEAT_INTERVAL", "500ms".into()),
        ("SLIPWAY_LEASE_TIMEOUT", "5s".into()),
        ("SLIPWAY_SWEEP_INTERVAL", "500ms".into()),
        ("SLIPWAY_RETRY_TIERS", "300ms,600ms,1200ms".into()),
        ("SLIPWAY_MAX_ATTEMPTS", "3".into()),
        ("SLIPWAY_SHUTDOWN_GRACE", "15s".into()),
        // The tests' git servers listen on loopback (a namespace's on a
        // private address): a single-host install's setting.
        ("SLIPWAY_OUTBOUND_ALLOW", "loopback,private".into()),
        ("RUST_LOG", "info,slipway_shared=debug".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (key, value) in extra {
        env.retain(|(k, _)| k != key);
        env.push(((*key).to_owned(), value.clone()));
    }
    env
}

/// The sum of the series of `text` (the Prometheus text format) named as
/// `series` (`name` or `name{a="x",b="y"}`) whose labels include the given ones.
pub fn sum_series(text: &str, series: &str) -> f64 {
    let (name, wanted) = match series.split_once('{') {
        Some((name, labels)) => (name, labels.trim_end_matches('}')),
        None => (series, ""),
    };
    let wanted: Vec<&str> = wanted.split(',').filter(|l| !l.is_empty()).collect();
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (key, value) = line.rsplit_once(' ')?;
            let (line_name, labels) = match key.split_once('{') {
                Some((n, labels)) => (n, labels.trim_end_matches('}')),
                None => (key, ""),
            };
            let labels: Vec<&str> = labels.split(',').collect();
            (line_name == name && wanted.iter().all(|w| labels.contains(w)))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

/// Whether every attempt of the deployment has finished.
pub fn attempts_done(deployment: &Value) -> bool {
    deployment["attempts"]
        .as_array()
        .is_some_and(|attempts| attempts.iter().all(|a| !a["finished_at"].is_null()))
}

pub fn states(deployment: &Value) -> Vec<String> {
    deployment["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .filter_map(|e| e["to"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

pub const HAPPY_PATH: &[&str] = &[
    "queued",
    "building",
    "built",
    "provisioning",
    "provisioned",
    "deploying",
    "verifying",
    "live",
];

/// The containers of an app (by the `io.slipway.app` label): the running
/// ones, or all of them with `all`.
pub fn app_containers(app_id: &str, all: bool) -> Vec<String> {
    let filter = format!("label=io.slipway.app={app_id}");
    let mut args = vec!["ps", "-q", "--filter", &filter];
    if all {
        args.push("-a");
    }
    std::process::Command::new("podman")
        .args(&args)
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Removes every container of the app (its id) when the test ends,
/// passed or not.
pub struct AppContainers(pub String);

impl Drop for AppContainers {
    fn drop(&mut self) {
        for id in app_containers(&self.0, true) {
            let _ = std::process::Command::new("podman")
                .args(["rm", "-f", "-t", "0", &id])
                .output();
        }
    }
}

/// `examples/NAME` of the workspace.
pub fn example(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .join("examples")
        .join(name)
}

/// An app created through the API from a git repository seeded with
/// `source` and served by a git daemon of the test's own (branch `main`).
pub struct GitApp {
    pub repo: slipway_testkit::git::SeededRepo,
    pub id: String,
    _daemon: slipway_testkit::git::GitDaemon,
    _repos: tempfile::TempDir,
}

impl GitApp {
    /// `settings` (target, runtime, domains, …) join the create request.
    pub async fn create(
        fleet: &Fleet,
        name: &str,
        source: &std::path::Path,
        settings: Value,
    ) -> anyhow::Result<GitApp> {
        let served = GitSource::serve(name, source)?;
        let mut body = json!({"name": name, "git_url": served.url, "git_ref": "main"});
        if let (Some(body), Value::Object(settings)) = (body.as_object_mut(), settings) {
            body.extend(settings);
        }
        let (status, app) = fleet
            .call(reqwest::Method::POST, "/v1/apps", Some(body))
            .await?;
        anyhow::ensure!(status == 201, "create app: {status} {app}");
        Ok(GitApp {
            id: app["id"].as_str().context("app id")?.to_owned(),
            repo: served.repo,
            _daemon: served.daemon,
            _repos: served.repos,
        })
    }
}

/// A repository named `name` seeded from `source` (its branch `main`),
/// served by a git daemon of its own at `url`.
pub struct GitSource {
    pub repo: slipway_testkit::git::SeededRepo,
    pub url: String,
    daemon: slipway_testkit::git::GitDaemon,
    repos: tempfile::TempDir,
}

impl GitSource {
    pub fn serve(name: &str, source: &std::path::Path) -> anyhow::Result<GitSource> {
        let repos = tempfile::tempdir()?;
        let repo = slipway_testkit::git::seed_repo(repos.path(), name, Some(source))?;
        let daemon = slipway_testkit::git::GitDaemon::start(repos.path())?;
        Ok(GitSource {
            url: daemon.url(name),
            repo,
            daemon,
            repos,
        })
    }
}

/// `GET /` through a test Caddy's apps server, with `host` as the Host.
pub async fn through_caddy(
    caddy: &slipway_testkit::caddy::Caddy,
    host: &str,
) -> anyhow::Result<(u16, String)> {
    let answer = reqwest::Client::new()
        .get(format!("http://{}/", caddy.http_addr()))
        .header("host", host)
        .timeout(Duration::from_secs(5))
        .send()
        .await?;
    Ok((answer.status().as_u16(), answer.text().await?))
}

/// A log without its colour escapes (`ESC [ ... m`).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
