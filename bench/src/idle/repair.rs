//! The two latencies of the `idle` scenario: a line an app prints → seen
//! through the API, and a killed app container → the app answers 200 again.

use super::App;
use crate::build::fleet::Fleet;
use crate::build::images;
use crate::stats::ms;
use anyhow::Context;
use std::time::{Duration, Instant};

const LOG_TIMEOUT: Duration = Duration::from_secs(30);
const REPAIR_TIMEOUT: Duration = Duration::from_secs(60);
/// Apps killed at once.
const KILL_BATCH: usize = 10;

/// `samples` times: a request to one app (round robin) whose path is a
/// fresh mark, then `GET /v1/apps/{app}/logs?after=…` until the mark shows.
pub async fn log_visibility(
    fleet: &Fleet,
    url: &str,
    apps: &[App],
    samples: usize,
) -> anyhow::Result<Vec<f64>> {
    let client = reqwest::Client::new();
    let mut seen = Vec::new();
    for i in 0..samples {
        let app = &apps[i % apps.len()];
        let after = last_seq(fleet, app).await?;
        let mark = format!("/mark-{}", uuid::Uuid::new_v4().simple());
        let answer = client
            .get(format!("{url}{}", &mark[1..]))
            .header("Host", &app.host)
            .timeout(Duration::from_secs(10))
            .send()
            .await?;
        anyhow::ensure!(answer.status() == 200, "{}: {}", app.name, answer.status());
        let printed = Instant::now();
        loop {
            let body = fleet
                .get(&format!(
                    "/v1/apps/{}/logs?after={after}&limit=1000",
                    app.name
                ))
                .await?;
            let lines = body["lines"].as_array().context("lines")?;
            if lines
                .iter()
                .any(|l| l["line"].as_str().is_some_and(|t| t.contains(&mark)))
            {
                seen.push(ms(printed.elapsed()));
                break;
            }
            anyhow::ensure!(
                printed.elapsed() < LOG_TIMEOUT,
                "{mark} of {} never seen",
                app.name
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    Ok(seen)
}

async fn last_seq(fleet: &Fleet, app: &App) -> anyhow::Result<i64> {
    let mut after = 0;
    loop {
        let body = fleet
            .get(&format!(
                "/v1/apps/{}/logs?after={after}&limit=10000",
                app.name
            ))
            .await?;
        let next = body["next"].as_i64().context("next")?;
        if next == after {
            return Ok(after);
        }
        after = next;
    }
}

/// Kills app containers in batches of up to ten until `kills` were killed;
/// the time from each kill to the app answering 200 through Caddy again,
/// and how many never came back within a minute.
pub async fn repairs(url: &str, apps: &[App], kills: usize) -> anyhow::Result<(Vec<f64>, usize)> {
    let mut repaired = Vec::new();
    let mut unrepaired = 0;
    let mut next = 0;
    while repaired.len() + unrepaired < kills {
        let batch = KILL_BATCH
            .min(apps.len())
            .min(kills - repaired.len() - unrepaired);
        let chosen: Vec<&App> = (0..batch).map(|i| &apps[(next + i) % apps.len()]).collect();
        next += batch;
        let runs = chosen.iter().map(|app| kill_and_wait(url, app));
        for result in futures::future::join_all(runs).await {
            match result? {
                Some(took) => repaired.push(ms(took)),
                None => unrepaired += 1,
            }
        }
    }
    Ok((repaired, unrepaired))
}

async fn kill_and_wait(url: &str, app: &App) -> anyhow::Result<Option<Duration>> {
    let filter = format!("label=io.slipway.app={}", app.id);
    let names = images::engine(
        "podman",
        &["ps", "--filter", &filter, "--format", "{{.Names}}"],
    )
    .await?;
    let name = names
        .split_whitespace()
        .next()
        .context("no running container")?
        .to_owned();
    images::engine("podman", &["kill", &name]).await?;
    let killed = Instant::now();
    let client = reqwest::Client::new();
    while killed.elapsed() < REPAIR_TIMEOUT {
        let answer = client
            .get(url)
            .header("Host", &app.host)
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        if answer.is_ok_and(|a| a.status() == 200) {
            return Ok(Some(killed.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(None)
}
