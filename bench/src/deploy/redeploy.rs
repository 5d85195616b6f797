//! The redeploys of the `deploy` scenario: five new commits in a row, each
//! deployed while a request loop runs through Caddy from the request until
//! the replaced release is stopped (the deployment `live`, its attempt
//! over after the drain); failed requests are put down to the phase the
//! deployment was in when they were sent.

use super::{deploy, ensure_live, event_at, load, podman, Ctx, Version, RATE_PER_S, REDEPLOYS};
use crate::stats::{percentile, round};
use anyhow::Context;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::time::Instant;
use tokio_util::sync::CancellationToken;

pub async fn redeploys(ctx: &Ctx<'_>) -> anyhow::Result<(Value, Vec<Version>)> {
    let (mut sent, mut failed) = (0, 0);
    let mut phases = Phases::default();
    let mut examples = Vec::new();
    let mut latencies = Vec::new();
    let mut per_redeploy = Vec::new();
    let mut versions = Vec::new();
    let mut both_every_time = true;
    for n in 2..=REDEPLOYS + 1 {
        let page = ctx.page.replacen("VERSION 1<", &format!("VERSION {n}<"), 1);
        let commit = ctx.repo.push_change("main", "index.html", &page)?;
        let stop = CancellationToken::new();
        let requests = tokio::spawn(load::run(
            ctx.url.clone(),
            ctx.host.clone(),
            RATE_PER_S,
            stop.clone(),
        ));
        let started = Instant::now();
        let deployment = deploy(ctx, json!({})).await;
        stop.cancel();
        let report = requests.await?;
        let deployment = deployment?;
        ensure_live(&deployment)?;
        let running = podman::running_containers(&ctx.app_id).await?;
        anyhow::ensure!(
            running == 1,
            "{running} containers of the app run after redeploy {n}"
        );
        let answered = |v: u32| report.versions.get(&v).copied().unwrap_or(0);
        both_every_time &= answered(n - 1) > 0 && answered(n) > 0;
        let id = deployment["id"].as_str().context("id")?;
        let marks = deploy_marks(ctx, id, &deployment).await?;
        for (at, _) in &report.failed {
            phases.count(*at, &marks);
        }
        sent += report.sent;
        failed += report.failed.len();
        examples.extend(report.failed.iter().take(3).map(|(_, why)| why.clone()));
        latencies.extend(report.latencies_ms.iter().copied());
        per_redeploy.push(json!({
            "to_version": n,
            "requests": report.sent,
            "failed": report.failed.len(),
            "answers_by_version": report.versions,
            "request_to_live_s": round(started.elapsed().as_secs_f64(), 2),
        }));
        versions.push(Version {
            n,
            commit,
            deployment,
        });
    }
    let line = json!({
        "scenario": "deploy",
        "measure": "redeploy_under_load",
        "redeploys": REDEPLOYS,
        "rate_per_s": RATE_PER_S,
        "requests_sent": sent,
        "failed_requests": failed,
        "failed_by_phase": {
            "build_and_provision": phases.build,
            "deploy_before_switch": phases.before_switch,
            "switch_to_live": phases.after_switch,
        },
        "failure_examples": examples,
        "old_and_new_answered_every_time": both_every_time,
        "latency_p50_ms": round(percentile(&latencies, 50.0), 1),
        "latency_p99_ms": round(percentile(&latencies, 99.0), 1),
        "latency_max_ms": round(latencies.iter().copied().fold(0.0, f64::max), 1),
        "per_redeploy": per_redeploy,
    });
    Ok((line, versions))
}

/// When a deployment entered its deploy stage and when its route switched.
struct Marks {
    deploying: DateTime<Utc>,
    switched: DateTime<Utc>,
}

async fn deploy_marks(ctx: &Ctx<'_>, id: &str, deployment: &Value) -> anyhow::Result<Marks> {
    let body = ctx
        .fleet
        .get(&format!("/v1/deployments/{id}/logs?limit=10000"))
        .await?;
    let switched = body["lines"]
        .as_array()
        .context("lines")?
        .iter()
        .find(|l| {
            l["stage"] == "deploy" && l["line"].as_str().is_some_and(|t| t.starts_with("route "))
        })
        .and_then(|l| l["at"].as_str())
        .context("no route line in the deploy log")?
        .parse()?;
    Ok(Marks {
        deploying: event_at(deployment, "deploying")?,
        switched,
    })
}

/// Failed requests by what the deployment was doing when they were sent.
#[derive(Default)]
struct Phases {
    build: usize,
    before_switch: usize,
    after_switch: usize,
}

impl Phases {
    fn count(&mut self, at: DateTime<Utc>, marks: &Marks) {
        if at < marks.deploying {
            self.build += 1;
        } else if at < marks.switched {
            self.before_switch += 1;
        } else {
            self.after_switch += 1;
        }
    }
}
