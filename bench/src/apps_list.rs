//! `apps-list`: the dashboard's app list, `GET /v1/apps?limit=200`, against
//! the in-process API with 200 apps, each with three env vars, two secrets,
//! two domains, and (every other app) a live release with a health check.
//! A closed loop of `CLIENTS` clients for `SECONDS` s after a short warm-up;
//! latency runs from the request to the full body. The answer's size and
//! item count are checked so a broken list cannot look fast.

use crate::harness::{self, Env};
use crate::stats::{ms, percentile, round};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const APPS: usize = 200;
const CLIENTS: usize = 2;
const WARM_SECONDS: u64 = 2;
const SECONDS: u64 = 10;

pub async fn run(amqp_url: &str) -> anyhow::Result<Value> {
    let env = Env::new(amqp_url).await?;
    let result = measure(&env).await;
    env.cleanup().await;
    result
}

async fn seed(env: &Env, project: Uuid) -> anyhow::Result<()> {
    let pool = &env.db.pool;
    for i in 0..APPS {
        let app = Uuid::now_v7();
        let name = format!("app-{i:03}");
        sqlx::query("INSERT INTO apps (id, project_id, name, git_url) VALUES ($1, $2, $3, 'file:///tmp/none')")
            .bind(app).bind(project).bind(&name).execute(pool).await?;
        sqlx::query(
            "INSERT INTO app_env_vars (app_id, key, secret, value_plain, value_sealed)
             VALUES ($1, 'MODE', false, 'prod', NULL), ($1, 'PORT', false, '8080', NULL),
                    ($1, 'REGION', false, 'eu', NULL), ($1, 'API_KEY', true, NULL, '\\x00'),
                    ($1, 'DB_PASSWORD', true, NULL, '\\x00')",
        )
        .bind(app)
        .execute(pool)
        .await?;
        sqlx::query("INSERT INTO app_domains (host, app_id) VALUES ($1, $3), ($2, $3)")
            .bind(format!("{name}.example.com"))
            .bind(format!("www.{name}.example.com"))
            .bind(app)
            .execute(pool)
            .await?;
        if i % 2 == 0 {
            let deployment = Uuid::now_v7();
            sqlx::query("INSERT INTO deployments (id, project_id, app_id, kind, state, trace_id) VALUES ($1, $2, $3, 'app', 'live', '')")
                .bind(deployment).bind(project).bind(app).execute(pool).await?;
            sqlx::query(
                "INSERT INTO releases (id, app_id, deployment_id, image_ref, container_name, state, url,
                                       live_at, health_ok, health_detail, health_checked_at)
                 VALUES ($1, $2, $3, 'reg/x@sha256:ab', $4, 'live', 'http://x/', now(), true, '200', now())",
            )
            .bind(Uuid::now_v7()).bind(app).bind(deployment).bind(format!("{name}-1"))
            .execute(pool).await?;
        }
    }
    Ok(())
}

async fn measure(env: &Env) -> anyhow::Result<Value> {
    let project = harness::create_project(&env.db.pool).await?;
    let token = harness::create_token(&env.db.pool, project).await?;
    seed(env, project).await?;
    let shutdown = CancellationToken::new();
    let app = slipway_api::Application::build(env.api_settings(), shutdown.clone()).await?;
    let base = format!("http://{}", app.local_addr()?);
    let server = tokio::spawn(app.run());
    slipway_testkit::wait_http_ok(&format!("{base}/healthz"), Duration::from_secs(30)).await?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let url = format!("{base}/v1/apps?limit={APPS}");
    eprintln!(
        "[bench] apps-list: warm-up {WARM_SECONDS} s, then {SECONDS} s with {CLIENTS} clients"
    );
    let _ = closed_loop(&client, &url, &token, WARM_SECONDS).await?;
    let started = Instant::now();
    let mut loops = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let (client, url, token) = (client.clone(), url.clone(), token.clone());
        loops.spawn(async move { closed_loop(&client, &url, &token, SECONDS).await });
    }
    let mut latencies = Vec::new();
    let mut bytes = 0;
    while let Some(done) = loops.join_next().await {
        let (l, b) = done??;
        latencies.extend(l);
        bytes = b;
    }
    let elapsed = started.elapsed().as_secs_f64();
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), server).await;
    Ok(json!({
        "scenario": "apps-list",
        "apps": APPS,
        "clients": CLIENTS,
        "seconds": SECONDS,
        "requests": latencies.len(),
        "rps": round(latencies.len() as f64 / elapsed, 1),
        "p50_ms": round(percentile(&latencies, 50.0), 2),
        "p95_ms": round(percentile(&latencies, 95.0), 2),
        "max_ms": round(crate::stats::max(&latencies), 2),
        "body_bytes": bytes,
    }))
}

/// Requests one after another for `seconds`: latencies and the body size.
async fn closed_loop(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    seconds: u64,
) -> anyhow::Result<(Vec<f64>, usize)> {
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut latencies = Vec::new();
    let mut bytes = 0;
    while Instant::now() < end {
        let sent = Instant::now();
        let response = client.get(url).bearer_auth(token).send().await?;
        anyhow::ensure!(response.status().is_success(), "{}", response.status());
        let body: Value =
            serde_json::from_slice(&response.bytes().await.inspect(|b| bytes = b.len())?)?;
        latencies.push(ms(sent.elapsed()));
        let items = body["items"].as_array().map_or(0, Vec::len);
        anyhow::ensure!(items == APPS, "the list held {items} apps, not {APPS}");
    }
    Ok((latencies, bytes))
}
