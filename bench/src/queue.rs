//! `queue`: how fast jobs go through the real path — a transaction per job
//! calling `deployments::create` (deployment, event, job and outbox row),
//! the runtime's own outbox relay publishing with confirms, and one
//! in-process `Runtime` for the build stage (prefetch 64, concurrency 256:
//! a delivery is acked once claimed, so prefetch bounds only unclaimed
//! deliveries while concurrency bounds running jobs) claiming, running a do-nothing `probe.v1` handler and committing the
//! outcome (which also creates the provision job; its queue is declared so
//! the relay can route it, and nobody consumes it). Compared, on the same
//! broker and in the same run, with a bare lapin loop on a fresh quorum
//! queue; then the latency of an open loop at 20 jobs/s on that runtime.
//! Exactly one relay runs: the runtime's. Last, the enqueue side alone, in
//! a database of its own with nothing consuming: the ceiling it sets.

mod raw;

use crate::harness::{self, Env};
use crate::stats::{self, ms, percentile, round};
use async_trait::async_trait;
use serde_json::{json, Value};
use slipway_shared::job::{Effects, JobContext, JobError, JobHandler, Stage};
use slipway_shared::logsink::LogSink;
use slipway_shared::metrics::METRICS;
use slipway_shared::probe::{ProbeSpec, PROBE_KIND};
use slipway_shared::queue::runtime::Runtime;
use slipway_shared::worker::LOG_FLUSH_INTERVAL;
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const JOBS: usize = 20_000;
const ENQUEUERS: usize = 16;
const PREFETCH: u16 = 64;
/// Jobs the runtime runs at once. Each job waits for three batched commits
/// (claim, log flush, outcome), so with do-nothing jobs throughput is
/// concurrency / cycle time; a worker with cheap jobs is configured so.
const CONCURRENCY: u16 = 256;
const CONFIRM_WINDOW: usize = 256;
const LATENCY_RATE: u64 = 20;
const LATENCY_SECONDS: u64 = 15;

type Clock = Arc<Mutex<HashMap<Uuid, Instant>>>;

/// Does nothing but note when it was entered, per deployment.
struct Noop {
    started: Clock,
}

#[async_trait]
impl JobHandler for Noop {
    fn kind(&self) -> &'static str {
        PROBE_KIND
    }

    async fn run(&self, ctx: &JobContext) -> Result<Effects, JobError> {
        let now = Instant::now();
        lock(&self.started)
            .entry(ctx.info.deployment_id)
            .or_insert(now);
        Ok(vec![])
    }
}

fn lock(clock: &Clock) -> std::sync::MutexGuard<'_, HashMap<Uuid, Instant>> {
    clock.lock().unwrap_or_else(|p| p.into_inner())
}

pub async fn run(amqp_url: &str) -> anyhow::Result<Value> {
    let mut env = Env::new(amqp_url).await?;
    let result = measure(&mut env).await;
    env.cleanup().await;
    let mut line = result?;
    let alone = enqueue_alone(amqp_url).await?;
    line["enqueue_alone_jobs_per_s"] = round(alone, 1).into();
    Ok(line)
}

async fn measure(env: &mut Env) -> anyhow::Result<Value> {
    env.declare(&[Stage::Build, Stage::Provision]).await?;
    let project = harness::create_project(&env.db.pool).await?;
    let enqueue_pool = harness::pool(env, ENQUEUERS as u32 + 1).await?;

    let mut settings = env.worker_settings("bench-queue", CONCURRENCY);
    settings.prefetch = PREFETCH;
    let pool = slipway_shared::db::pool(&settings.common.database_url, 64 + 6)?;
    let sink_stop = CancellationToken::new();
    let (logs, sink_task) = LogSink::start(pool.clone(), LOG_FLUSH_INTERVAL, sink_stop.clone());
    let started: Clock = Arc::default();
    let runtime = Runtime::new(pool, settings, Stage::Build, logs).with_handler(Noop {
        started: started.clone(),
    });
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(Arc::new(runtime).run(shutdown.clone()));

    let outcome = async {
        let throughput = throughput(env, &enqueue_pool, project).await?;
        let raw = tokio::time::timeout(
            Duration::from_secs(120),
            raw::run(env, JOBS, PREFETCH, CONFIRM_WINDOW),
        )
        .await
        .map_err(|_| anyhow::anyhow!("the raw lapin loop did not finish within 120 s"))??;
        let latency = latency(env, &enqueue_pool, project, &started).await?;
        anyhow::Ok((throughput, raw, latency))
    }
    .await;

    shutdown.cancel();
    match tokio::time::timeout(Duration::from_secs(30), running).await {
        Ok(Ok(Err(error))) => eprintln!("[bench] runtime ended with {error:#}"),
        Err(_) => eprintln!("[bench] runtime did not stop within 30 s"),
        _ => {}
    }
    sink_stop.cancel();
    let _ = sink_task.await;
    enqueue_pool.close().await;

    let ((runtime_per_s, enqueue_per_s), raw_per_s, latency) = outcome?;
    // Every job should have run exactly once: one attempt, succeeded.
    let (attempts, not_succeeded): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE outcome IS DISTINCT FROM 'succeeded') FROM job_attempts",
    )
    .fetch_one(&env.db.pool)
    .await?;
    let mut line = json!({
        "scenario": "queue",
        "jobs": JOBS,
        "prefetch": PREFETCH,
        "concurrency": CONCURRENCY,
        "enqueuers": ENQUEUERS,
        "relays": 1,
        "relay": "the runtime's own (no API relay)",
        "runtime_jobs_per_s": round(runtime_per_s, 1),
        "enqueue_only_jobs_per_s": round(enqueue_per_s, 1),
        "raw_jobs_per_s": round(raw_per_s, 1),
        "ratio": round(runtime_per_s / raw_per_s, 4),
        "raw_confirm_window": CONFIRM_WINDOW,
        "attempts_total": attempts,
        "attempts_not_succeeded": not_succeeded,
    });
    if let (Some(line), Value::Object(latency)) = (line.as_object_mut(), latency) {
        line.extend(latency);
    }
    Ok(line)
}

async fn succeeded(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM jobs WHERE stage = 'build' AND state = 'succeeded'")
        .fetch_one(pool)
        .await
}

/// Returns (jobs/s end to end, jobs/s of the enqueue side alone).
async fn throughput(env: &Env, pool: &PgPool, project: Uuid) -> anyhow::Result<(f64, f64)> {
    eprintln!("[bench] queue: enqueueing {JOBS} jobs from {ENQUEUERS} tasks");
    let succeeded_before = METRICS
        .jobs_succeeded
        .with_label_values(&[Stage::Build.as_str()])
        .get();
    let t0 = Instant::now();
    enqueue_all(env, pool, project).await?;
    let enqueued = t0.elapsed();
    let deadline = t0 + Duration::from_secs(180);
    loop {
        // The runtime's own counter (this process runs the only build
        // runtime) is free to read, where counting rows every 100 ms cost
        // Postgres a seq scan of `jobs` each time, stealing CPU from the run
        // measured; the rows are counted once it says all are done.
        let counted = METRICS
            .jobs_succeeded
            .with_label_values(&[Stage::Build.as_str()])
            .get()
            - succeeded_before;
        if counted as usize >= JOBS {
            let done = succeeded(&env.db.pool).await?;
            if done as usize >= JOBS {
                break;
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {counted} of {JOBS} jobs done in 180 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let total = t0.elapsed();
    eprintln!("[bench] queue: enqueued in {enqueued:.2?}, all done in {total:.2?}");
    Ok((
        JOBS as f64 / total.as_secs_f64(),
        JOBS as f64 / enqueued.as_secs_f64(),
    ))
}

/// Creates `JOBS` probe deployments from `ENQUEUERS` tasks, each its own
/// transaction through the real path.
async fn enqueue_all(env: &Env, pool: &PgPool, project: Uuid) -> anyhow::Result<()> {
    let spec = ProbeSpec::default();
    let next = Arc::new(AtomicUsize::new(0));
    let mut enqueuers = tokio::task::JoinSet::new();
    for _ in 0..ENQUEUERS {
        let (pool, names, spec, next) =
            (pool.clone(), env.names.clone(), spec.clone(), next.clone());
        enqueuers.spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < JOBS {
                harness::create_probe(&pool, &names, project, &spec).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = enqueuers.join_next().await {
        done??;
    }
    Ok(())
}

/// The enqueue side on its own: the same `JOBS` enqueues into a database of
/// their own with nothing else running (no relay, no consumer), so the
/// figure is the ceiling the enqueue path alone sets on this machine, next
/// to the end-to-end rate measured while all parts share the cores.
async fn enqueue_alone(amqp_url: &str) -> anyhow::Result<f64> {
    let env = Env::new(amqp_url).await?;
    let measured = async {
        let project = harness::create_project(&env.db.pool).await?;
        let pool = harness::pool(&env, ENQUEUERS as u32 + 1).await?;
        eprintln!("[bench] queue: {JOBS} enqueues alone, nothing consuming");
        let t0 = Instant::now();
        enqueue_all(&env, &pool, project).await?;
        let elapsed = t0.elapsed();
        pool.close().await;
        anyhow::Ok(JOBS as f64 / elapsed.as_secs_f64())
    }
    .await;
    env.cleanup().await;
    measured
}

/// Open loop at 20 jobs/s for 15 s against the same runtime.
async fn latency(
    env: &Env,
    pool: &PgPool,
    project: Uuid,
    started: &Clock,
) -> anyhow::Result<Value> {
    let total = (LATENCY_RATE * LATENCY_SECONDS) as usize;
    eprintln!("[bench] queue: latency, {total} jobs at {LATENCY_RATE}/s");
    let enqueued: Clock = Arc::default();
    let watcher = tokio::spawn(watch_done(pool.clone(), enqueued.clone(), total));
    let spec = ProbeSpec::default();
    let t0 = tokio::time::Instant::now();
    let mut senders = tokio::task::JoinSet::new();
    for i in 0..total as u64 {
        tokio::time::sleep_until(t0 + Duration::from_millis(i * 1000 / LATENCY_RATE)).await;
        let (pool, names, spec, enqueued) = (
            pool.clone(),
            env.names.clone(),
            spec.clone(),
            enqueued.clone(),
        );
        senders.spawn(async move {
            let id = harness::create_probe(&pool, &names, project, &spec).await?;
            let now = Instant::now();
            lock(&enqueued).insert(id, now);
            anyhow::Ok(())
        });
    }
    while let Some(sent) = senders.join_next().await {
        sent??;
    }
    let done = watcher.await??;
    let (enqueued, started) = (lock(&enqueued).clone(), lock(started).clone());
    let since = |at: &Instant, id: &Uuid| ms(at.saturating_duration_since(enqueued[id]));
    let to_start: Vec<f64> = enqueued
        .keys()
        .filter_map(|id| started.get(id).map(|at| since(at, id)))
        .collect();
    let to_done: Vec<f64> = done.iter().map(|(id, at)| since(at, id)).collect();
    Ok(json!({
        "latency_jobs": total,
        "latency_rate_per_s": LATENCY_RATE,
        "enqueue_to_start_p50_ms": round(percentile(&to_start, 50.0), 2),
        "enqueue_to_start_p99_ms": round(percentile(&to_start, 99.0), 2),
        "enqueue_to_done_p50_ms": round(percentile(&to_done, 50.0), 2),
        "enqueue_to_done_p99_ms": round(percentile(&to_done, 99.0), 2),
        "enqueue_to_done_max_ms": round(stats::max(&to_done), 2),
        "done_measured_by": "poll of the job rows every 2 ms during the run; done = start of the first poll that saw state succeeded",
    }))
}

/// Polls, every 2 ms while the open loop runs, which enqueued jobs have
/// their build job succeeded; the time of a job is the start of the first
/// poll that saw it (that poll's snapshot was taken after the commit).
async fn watch_done(
    pool: PgPool,
    enqueued: Clock,
    total: usize,
) -> anyhow::Result<HashMap<Uuid, Instant>> {
    let mut done: HashMap<Uuid, Instant> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(LATENCY_SECONDS + 30);
    while done.len() < total {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {total} latency jobs finished",
            done.len()
        );
        let pending: Vec<Uuid> = lock(&enqueued)
            .keys()
            .filter(|id| !done.contains_key(id))
            .copied()
            .collect();
        let seen_at = Instant::now();
        let finished: Vec<Uuid> = sqlx::query_scalar(
            "SELECT deployment_id FROM jobs WHERE stage = 'build' AND state = 'succeeded'
             AND deployment_id = ANY($1)",
        )
        .bind(&pending)
        .fetch_all(&pool)
        .await?;
        done.extend(finished.into_iter().map(|id| (id, seen_at)));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(done)
}
