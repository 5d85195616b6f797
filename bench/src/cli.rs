//! `cli`: the `slipway` binary against the real fleet (API and worker
//! binaries, a test-owned registry and Caddy, real buildah and podman),
//! deploying a copy of the node-express example with `deploy --dir`. One
//! JSON line:
//!
//! - `cached_deploy_s`: `slipway deploy web --dir DIR --follow` of an
//!   unchanged directory, from starting the process to its exit 0 once the
//!   deployment is `live`: pack, upload (the same bytes, the same version
//!   hash), build reused without building, provision, deploy, health check
//!   and route switch. Each run starts after the previous deployment's
//!   attempt ended (its drain), so runs do not queue behind each other.
//!   `first_deploy_s` is the first, real build, for scale.
//! - `logs_first_line_ms`: a `slipway logs web -f` follower is running; a
//!   line is written to the app's runtime log as the deploy worker's
//!   collector writes it (the same two statements, one transaction); the
//!   time from that commit to the follower printing the line. The
//!   collector's own interval (`SLIPWAY_RUNTIME_LOG_INTERVAL`, from the
//!   container's output to the store) is not part of it.

mod logs;

use crate::build::fleet::{self, Fleet};
use crate::deploy::podman;
use crate::harness::Env;
use crate::stats::{max, mean, percentile, round};
use anyhow::Context;
use serde_json::{json, Value};
use slipway_testkit::caddy::Caddy;
use slipway_testkit::registry::Registry;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CLI: &str = "slipway";
const APP: &str = "web";
const RUNS: usize = 5;

pub async fn run(amqp_url: &str) -> anyhow::Result<Value> {
    let dir = fleet::bin_dir();
    fleet::ensure_binaries(&dir, &fleet::FULL_FLEET).await?;
    ensure_cli(&dir).await?;
    let env = Env::new(amqp_url).await?;
    let registry = Registry::start().await?;
    let work = std::env::temp_dir().join(format!("slipway-bench-cli-{}", env.prefix));
    let result = async {
        let caddy = Caddy::start().await?;
        std::fs::create_dir_all(work.join("builds"))?;
        let workers =
            fleet::local_target_workers(registry.addr(), &caddy, "apps", &work.join("builds"));
        let mut fleet = Fleet::start(&env, &dir, workers).await?;
        let measured = measure(&fleet, &env, &dir.join(CLI), &work).await;
        let measured = measured.map_err(|e| anyhow::anyhow!("{e:#}\n{}", fleet.tails()));
        fleet.stop().await;
        measured
    }
    .await;
    podman::remove_leftovers(registry.addr()).await;
    drop(registry);
    let _ = std::fs::remove_dir_all(&work);
    env.cleanup().await;
    result
}

async fn measure(fleet: &Fleet, env: &Env, cli: &Path, work: &Path) -> anyhow::Result<Value> {
    let (status, app) = fleet
        .call(
            reqwest::Method::POST,
            "/v1/apps",
            Some(json!({"name": APP})),
        )
        .await?;
    anyhow::ensure!(status == 201, "create app: {status} {app}");
    let app_id: uuid::Uuid = app["id"].as_str().context("app id")?.parse()?;
    let measured = measure_app(fleet, env, cli, work, app_id).await;
    podman::remove_containers(&app_id.to_string()).await;
    measured
}

async fn measure_app(
    fleet: &Fleet,
    env: &Env,
    cli: &Path,
    work: &Path,
    app_id: uuid::Uuid,
) -> anyhow::Result<Value> {
    let source = work.join(APP);
    copy_dir(&fleet::workspace().join("examples/node-express"), &source)?;
    let slipway = Slipway {
        path: cli.to_path_buf(),
        url: fleet.api_url.clone(),
        token: fleet.token().to_owned(),
    };
    let deploy_args = [
        "deploy",
        APP,
        "--dir",
        &source.display().to_string(),
        "--follow",
    ];

    let first = slipway.timed(&deploy_args).await?;
    wait_attempts_done(fleet).await?;
    let mut cached = Vec::new();
    let mut phases = Vec::new();
    for _ in 0..RUNS {
        cached.push(slipway.timed(&deploy_args).await?);
        phases.push(phases_of_newest(fleet).await?);
        wait_attempts_done(fleet).await?;
    }
    let phase_mean = |i: usize| round(mean(&phases.iter().map(|p| p[i]).collect::<Vec<_>>()), 2);
    let reused = fleet
        .get(&format!("/v1/apps/{APP}/deployments?limit=1"))
        .await?;
    let last = reused["items"][0]["id"]
        .as_str()
        .context("last deployment")?;
    let logs = fleet
        .get(&format!("/v1/deployments/{last}/logs?limit=10000"))
        .await?;
    anyhow::ensure!(
        logs.to_string().contains("without building"),
        "the last deploy built again: {logs}"
    );

    let shown = logs::latency(&slipway, env, app_id, APP).await?;
    Ok(json!({
        "scenario": "cli",
        "example": "node-express",
        "first_deploy_s": round(first, 2),
        "cached_deploy_s": cached.iter().map(|s| round(*s, 2)).collect::<Vec<_>>(),
        "cached_deploy_mean_s": round(mean(&cached), 2),
        "cached_deploy_max_s": round(max(&cached), 2),
        "cached_deploy_target_s": 5.0,
        // Means over the cached runs, from the deployment's timeline:
        // created → built (pack and upload are before it), built →
        // deploying, deploying → live (start, health check, route switch).
        "cached_created_to_built_s": phase_mean(0),
        "cached_built_to_deploying_s": phase_mean(1),
        "cached_deploying_to_live_s": phase_mean(2),
        "logs_first_line_ms": shown.iter().map(|s| round(*s, 1)).collect::<Vec<_>>(),
        "logs_first_line_p50_ms": round(percentile(&shown, 50.0), 1),
        "logs_first_line_max_ms": round(max(&shown), 1),
        "logs_first_line_target_ms": 300.0,
    }))
}

/// The CLI with the fleet's URL and token in its environment, as in CI.
pub(crate) struct Slipway {
    path: PathBuf,
    url: String,
    token: String,
}

impl Slipway {
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.path);
        command
            .args(args)
            .env("SLIPWAY_URL", &self.url)
            .env("SLIPWAY_TOKEN", &self.token)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        command
    }

    /// Seconds from start to a successful exit.
    async fn timed(&self, args: &[&str]) -> anyhow::Result<f64> {
        let mut command = self.command(args);
        let started = Instant::now();
        let output = tokio::task::spawn_blocking(move || command.output()).await??;
        let elapsed = started.elapsed().as_secs_f64();
        anyhow::ensure!(
            output.status.success(),
            "slipway {args:?}: {}\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(elapsed)
    }
}

/// Seconds of the newest deployment's phases: created → built, built →
/// deploying, deploying → live.
async fn phases_of_newest(fleet: &Fleet) -> anyhow::Result<[f64; 3]> {
    let page = fleet
        .get(&format!("/v1/apps/{APP}/deployments?limit=1"))
        .await?;
    let id = page["items"][0]["id"].as_str().context("a deployment")?;
    let deployment = fleet.get(&format!("/v1/deployments/{id}")).await?;
    let at = |state: &str| -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
        let events = deployment["events"].as_array().context("events")?;
        let event = events
            .iter()
            .find(|e| e["to"] == state)
            .with_context(|| format!("no `{state}` event in {deployment}"))?;
        Ok(event["at"].as_str().context("at")?.parse()?)
    };
    let created: chrono::DateTime<chrono::Utc> = deployment["created_at"]
        .as_str()
        .context("created_at")?
        .parse()?;
    let secs = |a: chrono::DateTime<chrono::Utc>, b: chrono::DateTime<chrono::Utc>| {
        (b - a).num_microseconds().unwrap_or(0) as f64 / 1e6
    };
    let (built, deploying, live) = (at("built")?, at("deploying")?, at("live")?);
    Ok([
        secs(created, built),
        secs(built, deploying),
        secs(deploying, live),
    ])
}

/// Waits until no attempt of the app's newest deployment is still running
/// (a deploy drains the release it replaced after it is `live`).
async fn wait_attempts_done(fleet: &Fleet) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let page = fleet
            .get(&format!("/v1/apps/{APP}/deployments?limit=1"))
            .await?;
        let id = page["items"][0]["id"].as_str().context("a deployment")?;
        let deployment = fleet.get(&format!("/v1/deployments/{id}")).await?;
        let attempts = deployment["attempts"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if attempts.iter().all(|a| !a["finished_at"].is_null()) {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "deployment {id} kept running");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// Builds the CLI beside the fleet's binaries unless SLIPWAY_BIN_DIR names them.
async fn ensure_cli(dir: &Path) -> anyhow::Result<()> {
    if std::env::var_os("SLIPWAY_BIN_DIR").is_some() {
        anyhow::ensure!(
            dir.join(CLI).is_file(),
            "no {CLI} in SLIPWAY_BIN_DIR={}",
            dir.display()
        );
        return Ok(());
    }
    let status =
        tokio::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(fleet::workspace())
            .args(["build", "--release", "-p", "slipway-cli"])
            .stdout(Stdio::null())
            .status()
            .await?;
    anyhow::ensure!(
        status.success(),
        "cargo build -p slipway-cli failed: {status}"
    );
    Ok(())
}
