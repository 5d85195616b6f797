//! `install`: an app installed on a new server bought from the Hetzner fake
//! (issue 15's Measure), through the real fleet (release API and the three
//! workers, a test-owned registry, git daemon and Caddy, real buildah and
//! podman); the fake's servers are real test hosts (`cloud_fake::hosts`),
//! set up over SSH by Slipway and deployed to by the deploy user's podman.
//! The fake runs on a thread and runtime of its own (`install/cloud.rs`).
//!
//! The app is the static-site example in a local git repository. A first
//! install builds its commit (`first_install.build` says whether layers an
//! earlier run left were found) and is destroyed; each measured run then
//! installs the same commit again as a new app of the same name, so its
//! build finds every layer cached and the registry holding them (the build
//! worker's image reuse is per app: a new app's build runs buildah, on
//! cached layers). `SLIPWAY_BENCH_INSTALL_RUNS` runs (default 3), each
//! destroyed, with nothing left at the fake, before the next, twice:
//! first with every server set up from scratch (`without_server_image`),
//! then, once the account saves server images and one install has saved
//! it, from that image (the main figures: the Measure's "cached image");
//! the image is deleted through the API at the end. With
//! `SLIPWAY_BENCH_INSTALL_VIA=servers` the same parts are driven by hand
//! (`POST /v1/servers`, an app on its target, a deploy: `install/flow.rs`).
//!
//! One JSON line: the stages of request → `completed` (`install/stages.rs`:
//! provider create, test host up, provider running, SSH ready, setup,
//! deploy, verify), from the server operation's log lines and events, the
//! app deployment's events, the install's `completed_at` and the fake's
//! own record of the create and of its host answering SSH; `total_ms`;
//! `overhead_ms` = total − the test host's boot − the fake's simulated
//! wait (its create action stays `running` for a number of reads, one
//! poll interval apart: both explicit under `fake`); `destroy_ms`. Means
//! over the runs, and each run.

mod cloud;
mod flow;
mod one;
mod stages;

use crate::build::fleet::{self, Fleet};
use crate::deploy::{podman, timings};
use crate::harness::Env;
use crate::stats::{max, mean, round};
use anyhow::Context;
use cloud::FakeCloud;
use flow::{Via, NAME};
use one::Measured;
use reqwest::Method;
use serde_json::{json, Value};
use slipway_testkit::caddy::Caddy;
use slipway_testkit::cloud_fake::hetzner::FakeHetzner;
use slipway_testkit::git::{seed_repo, GitDaemon};
use slipway_testkit::host::APT_SOURCE;
use slipway_testkit::registry::Registry;
use stages::{SimulatedWaits, STAGES};
use std::path::Path;
use std::time::Duration;

const DEFAULT_RUNS: usize = 3;
/// `SLIPWAY_CLOUD_POLL_INTERVAL` of the fleet: its default.
const POLL_INTERVAL: Duration = Duration::from_secs(2);
const OVERHEAD_TARGET_MS: f64 = 5000.0;

pub async fn run(amqp_url: &str) -> anyhow::Result<Value> {
    let runs = runs()?;
    let via = Via::from_env()?;
    let dir = fleet::bin_dir();
    fleet::ensure_binaries(&dir, &fleet::FULL_FLEET).await?;
    let env = Env::new(amqp_url).await?;
    let registry = Registry::start().await?;
    let work = std::env::temp_dir().join(format!("slipway-bench-install-{}", env.prefix));
    let cloud = FakeCloud::start()?;
    let result = async {
        let caddy = Caddy::start().await?;
        std::fs::create_dir_all(work.join("repos"))?;
        std::fs::create_dir_all(work.join("builds"))?;
        let mut workers =
            fleet::local_target_workers(registry.addr(), &caddy, "apps", &work.join("builds"));
        for (_, worker_env) in &mut workers {
            // New servers install from the test hosts' own apt repository.
            worker_env.push(("SLIPWAY_SERVER_APT_SOURCE".into(), APT_SOURCE.into()));
            worker_env.push((
                "SLIPWAY_CLOUD_POLL_INTERVAL".into(),
                format!("{}ms", POLL_INTERVAL.as_millis()),
            ));
        }
        let daemon = GitDaemon::start(&work.join("repos"))?;
        let mut fleet = Fleet::start(&env, &dir, workers).await?;
        let measured = measure(&fleet, &cloud, &daemon, &work.join("repos"), via, runs).await;
        let measured = measured.map_err(|e| {
            anyhow::anyhow!(
                "{e:#}\nboot failures: {:?}\n{}",
                cloud.boot_failures(),
                fleet.tails()
            )
        });
        fleet.stop().await;
        drop(daemon);
        measured
    }
    .await;
    cloud.stop().await;
    podman::remove_leftovers(registry.addr()).await;
    drop(registry);
    let _ = std::fs::remove_dir_all(&work);
    env.cleanup().await;
    result
}

/// The deploy job's pull, start, health and switch, mean over the runs
/// (null unless every run logged them).
fn mean_steps(measured: &[Measured]) -> Value {
    let Some(splits) = measured
        .iter()
        .map(|m| m.deploy_steps.clone())
        .collect::<Option<Vec<_>>>()
    else {
        return Value::Null;
    };
    let part =
        |f: fn(&timings::Split) -> f64| round(mean(&splits.iter().map(f).collect::<Vec<_>>()), 2);
    json!({"pull": part(|s| s.pull_s), "start": part(|s| s.start_s),
           "health": part(|s| s.health_s), "switch": part(|s| s.switch_s)})
}

/// The mean of each step's values over the runs, in the first run's order.
fn mean_by_name<'a>(runs: impl Iterator<Item = &'a Vec<(String, f64)>>) -> Value {
    let mut order: Vec<String> = Vec::new();
    let mut values: std::collections::HashMap<String, Vec<f64>> = Default::default();
    for run in runs {
        for (name, ms) in run {
            if !values.contains_key(name) {
                order.push(name.clone());
            }
            values.entry(name.clone()).or_default().push(*ms);
        }
    }
    order
        .iter()
        .map(|name| json!({"step": name, "ms": mean(&values[name]).round()}))
        .collect()
}

fn runs() -> anyhow::Result<usize> {
    match std::env::var("SLIPWAY_BENCH_INSTALL_RUNS") {
        Err(_) => Ok(DEFAULT_RUNS),
        Ok(n) => n
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .with_context(|| format!("SLIPWAY_BENCH_INSTALL_RUNS={n}: a positive count")),
    }
}

async fn measure(
    fleet: &Fleet,
    cloud: &FakeCloud,
    daemon: &GitDaemon,
    repos: &Path,
    via: Via,
    runs: usize,
) -> anyhow::Result<Value> {
    let source = fleet::workspace().join("examples/static-site");
    seed_repo(repos, NAME, Some(&source))?;
    let (status, account) = fleet
        .call(
            Method::POST,
            "/v1/cloud-accounts",
            Some(
                json!({"provider": "hetzner", "name": flow::ACCOUNT, "endpoint": cloud.url,
                        "credentials": {"token": cloud::TOKEN}}),
            ),
        )
        .await?;
    anyhow::ensure!(status == 201, "cloud account: {status} {account}");
    let waits = SimulatedWaits {
        action_reads: FakeHetzner::STEPS,
        poll_interval: POLL_INTERVAL,
    };
    let git_url = daemon.url(NAME);

    eprintln!("[bench] first install (builds the commit)");
    let first = one::measure(fleet, cloud, via, &git_url, &waits).await?;
    let mut fresh = Vec::new();
    for n in 1..=runs {
        eprintln!("[bench] install {n}/{runs}, set up from scratch");
        fresh.push(one::measure(fleet, cloud, via, &git_url, &waits).await?);
    }
    // The account saves a server image: the next install saves it (not
    // measured), the measured ones after it start from it.
    let (status, changed) = fleet
        .call(
            Method::PATCH,
            &format!("/v1/cloud-accounts/{}", flow::ACCOUNT),
            Some(json!({"server_images": true})),
        )
        .await?;
    anyhow::ensure!(status == 200, "server images on: {status} {changed}");
    eprintln!("[bench] install that saves the server image");
    let saving = one::measure(fleet, cloud, via, &git_url, &waits).await?;
    let mut measured = Vec::new();
    for n in 1..=runs {
        eprintln!("[bench] install {n}/{runs}, from the server image");
        measured.push(one::measure(fleet, cloud, via, &git_url, &waits).await?);
    }
    let image = delete_images(fleet, cloud).await?;
    let mut answer = summary(&measured);
    let extra = json!({
        "scenario": "install",
        "via": via.describe(),
        "runs": runs,
        "server_image": image,
        "overhead_target_ms": OVERHEAD_TARGET_MS,
        "without_server_image": {
            "note": "the same installs before the account saved a server image: every server set up from scratch",
            "stages": stages_of(&fresh),
            "summary": summary(&fresh),
        },
        "fake": {
            "host_boot_ms": mean(&fresh.iter().chain(&measured).map(|m| m.split.host_boot_ms).collect::<Vec<_>>()).round(),
            "host_boot": "podman run of the test host until its sshd answers, inside the fake's create",
            "create_action_reads_until_success": waits.action_reads,
            "cloud_poll_interval_ms": waits.poll_interval.as_millis(),
            "create_action_wait_ms": waits.create_action().as_millis(),
        },
        "saving_install": {
            "total_ms": saving.split.total_ms.round(),
            "overhead_ms": saving.split.overhead_ms.round(),
            "setup_ms": saving.split.stages[4].round(),
        },
        "first_install": {
            "total_ms": first.split.total_ms.round(),
            "overhead_ms": first.split.overhead_ms.round(),
            "build": first.build,
        },
        "per_run": per_run(&measured),
    });
    if let (Some(answer), Some(extra)) = (answer.as_object_mut(), extra.as_object()) {
        for (key, value) in extra {
            answer.insert(key.clone(), value.clone());
        }
    }
    answer["stages"] = stages_of(&measured);
    Ok(answer)
}

fn per_run(measured: &[Measured]) -> Value {
    measured.iter().map(|m| json!({
            "stages": m.split.stages_json(),
            "total_ms": m.split.total_ms.round(),
            "overhead_ms": m.split.overhead_ms.round(),
            "destroy_ms": m.destroy_ms.round(),
            "build": m.build,
            "deploy_steps_s": m.deploy_steps.as_ref().map(|s| json!({
                "pull": s.pull_s, "start": s.start_s, "health": s.health_s, "switch": s.switch_s})),
        })).collect::<Vec<_>>().into()
}

/// The mean of each stage over the runs.
fn stages_of(measured: &[Measured]) -> Value {
    let mut stages = serde_json::Map::new();
    for (i, name) in STAGES.iter().enumerate() {
        let values: Vec<f64> = measured.iter().map(|m| m.split.stages[i]).collect();
        stages.insert(format!("{name}_ms"), json!(mean(&values).round()));
    }
    Value::Object(stages)
}

/// Totals, overheads, destroy, the setup's and the deployment's detail:
/// means over the runs.
fn summary(measured: &[Measured]) -> Value {
    let each = |f: &dyn Fn(&Measured) -> f64| measured.iter().map(f).collect::<Vec<_>>();
    let totals = each(&|m| m.split.total_ms);
    let overheads = each(&|m| m.split.overhead_ms);
    json!({
        "total_ms": mean(&totals).round(),
        "total_max_ms": max(&totals).round(),
        "overhead_ms": mean(&overheads).round(),
        "overhead_max_ms": max(&overheads).round(),
        "destroy_ms": mean(&each(&|m| m.destroy_ms)).round(),
        "setup_detail_ms": mean_by_name(measured.iter().map(|m| &m.setup_detail)),
        // The app deployment's timeline: created → built (an install
        // queues it with itself, so its build runs while the server is
        // made; over servers + deploy it is queued once the server is
        // ready), the later of built and the server's `live` →
        // provisioning (a deployment waiting built goes on in the
        // transaction that ends the server's create: the queue's and the
        // worker's pick-up), provisioning → deploying (the target's
        // check), deploying → live (pull onto the new server, start,
        // health check, switch).
        "deploy_detail_ms": {
            "created_to_built": mean(&each(&|m| m.deploy_detail[0])).round(),
            "ready_to_provisioning": mean(&each(&|m| m.deploy_detail[1])).round(),
            "provisioning_to_deploying": mean(&each(&|m| m.deploy_detail[2])).round(),
            "deploying_to_live": mean(&each(&|m| m.deploy_detail[3])).round(),
        },
        "deploy_steps_s": mean_steps(measured),
    })
}

/// Deletes the account's server images through the API (what a user
/// does); the fake must then hold none. Answers what the image was.
async fn delete_images(fleet: &Fleet, cloud: &FakeCloud) -> anyhow::Result<Value> {
    let (status, listed) = fleet.call(Method::GET, "/v1/server-images", None).await?;
    anyhow::ensure!(status == 200, "server images: {status} {listed}");
    let images = listed["items"].as_array().cloned().unwrap_or_default();
    for image in &images {
        let id = image["id"].as_str().unwrap_or_default();
        let (status, body) = fleet
            .call(Method::DELETE, &format!("/v1/server-images/{id}"), None)
            .await?;
        anyhow::ensure!(status == 204, "delete image {id}: {status} {body}");
    }
    anyhow::ensure!(cloud.images() == 0, "the fake still holds an image");
    anyhow::ensure!(images.len() == 1, "one image was saved: {listed}");
    Ok(
        json!({"size_gb": images[0]["size_gb"], "monthly_cost_eur": images[0]["monthly_cost_eur"],
              "state": images[0]["state"]}),
    )
}
