//! `idle`: what a fleet of idle apps costs. N small apps (one Perl HTTP
//! server each, built from one repo, so they share one image) are deployed
//! on the local target through the real fleet (release binaries unless
//! `SLIPWAY_BIN_DIR` names others, and the JSON's `binaries` says which; a
//! registry, git daemon and Caddy of the run's own); once they are quiet:
//!
//! - `host_cpu_cores`: busy CPU of the whole host over the window from
//!   `/proc/stat` with the fleet running, minus the same window with the
//!   fleet's processes and their children (the podman API service)
//!   stopped (SIGSTOP), so work the workers cause in a
//!   service or a Postgres backend is counted. Other work on a shared
//!   machine makes this noisy; the per-process table is the robust figure.
//! - `processes`: CPU (cores) per role over the running window: each worker
//!   with its children (reaped ones included), the podman service, the
//!   apps' `conmon`s, the apps, the fleet's Postgres backends.
//! - `others_cores` (and `…_workers_stopped`): the busiest processes
//!   outside those roles by command name, kernel threads among them, and
//!   `unattributed`, the host's busy time no process alive at the window's
//!   end accounts for: where a host-wide difference the table does not
//!   explain goes.
//! - `rss_mb`: each worker's resident memory.
//! - `log_visibility_ms`: a request makes an app print a line; the time
//!   until `GET /v1/apps/{app}/logs` returns it.
//! - `repair_ms`: `podman kill` of an app's container (a series of kills
//!   for each batch size of `SLIPWAY_BENCH_IDLE_KILL_BATCH`, `10`: so many
//!   apps killed at once; `10,1` adds a series of one death at a time) → the app answers 200 through Caddy again. An app is
//!   not killed a third time within the deploy worker's crash window (its
//!   backoff is a policy, not a repair's speed): with few apps the run
//!   waits for the window.
//!
//! `SLIPWAY_BENCH_IDLE_APPS` (`10,25,50,100`), `SLIPWAY_BENCH_IDLE_WINDOW`
//! (`60s`), `SLIPWAY_BENCH_IDLE_KILLS` (`50`), `SLIPWAY_BENCH_IDLE_KILL_BATCH`
//! (`10`) and
//! `SLIPWAY_BENCH_IDLE_LOG_SAMPLES` (`40`) shape the run; one JSON line per
//! app count. The apps are added to the same fleet count by count. Every
//! container, image, process, queue and the database are removed after.

mod procs;
mod repair;

use crate::build::fleet::{self, Fleet};
use crate::deploy::podman;
use crate::harness::Env;
use crate::stats::{max, percentile, round};
use anyhow::Context;
use serde_json::{json, Value};
use slipway_testkit::caddy::Caddy;
use slipway_testkit::git::{seed_repo, GitDaemon};
use slipway_testkit::registry::Registry;
use std::io::Write;
use std::time::{Duration, Instant};

const REPO: &str = "idle-app";
const DEPLOY_TIMEOUT: Duration = Duration::from_secs(600);
/// Time the fleet gets after the last deploy before the window opens.
const QUIET: Duration = Duration::from_secs(15);

const DOCKERFILE: &str = "FROM localhost/slipway/debian:bookworm\n\
    COPY server.pl /srv/server.pl\n\
    ENV PORT=8080\n\
    CMD [\"perl\", \"/srv/server.pl\"]\n";
/// A tiny HTTP server from perl-base (in every Debian image): answers 200
/// to everything and prints the path it was asked for.
const SERVER: &str = r#"use strict; use IO::Socket::INET; $| = 1;
my $s = IO::Socket::INET->new(LocalAddr => '0.0.0.0', LocalPort => $ENV{PORT} || 8080,
    Listen => 64, ReuseAddr => 1, Proto => 'tcp') or die "listen: $!";
print "listening on $ENV{PORT}\n";
while (my $c = $s->accept) {
    my $line = <$c> // ''; while (my $h = <$c>) { last if $h =~ /^\r?\n$/; }
    my (undef, $path) = split / /, $line;
    print "hit $path\n" if defined $path;
    print $c "HTTP/1.0 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";
    close $c;
}
"#;

/// One deployed app of the run.
pub struct App {
    pub name: String,
    pub id: String,
    /// Its Caddy host name.
    pub host: String,
}

struct Settings {
    counts: Vec<usize>,
    window: Duration,
    kills: usize,
    kill_batches: Vec<usize>,
    log_samples: usize,
}

fn settings() -> anyhow::Result<Settings> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let counts = var("SLIPWAY_BENCH_IDLE_APPS")
        .unwrap_or_else(|| "10,25,50,100".into())
        .split(',')
        .map(|c| c.trim().parse::<usize>())
        .collect::<Result<Vec<_>, _>>()
        .context("SLIPWAY_BENCH_IDLE_APPS: comma-separated app counts")?;
    anyhow::ensure!(
        counts.iter().all(|c| (1..=100).contains(c)),
        "SLIPWAY_BENCH_IDLE_APPS: counts are 1 to 100"
    );
    let window = humantime_secs(&var("SLIPWAY_BENCH_IDLE_WINDOW").unwrap_or_else(|| "60".into()))?;
    let number = |name: &str, default: usize| -> anyhow::Result<usize> {
        var(name).map_or(Ok(default), |v| v.parse().with_context(|| name.to_owned()))
    };
    Ok(Settings {
        counts,
        window,
        kills: number("SLIPWAY_BENCH_IDLE_KILLS", 50)?,
        kill_batches: var("SLIPWAY_BENCH_IDLE_KILL_BATCH")
            .unwrap_or_else(|| "10".into())
            .split(',')
            .map(|b| b.trim().parse::<usize>().map(|b| b.max(1)))
            .collect::<Result<Vec<_>, _>>()
            .context("SLIPWAY_BENCH_IDLE_KILL_BATCH: comma-separated batch sizes")?,
        log_samples: number("SLIPWAY_BENCH_IDLE_LOG_SAMPLES", 40)?,
    })
}

fn humantime_secs(value: &str) -> anyhow::Result<Duration> {
    let secs: u64 = value
        .trim_end_matches('s')
        .parse()
        .context("SLIPWAY_BENCH_IDLE_WINDOW: seconds")?;
    Ok(Duration::from_secs(secs.max(5)))
}

pub async fn run(amqp_url: &str) -> anyhow::Result<()> {
    let settings = settings()?;
    let dir = fleet::bin_dir();
    fleet::ensure_binaries(&dir, &fleet::FULL_FLEET).await?;
    let env = Env::new(amqp_url).await?;
    let registry = Registry::start().await?;
    let work = std::env::temp_dir().join(format!("slipway-bench-idle-{}", env.prefix));
    let mut apps = Vec::new();
    // Every app created, deployed or not, for the cleanup.
    let mut created = Vec::new();
    let result = async {
        let caddy = Caddy::start().await?;
        let source = work.join("source");
        std::fs::create_dir_all(&source)?;
        std::fs::create_dir_all(work.join("repos"))?;
        std::fs::create_dir_all(work.join("builds"))?;
        std::fs::write(source.join("Dockerfile"), DOCKERFILE)?;
        std::fs::write(source.join("server.pl"), SERVER)?;
        seed_repo(&work.join("repos"), REPO, Some(&source))?;
        let workers =
            fleet::local_target_workers(registry.addr(), &caddy, "apps", &work.join("builds"));
        let daemon = GitDaemon::start(&work.join("repos"))?;
        let mut fleet = Fleet::start(&env, &dir, workers).await?;
        let git_url = daemon.url(REPO);
        let mut kills = repair::Kills::default();
        let measured = async {
            for &count in &settings.counts {
                add_apps(&fleet, &git_url, &mut apps, &mut created, count).await?;
                tokio::time::sleep(QUIET).await;
                let line = measure(&fleet, &env, &caddy, &apps, &settings, &mut kills).await?;
                let mut out = std::io::stdout().lock();
                writeln!(out, "{line}")?;
                out.flush()?;
            }
            anyhow::Ok(())
        }
        .await
        .map_err(|e| anyhow::anyhow!("{e:#}\n{}", fleet.tails()));
        fleet.stop().await;
        drop(daemon);
        measured
    }
    .await;
    for app_id in &created {
        podman::remove_containers(app_id).await;
    }
    podman::remove_leftovers(registry.addr()).await;
    drop(registry);
    let _ = std::fs::remove_dir_all(&work);
    env.cleanup().await;
    result
}

/// Creates and deploys apps until there are `count`, all at once. A
/// deployment that fails (a loaded host can time a start out) is tried
/// again, up to three times.
async fn add_apps(
    fleet: &Fleet,
    git_url: &str,
    apps: &mut Vec<App>,
    created: &mut Vec<String>,
    count: usize,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut pending = Vec::new();
    for i in apps.len()..count {
        let name = format!("idle-{i}");
        let body = json!({"name": name, "git_url": git_url, "git_ref": "main"});
        let (status, app) = fleet
            .call(reqwest::Method::POST, "/v1/apps", Some(body))
            .await?;
        anyhow::ensure!(status == 201, "create app: {status} {app}");
        let app_id = app["id"].as_str().context("app id")?.to_owned();
        created.push(app_id.clone());
        let deployment = deploy(fleet, &name).await?;
        pending.push((name, app_id, deployment));
    }
    for (name, app_id, mut deployment) in pending {
        let mut tries = 1;
        let done = loop {
            match wait_live(fleet, &deployment).await {
                Ok(done) => break done,
                Err(error) if tries < 3 => {
                    eprintln!("[bench] idle: {name}: {error:#}; deploying again");
                    tries += 1;
                    deployment = deploy(fleet, &name).await?;
                }
                Err(error) => return Err(error),
            }
        };
        let url = done["url"].as_str().context("url of the live release")?;
        let authority = url.trim_start_matches("http://").trim_end_matches('/');
        let host = authority
            .rsplit_once(':')
            .map_or(authority, |(h, _)| h)
            .to_owned();
        apps.push(App {
            name,
            id: app_id,
            host,
        });
    }
    eprintln!(
        "[bench] idle: {count} apps live ({:.0} s)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn deploy(fleet: &Fleet, app: &str) -> anyhow::Result<String> {
    let path = format!("/v1/apps/{app}/deployments");
    let (status, deployment) = fleet
        .call(reqwest::Method::POST, &path, Some(json!({})))
        .await?;
    anyhow::ensure!(status == 202, "deploy: {status} {deployment}");
    Ok(deployment["id"]
        .as_str()
        .context("deployment id")?
        .to_owned())
}

async fn wait_live(fleet: &Fleet, id: &str) -> anyhow::Result<Value> {
    let started = Instant::now();
    loop {
        let deployment = fleet.get(&format!("/v1/deployments/{id}")).await?;
        match deployment["state"].as_str().unwrap_or_default() {
            "live" => return Ok(deployment),
            "failed" | "cancelled" | "superseded" => anyhow::bail!(
                "deployment {id} ended {}: {} {}",
                deployment["state"],
                deployment["error_code"],
                deployment["error_message"]
            ),
            _ => {}
        }
        anyhow::ensure!(
            started.elapsed() < DEPLOY_TIMEOUT,
            "deployment {id} not live in time"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Stops (SIGSTOP) or continues every process of the fleet and what they
/// started (the deploy worker's podman API service, whose followers and
/// event stream cost CPU of their own), so the stopped window is the host
/// without the fleet.
fn pause(fleet: &Fleet, stop: bool) {
    use nix::sys::signal::{kill, Signal};
    let signal = if stop {
        Signal::SIGSTOP
    } else {
        Signal::SIGCONT
    };
    let all = procs::snapshot();
    for (_, root) in fleet.pids() {
        for pid in procs::tree(&all, root) {
            let _ = kill(nix::unistd::Pid::from_raw(pid), signal);
        }
    }
}

async fn measure(
    fleet: &Fleet,
    env: &Env,
    caddy: &Caddy,
    apps: &[App],
    settings: &Settings,
    kills: &mut repair::Kills,
) -> anyhow::Result<Value> {
    let roles = procs::Roles::new(fleet.pids(), &env.db.name, apps);
    let running = roles.window(settings.window).await?;
    let stopped = {
        pause(fleet, true);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let stopped = roles.window(settings.window).await;
        pause(fleet, false);
        stopped?
    };
    let rss: serde_json::Map<String, Value> = fleet
        .pids()
        .into_iter()
        .map(|(name, pid)| (name, json!(round(procs::rss_mb(pid), 1))))
        .collect();
    let url = format!("http://{}/", caddy.http_addr());
    let visibility = repair::log_visibility(fleet, &url, apps, settings.log_samples).await?;
    let mut repair = Vec::new();
    for &batch in &settings.kill_batches {
        let (repairs, unrepaired) =
            repair::repairs(&url, apps, settings.kills, batch, kills).await?;
        repair.push(json!({"batch": batch, "kills": repairs.len() + unrepaired,
            "unrepaired": unrepaired, "p50": round(percentile(&repairs, 50.0), 1),
            "p99": round(percentile(&repairs, 99.0), 1), "max": round(max(&repairs), 1)}));
    }
    Ok(json!({
        "scenario": "idle",
        "binaries": fleet::bin_dir().display().to_string(),
        "apps": apps.len(),
        "window_s": settings.window.as_secs(),
        "host_cpu_cores": round(running.host - stopped.host, 3),
        "host_cpu_cores_running": round(running.host, 3),
        "host_cpu_cores_workers_stopped": round(stopped.host, 3),
        "processes_cores": running.table,
        "processes_cores_workers_stopped": stopped.table,
        "others_cores": running.others,
        "others_cores_workers_stopped": stopped.others,
        "fleet_cores": round(running.fleet_total(), 3),
        "rss_mb": rss,
        "log_visibility_ms": {"samples": visibility.len(), "p50": round(percentile(&visibility, 50.0), 1),
            "p99": round(percentile(&visibility, 99.0), 1), "max": round(max(&visibility), 1)},
        "repair_ms": repair,
    }))
}
