//! `api`: `POST /v1/apps/{app}/deployments` against the in-process API
//! while the three real worker runtimes run in-process on the same database
//! and prefix (build fails each deployment with `not_implemented`, which
//! keeps the build worker, the outbox and the app lanes busy). 100 apps, a
//! 5 s warm-up at 100 req/s, then an open loop at 500 req/s for 30 s: each
//! request is its own task started at its scheduled time, latency runs from
//! the scheduled time to the full response body, and a request that would
//! exceed 2,000 in flight is dropped and counted. Four relays run, as in a
//! real deployment: the API's and one per worker.

use crate::harness::{self, Env};
use crate::stats::{ms, percentile, round};
use serde_json::{json, Value};
use slipway_shared::job::Stage;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const APPS: usize = 100;
const WARM_RATE: u64 = 100;
const WARM_SECONDS: u64 = 5;
const RATE: u64 = 500;
const SECONDS: u64 = 30;
const MAX_IN_FLIGHT: usize = 2_000;
const WORKER_CONCURRENCY: u16 = 4;

pub async fn run(amqp_url: &str) -> anyhow::Result<Value> {
    let env = Env::new(amqp_url).await?;
    let result = measure(&env).await;
    env.cleanup().await;
    result
}

struct Target {
    client: reqwest::Client,
    base: String,
    token: String,
    apps: Vec<String>,
}

#[derive(Default)]
struct Run {
    latencies_ms: Vec<f64>,
    ok: usize,
    errors: usize,
    drops: usize,
    statuses: BTreeMap<String, usize>,
    elapsed_s: f64,
}

async fn measure(env: &Env) -> anyhow::Result<Value> {
    env.declare(&Stage::ALL).await?;
    let project = harness::create_project(&env.db.pool).await?;
    let token = harness::create_token(&env.db.pool, project).await?;
    let apps: Vec<String> = (0..APPS).map(|i| format!("app-{i:03}")).collect();
    for name in &apps {
        sqlx::query("INSERT INTO apps (id, project_id, name, git_url) VALUES ($1, $2, $3, 'file:///tmp/none')")
            .bind(Uuid::now_v7())
            .bind(project)
            .bind(name)
            .execute(&env.db.pool)
            .await?;
    }

    let shutdown = CancellationToken::new();
    let app = slipway_api::Application::build(env.api_settings(), shutdown.clone()).await?;
    let base = format!("http://{}", app.local_addr()?);
    let mut services = JoinSet::new();
    services.spawn(app.run());
    let settings = |id: &str| env.worker_settings(&format!("bench-api-{id}"), WORKER_CONCURRENCY);
    services.spawn(slipway_worker_build::run(
        settings("build"),
        shutdown.clone(),
    ));
    services.spawn(slipway_worker_provision::run(
        settings("provision"),
        shutdown.clone(),
    ));
    services.spawn(slipway_worker_deploy::run(
        settings("deploy"),
        shutdown.clone(),
    ));
    slipway_testkit::wait_http_ok(&format!("{base}/healthz"), Duration::from_secs(30)).await?;

    let target = Arc::new(Target {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?,
        base,
        token,
        apps,
    });
    let measured = async {
        eprintln!("[bench] api: warm-up {WARM_SECONDS} s at {WARM_RATE}/s");
        open_loop(&target, WARM_RATE, WARM_SECONDS).await?;
        eprintln!("[bench] api: open loop {SECONDS} s at {RATE}/s");
        open_loop(&target, RATE, SECONDS).await
    }
    .await;

    shutdown.cancel();
    let stopping = async {
        while let Some(stopped) = services.join_next().await {
            if let Ok(Err(error)) = stopped {
                eprintln!("[bench] api: a service ended with {error:#}");
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(60), stopping)
        .await
        .is_err()
    {
        eprintln!("[bench] api: services did not stop within 60 s; aborting them");
    }
    let states: Vec<(String, i64)> =
        sqlx::query_as("SELECT COALESCE(error_code, state), count(*) FROM deployments GROUP BY 1")
            .fetch_all(&env.db.pool)
            .await?;
    let run = measured?;
    Ok(json!({
        "scenario": "api",
        "target_rps": RATE,
        "seconds": SECONDS,
        "apps": APPS,
        "rps": round(run.ok as f64 / run.elapsed_s, 1),
        "p50_ms": round(percentile(&run.latencies_ms, 50.0), 2),
        "p99_ms": round(percentile(&run.latencies_ms, 99.0), 2),
        "max_ms": round(crate::stats::max(&run.latencies_ms), 2),
        "requests": run.ok + run.errors,
        "errors": run.errors,
        "drops": run.drops,
        "max_in_flight": MAX_IN_FLIGHT,
        "statuses": run.statuses,
        "worker_concurrency": WORKER_CONCURRENCY,
        "relays": 4,
        "deployments_by_outcome": states.into_iter().collect::<BTreeMap<_, _>>(),
    }))
}

/// `rate` requests per second for `seconds`, round-robin over the apps.
async fn open_loop(target: &Arc<Target>, rate: u64, seconds: u64) -> anyhow::Result<Run> {
    let total = rate * seconds;
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut requests = JoinSet::new();
    let mut run = Run::default();
    let start = Instant::now() + Duration::from_millis(10);
    for i in 0..total {
        let at = start + Duration::from_nanos(i * 1_000_000_000 / rate);
        tokio::time::sleep_until(at).await;
        if in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT {
            run.drops += 1;
            continue;
        }
        in_flight.fetch_add(1, Ordering::Relaxed);
        let (target, in_flight) = (target.clone(), in_flight.clone());
        let app = &target.apps[i as usize % target.apps.len()];
        let url = format!("{}/v1/apps/{app}/deployments", target.base);
        requests.spawn(async move {
            let sent = target
                .client
                .post(url)
                .bearer_auth(&target.token)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body("{}")
                .send()
                .await;
            let status = match sent {
                Ok(response) => {
                    let status = response.status();
                    match response.bytes().await {
                        Ok(_) => status.as_u16().to_string(),
                        Err(_) => "body_error".to_owned(),
                    }
                }
                Err(error) if error.is_timeout() => "timeout".to_owned(),
                Err(_) => "transport_error".to_owned(),
            };
            let latency = ms(at.elapsed());
            in_flight.fetch_sub(1, Ordering::Relaxed);
            (status, latency, Instant::now())
        });
    }
    let mut last = start;
    while let Some(done) = requests.join_next().await {
        let (status, latency, finished) = done?;
        last = last.max(finished);
        if status.starts_with('2') {
            run.ok += 1;
            run.latencies_ms.push(latency);
        } else {
            run.errors += 1;
        }
        *run.statuses.entry(status).or_default() += 1;
    }
    run.elapsed_s = (last - start).as_secs_f64();
    Ok(run)
}
