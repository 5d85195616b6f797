//! Following a deployment until it ends: each step of its timeline as it
//! happens (queued → building → built → … → live) and its build and deploy
//! log lines, then success for `live` and [`CliError::Failed`] with the
//! API's error code and message otherwise. Progress goes to stdout, or to
//! stderr with `--json` (stdout then holds the final deployment only).

use super::Ctx;
use crate::client::deployments::{Deployment, TERMINAL};
use crate::error::{CliError, Outcome, Result};
use crate::output::Paint;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How often the state and new log lines are read: the API answers both
/// from Postgres in a few milliseconds, and a deploy's steps are seconds
/// apart, so this keeps the printed progress prompt at no real cost.
const POLL: Duration = Duration::from_millis(200);

pub async fn follow(ctx: &Ctx, id: Uuid) -> Result<Deployment> {
    let deployment = track(ctx, id).await?;
    finish(ctx, deployment)
}

/// Follows an operation that is not an app's deploy (a server's create or
/// destroy): its steps and lines, then its outcome, with nothing printed
/// about the operation itself at the end (the caller shows what it made).
pub async fn follow_quiet(ctx: &Ctx, id: Uuid) -> Result<()> {
    let deployment = track(ctx, id).await?;
    if deployment.state == "live" {
        return Ok(());
    }
    Err(failed(deployment))
}

/// Prints each step and log line until the deployment ends; the end.
pub(super) async fn track(ctx: &Ctx, id: Uuid) -> Result<Deployment> {
    let started = Instant::now();
    let mut events_seen = 0;
    let mut after = 0;
    loop {
        let deployment = ctx.client.deployment(id).await?;
        for event in deployment.events.iter().skip(events_seen) {
            let detail = event
                .detail
                .as_deref()
                .map(|d| format!("  {}", ctx.out.paint(Paint::Dim, d)))
                .unwrap_or_default();
            progress(
                ctx,
                &format!(
                    "{} {:>5.1}s {}{detail}",
                    ctx.out.paint(Paint::Cyan, "==>"),
                    started.elapsed().as_secs_f64(),
                    ctx.out.state(&event.to)
                ),
            );
        }
        events_seen = deployment.events.len();
        let logs = ctx.client.deployment_logs(id, after).await?;
        for line in &logs.lines {
            let stage = ctx.out.paint(Paint::Dim, &format!("[{}]", line.stage));
            progress(ctx, &format!("{stage} {}", line.line));
        }
        after = logs.next;
        if TERMINAL.contains(&deployment.state.as_str()) {
            return Ok(deployment);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A line of progress: on stdout, or on stderr with `--json` (stdout then
/// holds the final answer only).
pub(super) fn progress(ctx: &Ctx, line: &str) {
    if ctx.out.json {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
}

fn finish(ctx: &Ctx, deployment: Deployment) -> Result<Deployment> {
    if ctx.out.json {
        ctx.out.json(&deployment);
    }
    if deployment.state == "live" {
        if !ctx.out.json {
            let url = deployment
                .url
                .as_deref()
                .map(|u| format!(" at {}", ctx.out.paint(Paint::Bold, u)))
                .unwrap_or_default();
            println!(
                "{} {} is live{url}",
                ctx.out.paint(Paint::Green, "✓"),
                deployment.id
            );
        }
        return Ok(deployment);
    }
    Err(failed(deployment))
}

fn failed(deployment: Deployment) -> CliError {
    CliError::Failed(Outcome {
        id: deployment.id.to_string(),
        state: deployment.state,
        code: deployment.error_code,
        message: deployment.error_message,
    })
}

/// Follows, or just reports the queued deployment.
pub async fn maybe_follow(
    ctx: &Ctx,
    accepted: crate::client::deployments::Accepted,
    follow: bool,
    what: &str,
) -> Result<()> {
    if follow {
        if !ctx.out.json {
            println!("{what}: deployment {}", accepted.id);
        }
        follow_only(ctx, accepted.id).await
    } else if ctx.out.json {
        ctx.out.json(&accepted);
        Ok(())
    } else {
        println!(
            "{what}: deployment {} {}",
            accepted.id,
            ctx.out.state(&accepted.state)
        );
        Ok(())
    }
}

async fn follow_only(ctx: &Ctx, id: Uuid) -> Result<()> {
    follow(ctx, id).await.map(|_| ())
}
