//! The fleet-wide gauges the API reads from Postgres when it is scraped:
//! jobs waiting per stage and the oldest one's age, the outbox backlog, its
//! failing rows and its age — while no build worker has ever run (its queue
//! does not exist yet) — and they fall back once one has done the work.

use crate::common::{sum_series, Fleet, Options, TERMINAL};
use serde_json::json;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

async fn api_metric(fleet: &Fleet, series: &str) -> anyhow::Result<f64> {
    let text = reqwest::get(format!("{}/metrics", fleet.api_url))
        .await?
        .text()
        .await?;
    Ok(sum_series(&text, series))
}

/// Waits until `check` holds for the API's value of `series`.
async fn wait_metric(
    fleet: &Fleet,
    series: &str,
    check: impl Fn(f64) -> bool,
) -> anyhow::Result<f64> {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let value = api_metric(fleet, series).await?;
        if check(value) {
            return Ok(value);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{series} = {value}\n{}",
            fleet.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn queue_depth_oldest_age_and_outbox_backlog_follow_the_work() -> anyhow::Result<()> {
    // No build worker: probes wait in the build queue.
    let mut fleet = Fleet::start(Options {
        build_workers: 0,
        ..Options::default()
    })
    .await?;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(fleet.probe(json!({"duration_ms": 10})).await?);
    }
    let queued = r#"slipway_queue_depth{stage="build",state="queued"}"#;
    let oldest = r#"slipway_queue_oldest_age_seconds{stage="build",state="queued"}"#;
    wait_metric(&fleet, queued, |n| n == 3.0).await?;
    wait_metric(&fleet, oldest, |age| age >= 1.5).await?;
    for stage in ["provision", "deploy"] {
        let other = format!(r#"slipway_queue_depth{{stage="{stage}",state="queued"}}"#);
        assert_eq!(api_metric(&fleet, &other).await?, 0.0, "{stage}");
    }
    assert_eq!(
        api_metric(&fleet, r#"slipway_deployments{state="queued"}"#).await?,
        3.0
    );

    // No build worker ever ran, so the build queue is not declared yet:
    // the three messages stay in the outbox, returned as unroutable.
    wait_metric(&fleet, "slipway_outbox_failing_rows", |n| n == 3.0).await?;
    assert_eq!(api_metric(&fleet, "slipway_outbox_rows").await?, 3.0);
    wait_metric(&fleet, "slipway_outbox_oldest_age_seconds", |age| {
        age >= 1.5
    })
    .await?;

    // A build worker declares its queue and drains it; the gauges fall
    // back to zero.
    fleet.spawn_worker("build")?;
    for id in &ids {
        fleet.wait_state(*id, TERMINAL, T).await?;
    }
    wait_metric(&fleet, queued, |n| n == 0.0).await?;
    assert_eq!(api_metric(&fleet, oldest).await?, 0.0);
    assert_eq!(api_metric(&fleet, "slipway_outbox_rows").await?, 0.0);
    assert_eq!(
        api_metric(&fleet, "slipway_outbox_failing_rows").await?,
        0.0
    );
    assert_eq!(
        api_metric(&fleet, "slipway_outbox_oldest_age_seconds").await?,
        0.0
    );
    assert_eq!(
        api_metric(&fleet, r#"slipway_deployments{state="live"}"#).await?,
        3.0
    );
    fleet.stop().await;
    Ok(())
}
