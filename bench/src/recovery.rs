//! `recovery`: the real worker binaries (2 build, 1 provision, 1 deploy)
//! as separate processes with a 1 s heartbeat, 5 s lease timeout and 1 s
//! sweep. Orphan rescue: a 20 s probe runs on a build worker, that worker
//! is SIGKILLed, and the time until another worker has claimed a new
//! attempt of the job is measured (3 rounds; the killed worker is respawned
//! under a new id). Cancel: a 30 s probe runs, its child's process group is
//! read from the deployment's log, the deployment is cancelled with
//! `deployments::cancel` as the API does, and the time from the commit
//! until the child is gone (or a zombie) is measured (20 rounds).
//! Binaries come from `$SLIPWAY_BIN_DIR`, else `target/release` (built with
//! `cargo build --release --bins` first if missing); every process is
//! spawned here, in its own process group, and stopped by its pid.

mod procs;

use crate::harness::{self, Env};
use crate::stats::{self, percentile, round};
use nix::sys::signal::Signal;
use procs::{bin_dir, ensure_binaries, Worker, BINARIES};
use serde_json::{json, Value};
use slipway_shared::db::deployments::{self, CancelOutcome};
use slipway_shared::probe::ProbeSpec;
use std::path::Path;
use std::time::{Duration, Instant};
use uuid::Uuid;
const ORPHAN_ROUNDS: usize = 3;
const CANCEL_ROUNDS: usize = 20;

pub async fn run(amqp_url: &str) -> anyhow::Result<Value> {
    let dir = bin_dir();
    ensure_binaries(&dir).await?;
    let env = Env::new(amqp_url).await?;
    let mut workers = Vec::new();
    let result = measure(&env, &dir, &mut workers).await;
    for worker in workers {
        worker.stop(Duration::from_secs(10)).await;
    }
    env.cleanup().await;
    result
}

async fn measure(env: &Env, dir: &Path, workers: &mut Vec<Worker>) -> anyhow::Result<Value> {
    let tag = &env.prefix[..env.prefix.len() - 1];
    let id = |name: &str| format!("{tag}-{name}");
    for (binary, name) in BINARIES.iter().zip(["build-1", "provision-1", "deploy-1"]) {
        workers.push(Worker::spawn(env, dir, binary, &id(name))?);
    }
    workers.push(Worker::spawn(env, dir, BINARIES[0], &id("build-2"))?);
    let pool = &env.db.pool;
    let project = harness::create_project(pool).await?;

    let mut rescues = Vec::new();
    for round in 0..ORPHAN_ROUNDS {
        let spec = ProbeSpec {
            duration_ms: 20_000,
            ..ProbeSpec::default()
        };
        let deployment = harness::create_probe(pool, &env.names, project, &spec).await?;
        let (job, holder) = wait_running(pool, deployment).await?;
        let victim = workers
            .iter()
            .position(|w| w.id == holder)
            .ok_or_else(|| anyhow::anyhow!("job held by unknown worker {holder}"))?;
        workers[victim].signal(Signal::SIGKILL);
        let killed = Instant::now();
        poll(
            Duration::from_secs(60),
            Duration::from_millis(10),
            || async {
                sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM job_attempts WHERE job_id = $1 AND worker <> $2)",
                )
                .bind(job)
                .bind(&holder)
                .fetch_one(pool)
                .await
                .unwrap_or(false)
            },
        )
        .await
        .map_err(|_| anyhow::anyhow!("job {job} not rescued within 60 s"))?;
        let rescue = killed.elapsed().as_secs_f64();
        eprintln!("[bench] recovery: round {round}: killed {holder}; rescued after {rescue:.2} s");
        rescues.push(rescue);
        let _ = workers.remove(victim).child.wait().await;
        workers.push(Worker::spawn(
            env,
            dir,
            BINARIES[0],
            &id(&format!("build-r{round}")),
        )?);
        cancel(pool, env, project, deployment).await?;
    }

    let mut cancels = Vec::new();
    for _ in 0..CANCEL_ROUNDS {
        let spec = ProbeSpec {
            duration_ms: 30_000,
            ..ProbeSpec::default()
        };
        let deployment = harness::create_probe(pool, &env.names, project, &spec).await?;
        wait_running(pool, deployment).await?;
        let pgid = process_group(pool, deployment).await?;
        anyhow::ensure!(alive(pgid), "probe child {pgid} is not running");
        cancel(pool, env, project, deployment).await?;
        let committed = Instant::now();
        poll(
            Duration::from_secs(30),
            Duration::from_millis(1),
            || async { !alive(pgid) },
        )
        .await
        .map_err(|_| anyhow::anyhow!("probe child {pgid} survived its cancel by 30 s"))?;
        cancels.push(committed.elapsed().as_secs_f64() * 1000.0);
    }

    Ok(json!({
        "scenario": "recovery",
        "build_workers": 2, "provision_workers": 1, "deploy_workers": 1,
        "heartbeat_interval_s": 1, "lease_timeout_s": 5, "sweep_interval_s": 1,
        "orphan_rounds": ORPHAN_ROUNDS,
        "orphan_rescue_s_max": round(stats::max(&rescues), 3),
        "orphan_rescue_s_mean": round(stats::mean(&rescues), 3),
        "cancel_rounds": CANCEL_ROUNDS,
        "cancel_clock_from": "commit of the cancel transaction returned",
        "cancel_p50_ms": round(percentile(&cancels, 50.0), 2),
        "cancel_p99_ms": round(percentile(&cancels, 99.0), 2),
        "cancel_max_ms": round(stats::max(&cancels), 2),
    }))
}

/// Polls `check` every `every` until it is true; `Err` after `timeout`.
async fn poll<F, Fut>(timeout: Duration, every: Duration, mut check: F) -> Result<(), ()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        if Instant::now() >= deadline {
            return Err(());
        }
        tokio::time::sleep(every).await;
    }
    Ok(())
}

/// Waits until the deployment's build job runs; (job id, lease worker).
async fn wait_running(pool: &sqlx::PgPool, deployment: Uuid) -> anyhow::Result<(Uuid, String)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let running: Option<(Uuid, String)> = sqlx::query_as(
            "SELECT id, lease_worker FROM jobs WHERE deployment_id = $1 AND stage = 'build' AND state = 'running'",
        )
        .bind(deployment)
        .fetch_optional(pool)
        .await?;
        if let Some(running) = running {
            return Ok(running);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "build job of {deployment} not running after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The child's process group, from the `started process group N` log line.
async fn process_group(pool: &sqlx::PgPool, deployment: Uuid) -> anyhow::Result<i32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let line: Option<String> = sqlx::query_scalar(
            "SELECT line FROM deployment_logs WHERE deployment_id = $1 AND stage = 'build'
             AND line LIKE 'started process group %' ORDER BY seq DESC LIMIT 1",
        )
        .bind(deployment)
        .fetch_optional(pool)
        .await?;
        if let Some(pgid) = line.and_then(|l| l.rsplit(' ').next().and_then(|n| n.parse().ok())) {
            return Ok(pgid);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no process group logged for {deployment}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn cancel(
    pool: &sqlx::PgPool,
    env: &Env,
    project: Uuid,
    deployment: Uuid,
) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    let outcome = deployments::cancel(&mut tx, &env.names, project, deployment).await?;
    tx.commit().await?;
    anyhow::ensure!(
        outcome == CancelOutcome::Cancelled,
        "cancel of {deployment}: {outcome:?}"
    );
    Ok(())
}

/// Whether `pid` exists and is not a zombie (`/proc/PID/stat` state `Z`).
fn alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    !matches!(state, Some("Z" | "X"))
}
