//! One measured install: made through [`flow`], its split read back from
//! what the platform recorded (the server operation's log lines and
//! events, the app deployment's events and log) and what the fake recorded,
//! then destroyed, with nothing left at the fake checked.

use super::cloud::FakeCloud;
use super::flow::{self, Installed, Via, NAME};
use super::stages::{SimulatedWaits, Split, Timeline};
use crate::build::fleet::Fleet;
use crate::deploy::{event_at, timings};
use crate::stats::round;
use anyhow::Context;
use chrono::{DateTime, Utc};

/// One measured run.
pub struct Measured {
    pub split: Split,
    /// The app deployment's timeline: created → built (its build runs
    /// while the server is made), the later of built and the server's
    /// `live` → provisioning (how soon a deployment waiting for its server
    /// goes on), provisioning → deploying, deploying → live.
    pub deploy_detail: [f64; 4],
    pub build: String,
    /// The setup stage by the create's own steps (`step 5/6` register,
    /// `step 6/6` and `setup step N/5`), each to the next, the last to
    /// the operation's `live` (after it the deploy stage checks the target).
    pub setup_detail: Vec<(String, f64)>,
    /// The deploy job's own pull, start, health and switch, if logged.
    pub deploy_steps: Option<timings::Split>,
    pub destroy_ms: f64,
}

/// Installs, reads the split back, destroys, and checks nothing is left.
pub async fn measure(
    fleet: &Fleet,
    cloud: &FakeCloud,
    via: Via,
    git_url: &str,
    waits: &SimulatedWaits,
) -> anyhow::Result<Measured> {
    let installed = flow::install(fleet, via, git_url).await?;
    let read = read_back(fleet, cloud, &installed, waits).await;
    let destroyed = flow::destroy(fleet, via, &installed).await?;
    let (held, hosts) = cloud.holdings();
    anyhow::ensure!(
        held == (0, 0, 0) && hosts == 0,
        "after the destroy the fake holds {held:?} (servers, keys, firewalls) and {hosts} hosts run"
    );
    let (split, deploy_detail, setup_detail, lines) = read?;
    Ok(Measured {
        split,
        deploy_detail,
        setup_detail,
        build: build_kind(&lines),
        deploy_steps: deploy_split(&lines),
        destroy_ms: round(destroyed.as_secs_f64() * 1000.0, 0),
    })
}

async fn read_back(
    fleet: &Fleet,
    cloud: &FakeCloud,
    installed: &Installed,
    waits: &SimulatedWaits,
) -> anyhow::Result<(Split, [f64; 4], Vec<(String, f64)>, Vec<LogLine>)> {
    let marks = cloud
        .marks(NAME)
        .context("the fake recorded no create of the server")?;
    let server_op = flow::get(
        fleet,
        &format!("/v1/deployments/{}", installed.server_operation),
    )
    .await?;
    let server_lines = lines(fleet, &installed.server_operation).await?;
    let deployment = flow::get(fleet, &format!("/v1/deployments/{}", installed.deployment)).await?;
    let timeline = Timeline {
        requested: installed.requested,
        create_received: marks.create_received,
        host_up: marks.host_up,
        ssh_wait: line_at(&server_lines, "step 4/6")?,
        ssh_ready: line_at(&server_lines, "step 5/6")?,
        server_ready: event_at(&server_op, "live")?,
        deploy_live: event_at(&deployment, "live")?,
        completed: installed.completed,
    };
    let split = Split::of(&timeline, waits)?;

    let created: DateTime<Utc> = deployment["created_at"]
        .as_str()
        .context("created_at")?
        .parse()?;
    let (built, provisioning, deploying, live) = (
        event_at(&deployment, "built")?,
        event_at(&deployment, "provisioning")?,
        event_at(&deployment, "deploying")?,
        event_at(&deployment, "live")?,
    );
    let ms = |a: DateTime<Utc>, b: DateTime<Utc>| (b - a).num_milliseconds() as f64;
    let detail = [
        ms(created, built),
        ms(built.max(timeline.server_ready), provisioning),
        ms(provisioning, deploying),
        ms(deploying, live),
    ];
    let setup = setup_detail(&server_lines, timeline.server_ready);
    Ok((
        split,
        detail,
        setup,
        lines(fleet, &installed.deployment).await?,
    ))
}

/// `(at, stage, line)` of a deployment's log.
type LogLine = (DateTime<Utc>, String, String);

async fn lines(fleet: &Fleet, id: &str) -> anyhow::Result<Vec<LogLine>> {
    let body = flow::get(fleet, &format!("/v1/deployments/{id}/logs?limit=10000")).await?;
    body["lines"]
        .as_array()
        .context("lines")?
        .iter()
        .map(|l| {
            Ok((
                l["at"].as_str().context("at")?.parse()?,
                l["stage"].as_str().unwrap_or_default().to_owned(),
                l["line"].as_str().unwrap_or_default().to_owned(),
            ))
        })
        .collect()
}

fn line_at(lines: &[LogLine], prefix: &str) -> anyhow::Result<DateTime<Utc>> {
    lines
        .iter()
        .find(|(_, _, line)| line.starts_with(prefix))
        .map(|(at, _, _)| *at)
        .with_context(|| format!("no `{prefix}` line in the server's create log"))
}

/// Each setup step's milliseconds to the next mark (see [`Measured`]).
fn setup_detail(lines: &[LogLine], ready: DateTime<Utc>) -> Vec<(String, f64)> {
    let marks: Vec<(String, DateTime<Utc>)> = lines
        .iter()
        .filter(|(_, _, l)| {
            l.starts_with("step 5/6") || l.starts_with("step 6/6") || l.starts_with("setup step ")
        })
        .map(|(at, _, l)| {
            let name = l.split_once(':').map_or(l.as_str(), |(name, _)| name);
            (name.to_owned(), *at)
        })
        .collect();
    marks
        .iter()
        .enumerate()
        .map(|(i, (name, at))| {
            let next = marks.get(i + 1).map_or(ready, |(_, at)| *at);
            (name.clone(), (next - *at).num_milliseconds() as f64)
        })
        .collect()
}

/// How the deployment got its image: an earlier build's image reused, a
/// build whose every step was cached, or a build that ran steps.
fn build_kind(lines: &[LogLine]) -> String {
    let build: Vec<&str> = lines
        .iter()
        .filter(|(_, stage, _)| stage == "build")
        .map(|(_, _, line)| line.as_str())
        .collect();
    if build.iter().any(|l| l.contains("without building")) {
        return "image reused".into();
    }
    // A `FROM` step names the base image; it is never "cached".
    let steps = build
        .iter()
        .filter(|l| l.starts_with("STEP ") && !l.contains(": FROM "))
        .count();
    let cached = build.iter().filter(|l| l.contains("Using cache")).count();
    if steps > 0 && cached == steps {
        format!("every layer cached ({steps} steps after FROM)")
    } else {
        format!("built: {cached} of {steps} steps after FROM cached")
    }
}

/// The deploy stage's pull, start, health and switch, if the log has them.
fn deploy_split(lines: &[LogLine]) -> Option<timings::Split> {
    let deploy: Vec<String> = lines
        .iter()
        .filter(|(_, stage, _)| stage == "deploy")
        .map(|(_, _, line)| line.clone())
        .collect();
    timings::parse(&deploy).ok()
}
