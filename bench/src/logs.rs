//! `logs`: the real `LogSink` (flushing at least every
//! `worker::LOG_FLUSH_INTERVAL`) writing into the real schema, with one
//! registered secret per deployment so redaction runs on every line. First
//! throughput: 20 writers as fast as the sink accepts for ~10 s (at most
//! 2,000,000 lines), then `flush()`. Then visible latency: 20 writers at a
//! fixed 200 lines/s each for 10 s, each line carrying its write time, read
//! back through `GET /v1/deployments/{id}/logs?after=SEQ` of the in-process
//! API by one poller per deployment; latency = time seen − time written.

use crate::harness::{self, Env};
use crate::stats::{self, percentile, round};
use serde_json::{json, Value};
use slipway_shared::logsink::LogSink;
use slipway_shared::probe::ProbeSpec;
use slipway_shared::worker::LOG_FLUSH_INTERVAL;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const WRITERS: usize = 20;
const LINE_CHARS: usize = 100;
const FAST_SECONDS: u64 = 10;
const FAST_MAX_LINES: usize = 2_000_000;
const SLOW_RATE: u64 = 200;
const SLOW_SECONDS: u64 = 10;
const POLL_IDLE: Duration = Duration::from_millis(5);

pub async fn run(amqp_url: &str) -> anyhow::Result<Value> {
    let env = Env::new(amqp_url).await?;
    let result = measure(&env).await;
    env.cleanup().await;
    result
}

fn secret(deployment: Uuid) -> String {
    format!("sekrit-{}", deployment.simple())
}

/// A line of exactly `LINE_CHARS` characters starting with `head`; every
/// tenth line also carries the deployment's secret.
fn line(head: &str, n: usize, deployment: Uuid) -> String {
    let mut text = format!("{head} line {n} ");
    if n.is_multiple_of(10) {
        text.push_str(&format!("token={} ", secret(deployment)));
    }
    while text.len() < LINE_CHARS {
        text.push('x');
    }
    text.truncate(LINE_CHARS);
    text
}

async fn deployments(env: &Env, project: Uuid, sink: &LogSink) -> anyhow::Result<Vec<Uuid>> {
    let mut ids = Vec::with_capacity(WRITERS);
    for _ in 0..WRITERS {
        let id =
            harness::create_probe(&env.db.pool, &env.names, project, &ProbeSpec::default()).await?;
        sink.register_secrets(id, vec![secret(id)]);
        ids.push(id);
    }
    // Only the logs are under test: the build jobs' messages are dropped so
    // that the API's relay has nothing to publish and no queue is needed.
    sqlx::query("DELETE FROM outbox")
        .execute(&env.db.pool)
        .await?;
    Ok(ids)
}

async fn measure(env: &Env) -> anyhow::Result<Value> {
    let project = harness::create_project(&env.db.pool).await?;
    let token = harness::create_token(&env.db.pool, project).await?;
    let sink_pool = harness::pool(env, 4).await?;
    let sink_stop = CancellationToken::new();
    let (sink, sink_task) = LogSink::start(sink_pool, LOG_FLUSH_INTERVAL, sink_stop.clone());

    let fast = throughput(env, project, &sink).await;
    let slow = async {
        let api_stop = CancellationToken::new();
        let app = slipway_api::Application::build(env.api_settings(), api_stop.clone()).await?;
        let base = format!("http://{}", app.local_addr()?);
        let api = tokio::spawn(app.run());
        let result = visible(env, project, &sink, &base, &token).await;
        api_stop.cancel();
        if tokio::time::timeout(Duration::from_secs(20), api)
            .await
            .is_err()
        {
            eprintln!("[bench] logs: the API did not stop within 20 s");
        }
        result
    }
    .await;
    sink_stop.cancel();
    let _ = sink_task.await;

    let mut out = json!({"scenario": "logs", "writers": WRITERS, "line_chars": LINE_CHARS,
                         "flush_interval_ms": LOG_FLUSH_INTERVAL.as_millis() as u64});
    for part in [fast?, slow?] {
        if let (Some(out), Value::Object(part)) = (out.as_object_mut(), part) {
            out.extend(part);
        }
    }
    Ok(out)
}

async fn throughput(env: &Env, project: Uuid, sink: &LogSink) -> anyhow::Result<Value> {
    let ids = deployments(env, project, sink).await?;
    eprintln!("[bench] logs: {WRITERS} writers as fast as possible for {FAST_SECONDS} s");
    let written = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(FAST_SECONDS);
    let mut writers = JoinSet::new();
    for id in ids {
        let (logs, written) = (sink.handle(id, "build", 1), written.clone());
        let texts: Vec<String> = (0..10).map(|n| line("fast", n, id)).collect();
        writers.spawn(async move {
            let mut n = 0;
            while Instant::now() < deadline
                && written.fetch_add(1, Ordering::Relaxed) < FAST_MAX_LINES
            {
                logs.line("stdout", texts[n % 10].clone()).await;
                n += 1;
            }
        });
    }
    while let Some(done) = writers.join_next().await {
        done?;
    }
    sink.flush().await;
    let elapsed = t0.elapsed();
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM deployment_logs")
        .fetch_one(&env.db.pool)
        .await?;
    let leaked: i64 =
        sqlx::query_scalar("SELECT count(*) FROM deployment_logs WHERE line LIKE '%sekrit-%'")
            .fetch_one(&env.db.pool)
            .await?;
    eprintln!("[bench] logs: {stored} lines stored in {elapsed:.2?}");
    Ok(json!({
        "lines_per_s": round(stored as f64 / elapsed.as_secs_f64(), 1),
        "lines_stored": stored,
        "fast_elapsed_s": round(elapsed.as_secs_f64(), 3),
        "secrets_leaked": leaked,
    }))
}

async fn visible(
    env: &Env,
    project: Uuid,
    sink: &LogSink,
    base: &str,
    token: &str,
) -> anyhow::Result<Value> {
    let ids = deployments(env, project, sink).await?;
    let per_writer = (SLOW_RATE * SLOW_SECONDS) as usize;
    eprintln!(
        "[bench] logs: visible latency, {WRITERS} x {SLOW_RATE} lines/s for {SLOW_SECONDS} s"
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let baseline = Instant::now();
    let mut pollers = JoinSet::new();
    for id in &ids {
        let url = format!("{base}/v1/deployments/{id}/logs");
        let (client, token) = (client.clone(), token.to_owned());
        pollers.spawn(async move {
            let (mut after, mut latencies) = (0i64, Vec::with_capacity(per_writer));
            let give_up = baseline + Duration::from_secs(SLOW_SECONDS + 30);
            while latencies.len() < per_writer && Instant::now() < give_up {
                let page: Value = client
                    .get(&url)
                    .query(&[("after", after), ("limit", 1000)])
                    .bearer_auth(&token)
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                let seen = baseline.elapsed().as_nanos();
                let lines = page["lines"].as_array().cloned().unwrap_or_default();
                for line in &lines {
                    let text = line["line"].as_str().unwrap_or_default();
                    if let Some(written) = text.get(..20).and_then(|t| t.parse::<u128>().ok()) {
                        latencies.push(seen.saturating_sub(written) as f64 / 1e6);
                    }
                }
                after = page["next"].as_i64().unwrap_or(after);
                if lines.is_empty() {
                    tokio::time::sleep(POLL_IDLE).await;
                }
            }
            anyhow::Ok(latencies)
        });
    }
    let mut writers = JoinSet::new();
    for id in ids {
        let logs = sink.handle(id, "build", 1);
        writers.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / SLOW_RATE));
            for n in 0..per_writer {
                tick.tick().await;
                let head = format!("{:020}", baseline.elapsed().as_nanos());
                logs.line("stdout", line(&head, n, id)).await;
            }
        });
    }
    while let Some(done) = writers.join_next().await {
        done?;
    }
    sink.flush().await;
    let mut latencies = Vec::new();
    while let Some(seen) = pollers.join_next().await {
        latencies.extend(seen??);
    }
    anyhow::ensure!(
        latencies.len() == per_writer * WRITERS,
        "pollers saw {} of {} lines",
        latencies.len(),
        per_writer * WRITERS
    );
    Ok(json!({
        "visible_lines": latencies.len(),
        "visible_rate_lines_per_s": SLOW_RATE * WRITERS as u64,
        "visible_pollers": WRITERS,
        "visible_poll_idle_sleep_ms": POLL_IDLE.as_millis() as u64,
        "visible_p50_ms": round(percentile(&latencies, 50.0), 2),
        "visible_p99_ms": round(percentile(&latencies, 99.0), 2),
        "visible_max_ms": round(stats::max(&latencies), 2),
    }))
}
