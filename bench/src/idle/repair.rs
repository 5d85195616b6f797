//! The two latencies of the `idle` scenario: a line an app prints → seen
//! through the API, and a killed app container → the app answers 200 again.
//! The kills measure a repair, not the crash loop's backoff: an app is not
//! killed a third time within the deploy worker's crash window.

use super::App;
use crate::build::fleet::Fleet;
use crate::build::images;
use crate::stats::ms;
use anyhow::Context;
use std::time::{Duration, Instant};

const LOG_TIMEOUT: Duration = Duration::from_secs(30);
const REPAIR_TIMEOUT: Duration = Duration::from_secs(60);

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

/// How long the deploy worker counts an app's deaths as one crash loop
/// (its `CRASH_WINDOW`, 300 s), with a margin.
const CRASH_WINDOW: Duration = Duration::from_secs(330);
/// Deaths within the window that come back at once: from the third on,
/// the crash loop's backoff delays the start, which is a policy, not a
/// repair's speed. An app is therefore killed again only while it has
/// fewer than this many kills within the window.
const KILLS_WITHOUT_BACKOFF: usize = 2;

/// When each app was killed, across the run's app counts (the apps stay
/// from one count to the next), and where the round robin goes on.
#[derive(Default)]
pub struct Kills {
    at: std::collections::HashMap<String, Vec<Instant>>,
    next: usize,
}

impl Kills {
    fn recent(&mut self, app: &str, now: Instant) -> usize {
        let times = self.at.entry(app.to_owned()).or_default();
        times.retain(|t| now.duration_since(*t) < CRASH_WINDOW);
        times.len()
    }

    /// Up to `batch` apps, round robin, each with fewer than
    /// [`KILLS_WITHOUT_BACKOFF`] kills within the crash window; empty when
    /// none may be killed yet.
    fn choose<'a>(&mut self, apps: &'a [App], batch: usize, now: Instant) -> Vec<&'a App> {
        let mut chosen = Vec::new();
        for step in 0..apps.len() {
            if chosen.len() == batch {
                break;
            }
            let app = &apps[(self.next + step) % apps.len()];
            if self.recent(&app.id, now) < KILLS_WITHOUT_BACKOFF {
                chosen.push(app);
            }
        }
        self.next = (self.next + chosen.len()) % apps.len().max(1);
        for app in &chosen {
            self.at.entry(app.id.clone()).or_default().push(now);
        }
        chosen
    }
}

/// Kills app containers in batches of up to `batch` until `kills` were killed;
/// the time from each kill to the app answering 200 through Caddy again,
/// and how many never came back within a minute. No app is killed a third
/// time within the crash window (see [`KILLS_WITHOUT_BACKOFF`]): when every
/// app has been, the run waits.
pub async fn repairs(
    url: &str,
    apps: &[App],
    kills: usize,
    batch: usize,
    log: &mut Kills,
) -> anyhow::Result<(Vec<f64>, usize)> {
    let mut repaired = Vec::new();
    let mut unrepaired = 0;
    while repaired.len() + unrepaired < kills {
        let batch = batch
            .min(apps.len())
            .min(kills - repaired.len() - unrepaired);
        let chosen = log.choose(apps, batch, Instant::now());
        if chosen.is_empty() {
            tokio::time::sleep(Duration::from_secs(5)).await;
            continue;
        }
        let killed = kill(&chosen).await?;
        let runs = chosen.iter().map(|app| wait_repaired(url, app, killed));
        for result in futures::future::join_all(runs).await {
            match result? {
                Some(took) => repaired.push(ms(took)),
                None => unrepaired += 1,
            }
        }
    }
    Ok((repaired, unrepaired))
}

/// Kills the running containers of `apps` with one `podman kill` (a
/// batch at once, and no command per app to load the machine while the
/// repairs run); returns the instant before the command ran, which counts
/// the command's own start in every repair (podman kills one container
/// after another, and the first is repaired before the last is killed:
/// the instant after would undercount).
async fn kill(apps: &[&App]) -> anyhow::Result<Instant> {
    let mut names = Vec::new();
    for app in apps {
        let filter = format!("label=io.slipway.app={}", app.id);
        let found = images::engine(
            "podman",
            &["ps", "--filter", &filter, "--format", "{{.Names}}"],
        )
        .await?;
        let name = found
            .split_whitespace()
            .next()
            .with_context(|| format!("{}: no running container", app.name))?
            .to_owned();
        names.push(name);
    }
    let mut args = vec!["kill"];
    args.extend(names.iter().map(String::as_str));
    let killed = Instant::now();
    images::engine("podman", &args).await?;
    Ok(killed)
}

async fn wait_repaired(url: &str, app: &App, killed: Instant) -> anyhow::Result<Option<Duration>> {
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
