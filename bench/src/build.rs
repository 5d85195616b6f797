//! `build`: the build stage of every example app through the real fleet
//! (release API binary and one build worker; a test-owned registry and git
//! daemon; real buildah). Each deployment is cancelled through the API once
//! it is built, so it ends without being deployed (no provision or deploy
//! worker runs) and the app's next deployment is dispatched. Examples run
//! one after another; each prints one JSON object:
//!
//! - `first_build_s`: the first deployment's build stage, from its
//!   `building` event to its `built` event (both from the deployment's
//!   events, timestamps written by the worker's state changes): fetch,
//!   plan, build, push and prune. Honest: the run builds on base images of
//!   its own (see `images`), so no layer cached by earlier runs or tests is
//!   reused; dependencies are really downloaded and installed
//!   (`first_build_install_cache_hit` is false). Making those base copies
//!   is not counted.
//! - `rebuild_s`: the same after a one-line change of the app's main source
//!   file (its `VERSION` line), pushed as a new commit; `rebuild_ratio` is
//!   `rebuild_s / first_build_s`, and `install_cache_hit` says whether the
//!   rebuild's log shows `Using cache` right after the dependency install
//!   step (`null` for examples without one).
//! - `cached_s`: a deployment of the unchanged commit again, reusing the
//!   image without building (`cached_reused` checks its log says so).
//! - `log_visible_*_ms`: for every line the first build's child processes
//!   printed (stdout/stderr streams, not the worker's own `slipway` lines):
//!   the wall-clock time the bench received the first
//!   `GET /v1/deployments/{id}/logs?after=SEQ` answer (polled every 20 ms)
//!   holding the line, minus the line's `at`. `at` is set by the worker's
//!   `LogHandle::line` right after `process.rs` read the line from the
//!   child's pipe (the engine's output passes a `tee` first, which writes
//!   what it reads at once), before the sink batches (≤ 50 ms) and commits
//!   it. So it counts sink batching, the commit, the API query, HTTP and up
//!   to one poll interval; it does not count output the engine keeps in its
//!   own buffers before writing it. Same host, same clock. A build prints
//!   a few dozen lines, so p99 is close to the maximum.
//!
//! Nothing is left behind: the fleet and registry are stopped by pid, the
//! database and queues dropped, and the images this run built (tagged and
//! intermediate) and its base copies removed with `buildah rmi`.

pub mod fleet;
pub mod images;

use crate::harness::Env;
use crate::stats::{self, percentile, round};
use anyhow::Context;
use chrono::{DateTime, Utc};
use fleet::Fleet;
use images::BaseImages;
use serde_json::{json, Value};
use slipway_testkit::git::{seed_repo, GitDaemon};
use slipway_testkit::registry::Registry;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};
use uuid::Uuid;

const TERMINAL: &[&str] = &["live", "failed", "cancelled", "superseded"];
const BUILD_TIMEOUT: Duration = Duration::from_secs(900);
const LOG_POLL: Duration = Duration::from_millis(20);

/// An example and its one-line change: file, line before, line after.
struct Example {
    name: &'static str,
    file: &'static str,
    before: &'static str,
    after: &'static str,
}

const EXAMPLES: [Example; 5] = [
    Example {
        name: "node-express",
        file: "server.js",
        before: "const VERSION = \"1\";",
        after: "const VERSION = \"2\";",
    },
    Example {
        name: "python-flask",
        file: "app.py",
        before: "VERSION = \"1\"",
        after: "VERSION = \"2\"",
    },
    Example {
        name: "go-http",
        file: "main.go",
        before: "const version = \"1\"",
        after: "const version = \"2\"",
    },
    Example {
        name: "static-site",
        file: "index.html",
        before: "static-site VERSION 1<",
        after: "static-site VERSION 2<",
    },
    Example {
        name: "dockerfile-app",
        file: "server.py",
        before: "VERSION = \"1\"",
        after: "VERSION = \"2\"",
    },
];

/// Runs every example and prints its line as soon as it is measured.
pub async fn run(amqp_url: &str) -> anyhow::Result<()> {
    let dir = fleet::bin_dir();
    fleet::ensure_binaries(&dir, &[fleet::API, "slipway-worker-build"]).await?;
    let run = Uuid::new_v4().simple().to_string()[..12].to_owned();
    let bases = BaseImages::create(&run).await?;
    let mut deployments = Vec::new();
    let result = with_services(amqp_url, &dir, &run, &bases, &mut deployments).await;
    bases.remove_with(&deployments).await;
    result
}

async fn with_services(
    amqp_url: &str,
    dir: &Path,
    run: &str,
    bases: &BaseImages,
    deployments: &mut Vec<String>,
) -> anyhow::Result<()> {
    let env = Env::new(amqp_url).await?;
    let registry = Registry::start().await?;
    let work = std::env::temp_dir().join(format!("slipway-bench-build-{run}"));
    let repos = work.join("repos");
    let builds = work.join("builds");
    std::fs::create_dir_all(&repos)?;
    std::fs::create_dir_all(&builds)?;
    let mut build_env = vec![
        ("SLIPWAY_REGISTRY".to_owned(), registry.addr().to_owned()),
        ("SLIPWAY_BUILD_DIR".to_owned(), builds.display().to_string()),
    ];
    build_env.extend(bases.worker_env.iter().cloned());
    build_env.extend(images::containers_conf());
    let result = async {
        let daemon = GitDaemon::start(&repos)?;
        let workers = vec![("slipway-worker-build", build_env)];
        let mut fleet = Fleet::start(&env, dir, workers).await?;
        let measured = measure_all(&fleet, &daemon, &repos, bases, deployments).await;
        let measured = measured.map_err(|e| anyhow::anyhow!("{e:#}\n{}", fleet.tails()));
        fleet.stop().await;
        drop(daemon);
        measured
    }
    .await;
    drop(registry);
    let _ = std::fs::remove_dir_all(&work);
    env.cleanup().await;
    result
}

async fn measure_all(
    fleet: &Fleet,
    daemon: &GitDaemon,
    repos: &Path,
    bases: &BaseImages,
    deployments: &mut Vec<String>,
) -> anyhow::Result<()> {
    for example in &EXAMPLES {
        eprintln!("[bench] build: {}", example.name);
        let line = measure(fleet, daemon, repos, bases, example, deployments).await?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    Ok(())
}

async fn measure(
    fleet: &Fleet,
    daemon: &GitDaemon,
    repos: &Path,
    bases: &BaseImages,
    example: &Example,
    deployments: &mut Vec<String>,
) -> anyhow::Result<Value> {
    let source = fleet::workspace().join("examples").join(example.name);
    let repo = seed_repo(repos, example.name, Some(&source))?;
    let mut app = json!({
        "name": example.name,
        "git_url": daemon.url(example.name),
        "git_ref": "main",
    });
    if example.name == "dockerfile-app" {
        app["build"] = json!({"build_env": {"BASE_IMAGE": bases.dockerfile_base}});
    }
    let (status, answer) = fleet
        .call(reqwest::Method::POST, "/v1/apps", Some(app))
        .await?;
    anyhow::ensure!(
        status == 201,
        "create app {}: {status} {answer}",
        example.name
    );

    let first = deploy(fleet, example.name, deployments).await?;
    let visible = follow_logs(fleet, first).await?;
    let (first_deployment, first_logs) = built(fleet, first).await?;
    let first_s = build_stage(&first_deployment)?;
    let install = first_deployment["build_plan"]["install_command"].as_str();
    // The honesty check of the first build: its install ran afresh.
    let first_install_cached = install.map(|install| used_cache(&first_logs, install));

    let text = std::fs::read_to_string(source.join(example.file))?;
    anyhow::ensure!(
        text.matches(example.before).count() == 1,
        "{}/{} has no single line with {:?}",
        example.name,
        example.file,
        example.before
    );
    let changed = text.replacen(example.before, example.after, 1);
    let commit = repo.push_change("main", example.file, &changed)?;
    let second = deploy(fleet, example.name, deployments).await?;
    let (rebuilt, rebuild_logs) = built(fleet, second).await?;
    anyhow::ensure!(
        rebuilt["resolved_commit"] == commit.as_str(),
        "the rebuild built {} instead of {commit}",
        rebuilt["resolved_commit"]
    );
    let rebuild_s = build_stage(&rebuilt)?;
    let install_cache_hit = install.map(|install| used_cache(&rebuild_logs, install));

    let third = deploy(fleet, example.name, deployments).await?;
    let (cached, cached_logs) = built(fleet, third).await?;
    let cached_s = build_stage(&cached)?;
    let cached_reused = cached_logs.iter().any(|l| l.contains("without building"));

    Ok(json!({
        "scenario": "build",
        "example": example.name,
        "stack": first_deployment["build_plan"]["stack"],
        "first_build_s": round(first_s, 2),
        "rebuild_s": round(rebuild_s, 2),
        "rebuild_ratio": round(rebuild_s / first_s, 3),
        "cached_s": round(cached_s, 3),
        "cached_reused": cached_reused,
        "install_step": install,
        "install_cache_hit": install_cache_hit,
        "first_build_install_cache_hit": first_install_cached,
        "changed_line": format!("{}: {}", example.file, example.after),
        "log_lines_measured": visible.len(),
        "log_visible_p50_ms": round(percentile(&visible, 50.0), 1),
        "log_visible_p99_ms": round(percentile(&visible, 99.0), 1),
        "log_visible_max_ms": round(stats::max(&visible), 1),
        "log_poll_interval_ms": LOG_POLL.as_millis(),
        "build_workers": 1,
    }))
}

async fn deploy(fleet: &Fleet, app: &str, deployments: &mut Vec<String>) -> anyhow::Result<Uuid> {
    let (status, answer) = fleet
        .call(
            reqwest::Method::POST,
            &format!("/v1/apps/{app}/deployments"),
            Some(json!({})),
        )
        .await?;
    anyhow::ensure!(status == 202, "deploy {app}: {status} {answer}");
    let id: Uuid = answer["id"].as_str().context("deployment id")?.parse()?;
    deployments.push(id.to_string());
    Ok(id)
}

/// Polls the deployment's log until its build stage is over and no line is left;
/// returns, per line printed by a build child, how long after its `at` the
/// bench first saw it (ms).
async fn follow_logs(fleet: &Fleet, id: Uuid) -> anyhow::Result<Vec<f64>> {
    let started = Instant::now();
    let mut after = 0_i64;
    let mut visible = Vec::new();
    loop {
        let body = fleet
            .get(&format!(
                "/v1/deployments/{id}/logs?after={after}&limit=1000"
            ))
            .await?;
        let seen = Utc::now();
        let lines = body["lines"].as_array().context("lines")?;
        for line in lines {
            if line["stage"] != "build" || line["stream"] == "slipway" {
                continue;
            }
            let at: DateTime<Utc> = line["at"].as_str().context("at")?.parse()?;
            visible.push((seen - at).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0);
        }
        after = body["next"].as_i64().context("next")?;
        let state = body["state"].as_str().unwrap_or_default();
        if lines.is_empty() && !["queued", "building"].contains(&state) {
            return Ok(visible);
        }
        anyhow::ensure!(
            started.elapsed() < BUILD_TIMEOUT,
            "deployment {id} still {state} after {BUILD_TIMEOUT:?}"
        );
        tokio::time::sleep(LOG_POLL).await;
    }
}

/// Waits until the deployment is built, cancels it (it would wait for a
/// provision worker forever) and waits for it to end; returns it and all
/// its log lines. A deployment that ends without being built is an error.
async fn built(fleet: &Fleet, id: Uuid) -> anyhow::Result<(Value, Vec<String>)> {
    let started = Instant::now();
    let mut cancelled = false;
    let deployment = loop {
        let deployment = fleet.get(&format!("/v1/deployments/{id}")).await?;
        let state = deployment["state"].as_str().unwrap_or_default();
        if TERMINAL.contains(&state) {
            break deployment;
        }
        let built = deployment["events"]
            .as_array()
            .is_some_and(|events| events.iter().any(|e| e["to"] == "built"));
        if built && !cancelled {
            let (status, answer) = fleet
                .call(
                    reqwest::Method::POST,
                    &format!("/v1/deployments/{id}/cancel"),
                    None,
                )
                .await?;
            anyhow::ensure!(
                status == 200 || status == 409,
                "cancel {id}: {status} {answer}"
            );
            cancelled = true;
        }
        anyhow::ensure!(
            started.elapsed() < BUILD_TIMEOUT,
            "deployment {id} still {state} after {BUILD_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let body = fleet
        .get(&format!("/v1/deployments/{id}/logs?limit=10000"))
        .await?;
    let lines: Vec<String> = body["lines"]
        .as_array()
        .context("lines")?
        .iter()
        .filter_map(|l| l["line"].as_str().map(str::to_owned))
        .collect();
    let built = deployment["events"]
        .as_array()
        .is_some_and(|events| events.iter().any(|e| e["to"] == "built"));
    anyhow::ensure!(
        built,
        "deployment {id} was not built: {} {}\n{}",
        deployment["error_code"],
        deployment["error_message"],
        tail(&lines, 40)
    );
    Ok((deployment, lines))
}

fn tail(lines: &[String], n: usize) -> String {
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Seconds from the last `building` event to the `built` event.
fn build_stage(deployment: &Value) -> anyhow::Result<f64> {
    let events = deployment["events"].as_array().context("events")?;
    let at = |event: &Value| -> anyhow::Result<DateTime<Utc>> {
        Ok(event["at"].as_str().context("event at")?.parse()?)
    };
    let built = events
        .iter()
        .position(|e| e["to"] == "built")
        .context("no built event")?;
    let building = events[..built]
        .iter()
        .rposition(|e| e["to"] == "building")
        .context("no building event before built")?;
    let elapsed = at(&events[built])? - at(&events[building])?;
    Ok(elapsed.num_microseconds().context("duration")? as f64 / 1e6)
}

/// Whether the engine reported `Using cache` for the step running `install`
/// (between its `STEP` line and the next one).
fn used_cache(lines: &[String], install: &str) -> bool {
    let Some(step) = lines
        .iter()
        .position(|l| l.contains("STEP ") && l.contains(install))
    else {
        return false;
    };
    lines[step + 1..]
        .iter()
        .take_while(|l| !l.contains("STEP "))
        .any(|l| l.contains("Using cache"))
}
