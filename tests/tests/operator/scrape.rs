//! A real Prometheus scrapes a running fleet (the API and one worker per
//! stage) through a short load — probes that go live, one that fails, one
//! retried, one cancelled — and then: every target is up, every alert rule
//! evaluates without error and none that means a broken set-up fires, the
//! deployment outcome counters count what happened, and every query of the
//! dashboard returns data.

use super::dashboard;
use super::prometheus::{Job, Prometheus};
use crate::common::{Fleet, Options, TERMINAL};
use anyhow::Context;
use reqwest::Method;
use serde_json::json;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

/// Alerts that fire only when the fleet or its scraping is broken.
const BROKEN_SETUP: [&str; 6] = [
    "SlipwayProcessDown",
    "SlipwayOutboxStuck",
    "SlipwayOutboxPublishFailing",
    "SlipwayApiErrors",
    "SlipwayFleetMetricsFailing",
    "SlipwayDeployFailureRateHigh",
];

/// The scrape jobs of compose/prometheus/prometheus.yml, with this fleet's
/// addresses in place of the compose services'.
async fn jobs(fleet: &Fleet) -> anyhow::Result<Vec<Job>> {
    let compose = std::fs::read_to_string(crate::compose_dir().join("prometheus/prometheus.yml"))?;
    let mut jobs = vec![Job {
        name: "slipway-api".into(),
        targets: vec![fleet.api_url.trim_start_matches("http://").to_owned()],
    }];
    for stage in ["build", "provision", "deploy"] {
        let mut targets = Vec::new();
        for worker in fleet.workers.iter().filter(|w| w.stage == stage) {
            let mut addr = None;
            slipway_testkit::wait_until(T, "the worker's metrics address", || {
                addr = fleet.metrics_addr(worker).ok().flatten();
                let found = addr.is_some();
                async move { found }
            })
            .await?;
            targets.extend(addr);
        }
        jobs.push(Job {
            name: format!("slipway-worker-{stage}"),
            targets,
        });
    }
    for job in &jobs {
        assert!(
            compose.contains(&format!("job_name: {}", job.name)),
            "compose/prometheus/prometheus.yml has no job {}",
            job.name
        );
    }
    Ok(jobs)
}

/// Probes that end live, failed (a permanent error in provision), live
/// after a retry, and cancelled while building.
async fn load(fleet: &Fleet) -> anyhow::Result<()> {
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(fleet.probe(json!({"duration_ms": 50})).await?);
    }
    ids.push(
        fleet
            .probe(json!({"duration_ms": 50, "fail_stage": "provision", "fail_kind": "permanent"}))
            .await?,
    );
    ids.push(
        fleet
            .probe(json!({"duration_ms": 50, "fail_stage": "build", "fail_kind": "retryable"}))
            .await?,
    );
    let long = fleet.probe(json!({"duration_ms": 60000})).await?;
    fleet.wait_running(long, "build", T).await?;
    let (status, body) = fleet
        .call(
            Method::POST,
            &format!("/v1/deployments/{long}/cancel"),
            None,
        )
        .await?;
    anyhow::ensure!(status == 200, "cancel: {status} {body}");
    for id in ids.iter().chain([&long]) {
        fleet.wait_state(*id, TERMINAL, T).await?;
    }
    Ok(())
}

#[tokio::test]
async fn prometheus_scrapes_the_fleet_and_every_dashboard_query_returns_data() -> anyhow::Result<()>
{
    let fleet = Fleet::start(Options::default()).await?;
    let prometheus = Prometheus::start(&jobs(&fleet).await?).await?;
    load(&fleet).await?;

    // The outcome counters, summed over the processes that ended them (the
    // deploy worker: live; provision: failed; the API: cancelled).
    let ended =
        |outcome: &str| format!(r#"sum(slipway_deployments_ended_total{{outcome="{outcome}"}})"#);
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let seen = (
            prometheus.scalar(&ended("live")).await?,
            prometheus.scalar(&ended("failed")).await?,
            prometheus.scalar(&ended("cancelled")).await?,
        );
        if seen == (6.0, 1.0, 1.0) {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "live, failed, cancelled = {seen:?}\n{}",
            fleet.logs()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Every process is a target and answers its scrapes (a scrape may time
    // out now and then on a busy machine: each must have answered within
    // the last minute).
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let up = prometheus
            .query(r#"max_over_time(up{job=~"slipway-.*"}[1m]) == 1"#)
            .await?;
        if up.len() == 4 {
            break;
        }
        let targets = prometheus.api("targets", &[]).await?;
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "not every process answered its scrapes: {targets:#}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The retried build is counted too.
    assert!(
        prometheus
            .scalar(r#"sum(slipway_jobs_retried_total{stage="build"})"#)
            .await?
            >= 1.0
    );
    // A lease is lost only to a sweeper's rescue (a starved worker on a
    // busy machine), never to the cancel: each lost one was rescued.
    let lost = prometheus.scalar("sum(slipway_leases_lost_total)").await?;
    let rescued = prometheus.scalar("sum(slipway_jobs_rescued_total)").await?;
    assert!(
        lost <= rescued,
        "{lost} leases lost, {rescued} jobs rescued"
    );

    // Rates need two samples of the end state in their window.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let board = dashboard::load()?;
    let queries = dashboard::queries(&board, &[".*", "build", "provision", "deploy"]);
    assert!(queries.len() > 30, "{} queries", queries.len());
    let mut empty = Vec::new();
    for (panel, expr) in &queries {
        let result = prometheus
            .query(expr)
            .await
            .with_context(|| format!("{panel}: {expr}"))?;
        if result.is_empty() {
            empty.push(format!("{panel}: {expr}"));
        }
    }
    assert!(
        empty.is_empty(),
        "queries without data:\n{}",
        empty.join("\n")
    );

    // Every rule evaluates on the real series, and none of those that
    // would mean a broken set-up fires (SlipwayLeasesLost may, on a
    // starved machine).
    let rules = prometheus.api("rules", &[]).await?;
    let mut evaluated = 0;
    for group in rules["groups"].as_array().context("groups")? {
        for rule in group["rules"].as_array().context("rules")? {
            assert_eq!(rule["health"], "ok", "{rule:#}");
            if BROKEN_SETUP.contains(&rule["name"].as_str().unwrap_or_default()) {
                assert_ne!(rule["state"], "firing", "{rule:#}");
            }
            evaluated += 1;
        }
    }
    assert!(evaluated >= 10, "{rules:#}");

    prometheus.stop().await;
    fleet.stop().await;
    Ok(())
}
