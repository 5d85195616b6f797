//! `deploy`: deploys of the static-site example on the local target through
//! the real fleet (release API binary, build, provision and deploy workers;
//! a test-owned registry, git daemon and Caddy on free loopback ports; real
//! buildah and podman). Three JSON lines:
//!
//! - `redeploy_under_load`: five redeploys in a row, each of a new commit
//!   (`VERSION n`). For each one a request loop runs through Caddy (by Host
//!   header, fixed rate) from the deploy request until the deployment is
//!   `live` and its deploy attempt ended, i.e. the replaced release was
//!   drained and stopped (checked with podman). `failed_requests` counts non-2xx,
//!   connection errors and answers slower than 2 s (`failed_by_phase`: sent
//!   before the deploy stage, in it before the route switch, or after);
//!   `answers_by_version` shows both releases answered during each
//!   redeploy.
//! - `built_to_live`: a commit built earlier is deployed again with its
//!   image first removed from local storage (so the pull fetches the
//!   image's own layers from the registry; the base layers it shares with
//!   the local base image stay), default health settings. `built_to_live_s`
//!   runs from the deployment's `built` event to the moment the bench first
//!   got the new page through Caddy (the switch); `built_to_state_live_s`
//!   to the `live` event, committed right after the switch (the 2 s drain
//!   and the stop of the replaced release follow it). `pull_s`, `start_s`, `health_s`, `switch_s` are
//!   the deploy job's own timings from its log.
//! - `rollback`: `{"rollback_to": DEPLOYMENT}` to a kept release (its image
//!   still local); `rollback_s` from the request to the old page answering
//!   through Caddy, `rollback_to_state_live_s` to the state `live`.
//!
//! Nothing is left behind: the fleet, registry, git daemon and Caddy are
//! stopped by pid, the app's containers and the run's images removed, the
//! database and queues dropped.

mod load;
pub mod podman;
mod redeploy;
pub mod timings;

use crate::build::fleet::{self, Fleet};
use crate::harness::Env;
use crate::stats::{mean, round};
use anyhow::Context;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use slipway_testkit::caddy::Caddy;
use slipway_testkit::git::{seed_repo, GitDaemon, SeededRepo};
use slipway_testkit::registry::Registry;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

const TERMINAL: &[&str] = &["live", "failed", "cancelled", "superseded"];
const DEPLOY_TIMEOUT: Duration = Duration::from_secs(300);
const REDEPLOYS: u32 = 5;
const RATE_PER_S: u32 = 150;
const REPEATS: usize = 3;
const APP: &str = "site";
const SERVER: &str = "apps";

/// What a measurement needs: the fleet, the app's repo and where Caddy is.
struct Ctx<'a> {
    fleet: &'a Fleet,
    repo: &'a SeededRepo,
    url: String,
    host: String,
    app_id: String,
    page: String,
}

/// A version of the page deployed by a redeploy.
struct Version {
    n: u32,
    commit: String,
    deployment: Value,
}

pub async fn run(amqp_url: &str) -> anyhow::Result<()> {
    let dir = fleet::bin_dir();
    fleet::ensure_binaries(&dir, &fleet::FULL_FLEET).await?;
    let env = Env::new(amqp_url).await?;
    let registry = Registry::start().await?;
    let work = std::env::temp_dir().join(format!("slipway-bench-deploy-{}", env.prefix));
    let result = async {
        let caddy = Caddy::start().await?;
        std::fs::create_dir_all(work.join("repos"))?;
        std::fs::create_dir_all(work.join("builds"))?;
        let workers =
            fleet::local_target_workers(registry.addr(), &caddy, SERVER, &work.join("builds"));
        let daemon = GitDaemon::start(&work.join("repos"))?;
        let mut fleet = Fleet::start(&env, &dir, workers).await?;
        let measured = measure_all(&fleet, &daemon, &work.join("repos"), &caddy).await;
        let measured = measured.map_err(|e| anyhow::anyhow!("{e:#}\n{}", fleet.tails()));
        fleet.stop().await;
        drop(daemon);
        measured
    }
    .await;
    podman::remove_leftovers(registry.addr()).await;
    drop(registry);
    let _ = std::fs::remove_dir_all(&work);
    env.cleanup().await;
    result
}

async fn measure_all(
    fleet: &Fleet,
    daemon: &GitDaemon,
    repos: &Path,
    caddy: &Caddy,
) -> anyhow::Result<()> {
    let source = fleet::workspace().join("examples/static-site");
    let page = std::fs::read_to_string(source.join("index.html"))?;
    anyhow::ensure!(
        page.contains("VERSION 1<"),
        "the example names no VERSION 1"
    );
    let repo = seed_repo(repos, APP, Some(&source))?;
    let (status, app) = fleet
        .call(
            reqwest::Method::POST,
            "/v1/apps",
            Some(json!({"name": APP, "git_url": daemon.url(APP), "git_ref": "main"})),
        )
        .await?;
    anyhow::ensure!(status == 201, "create app: {status} {app}");
    let mut ctx = Ctx {
        fleet,
        repo: &repo,
        url: format!("http://{}/", caddy.http_addr()),
        host: String::new(),
        app_id: app["id"].as_str().context("app id")?.to_owned(),
        page,
    };
    let result = async {
        let first = deploy(&ctx, json!({})).await?;
        ensure_live(&first)?;
        // http://HOST:PORT/
        let url = first["url"].as_str().context("url of the live release")?;
        let authority = url.trim_start_matches("http://").trim_end_matches('/');
        ctx.host = authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host)
            .to_owned();
        let (line, versions) = redeploy::redeploys(&ctx).await?;
        print(line)?;
        print(built_to_live(&ctx, &versions).await?)?;
        print(rollbacks(&ctx, &versions).await?)
    }
    .await;
    podman::remove_containers(&ctx.app_id).await;
    result
}

fn print(line: Value) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

/// Requests a deployment and waits until it ends.
async fn deploy(ctx: &Ctx<'_>, body: Value) -> anyhow::Result<Value> {
    let id = request_deploy(ctx, body).await?;
    wait_done(ctx, &id).await
}

async fn request_deploy(ctx: &Ctx<'_>, body: Value) -> anyhow::Result<String> {
    let (status, answer) = ctx
        .fleet
        .call(
            reqwest::Method::POST,
            &format!("/v1/apps/{APP}/deployments"),
            Some(body),
        )
        .await?;
    anyhow::ensure!(status == 202, "deploy: {status} {answer}");
    Ok(answer["id"].as_str().context("deployment id")?.to_owned())
}

/// Waits until the deployment ended and its attempts are over: a deploy is
/// `live` at the switch, and its attempt goes on to drain and stop the
/// release it replaced.
async fn wait_done(ctx: &Ctx<'_>, id: &str) -> anyhow::Result<Value> {
    let started = Instant::now();
    loop {
        let deployment = ctx.fleet.get(&format!("/v1/deployments/{id}")).await?;
        let ended = TERMINAL.contains(&deployment["state"].as_str().unwrap_or_default());
        let attempts_over = deployment["attempts"]
            .as_array()
            .is_some_and(|a| a.iter().all(|a| !a["finished_at"].is_null()));
        if ended && (deployment["state"] != "live" || attempts_over) {
            return Ok(deployment);
        }
        anyhow::ensure!(
            started.elapsed() < DEPLOY_TIMEOUT,
            "deployment {id} not done after {DEPLOY_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn ensure_live(deployment: &Value) -> anyhow::Result<()> {
    anyhow::ensure!(
        deployment["state"] == "live",
        "deployment {} ended {}: {} {}",
        deployment["id"],
        deployment["state"],
        deployment["error_code"],
        deployment["error_message"]
    );
    Ok(())
}

/// Versions 2, 3, 4 again by commit (the build stage reuses their images),
/// each image removed from local storage first.
async fn built_to_live(ctx: &Ctx<'_>, versions: &[Version]) -> anyhow::Result<Value> {
    let mut serving = Vec::new();
    let mut state_live = Vec::new();
    let mut splits = Vec::new();
    for version in versions.iter().take(REPEATS) {
        let image = version.deployment["image_ref"]
            .as_str()
            .context("image_ref")?;
        podman::remove_image(image).await?;
        let id = request_deploy(ctx, json!({"git_ref": version.commit})).await?;
        let answered = load::wait_version(&ctx.url, &ctx.host, version.n, DEPLOY_TIMEOUT).await?;
        let deployment = wait_done(ctx, &id).await?;
        ensure_live(&deployment)?;
        let built = event_at(&deployment, "built")?;
        serving.push(seconds(answered - built));
        state_live.push(seconds(event_at(&deployment, "live")? - built));
        splits.push(timings::parse(&deploy_logs(ctx, &id).await?)?);
    }
    let part = |f: fn(&timings::Split) -> f64| -> f64 {
        round(mean(&splits.iter().map(f).collect::<Vec<_>>()), 3)
    };
    Ok(json!({
        "scenario": "deploy",
        "measure": "built_to_live",
        "runs": serving.len(),
        "built_to_live_s": round(mean(&serving), 3),
        "built_to_live_max_s": round(max(&serving), 3),
        "built_to_state_live_s": round(mean(&state_live), 3),
        "pull_s": part(|s| s.pull_s),
        "start_s": part(|s| s.start_s),
        "health_s": part(|s| s.health_s),
        "switch_s": part(|s| s.switch_s),
        "image_removed_before_deploy": true,
        "health_settings": "default: the port listened on inside the container, up 1 s, looked at every 250 ms",
    }))
}

/// Rollbacks to the releases of versions 6, 5 and 4 (kept: their images
/// are in local storage), each while another version serves.
async fn rollbacks(ctx: &Ctx<'_>, versions: &[Version]) -> anyhow::Result<Value> {
    let mut serving = Vec::new();
    let mut state_live = Vec::new();
    for version in versions.iter().rev().take(REPEATS) {
        let started = Utc::now();
        let id = request_deploy(ctx, json!({"rollback_to": version.deployment["id"]})).await?;
        let answered = load::wait_version(&ctx.url, &ctx.host, version.n, DEPLOY_TIMEOUT).await?;
        let deployment = wait_done(ctx, &id).await?;
        ensure_live(&deployment)?;
        serving.push(seconds(answered - started));
        state_live.push(seconds(event_at(&deployment, "live")? - started));
    }
    Ok(json!({
        "scenario": "deploy",
        "measure": "rollback",
        "runs": serving.len(),
        "rollback_s": round(mean(&serving), 3),
        "rollback_max_s": round(max(&serving), 3),
        "rollback_to_state_live_s": round(mean(&state_live), 3),
    }))
}

fn max(samples: &[f64]) -> f64 {
    samples.iter().copied().fold(0.0, f64::max)
}

fn seconds(delta: chrono::TimeDelta) -> f64 {
    delta.num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6
}

pub fn event_at(deployment: &Value, to: &str) -> anyhow::Result<DateTime<Utc>> {
    let events = deployment["events"].as_array().context("events")?;
    let event = events
        .iter()
        .rev()
        .find(|e| e["to"] == to)
        .with_context(|| format!("no {to} event"))?;
    Ok(event["at"].as_str().context("at")?.parse()?)
}

async fn deploy_logs(ctx: &Ctx<'_>, id: &str) -> anyhow::Result<Vec<String>> {
    let body = ctx
        .fleet
        .get(&format!("/v1/deployments/{id}/logs?limit=10000"))
        .await?;
    Ok(body["lines"]
        .as_array()
        .context("lines")?
        .iter()
        .filter(|l| l["stage"] == "deploy")
        .filter_map(|l| l["line"].as_str().map(str::to_owned))
        .collect())
}
