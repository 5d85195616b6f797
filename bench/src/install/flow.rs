//! The two ways the scenario installs an app on a new server and removes
//! both again: `POST /v1/installs` followed to `completed` and
//! `DELETE /v1/installs/{id}` to `destroyed` (issue 15's install), or, for
//! a build without the installs API, the same parts by hand — a server
//! (`POST /v1/servers` to `ready`), an app placed on its target and its
//! first deploy, and the app answering at the server's address; then the
//! app's and the server's destroys. Both report the same ids and moments.

use crate::build::fleet::Fleet;
use anyhow::Context;
use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

pub const ACCOUNT: &str = "main";
pub const REGION: &str = "fsn1";
pub const SIZE: &str = "cx22";
/// The app's and the server's name (each run's are destroyed before the next).
pub const NAME: &str = "shop";
/// What the example's page says, to know the app itself answered.
pub const PAGE_MARK: &str = "static-site";

const LIMIT: Duration = Duration::from_secs(600);
const POLL: Duration = Duration::from_millis(100);
const UNAVAILABLE_LIMIT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// `POST /v1/installs`.
    Installs,
    /// `POST /v1/servers`, `POST /v1/apps` on its target, a deploy.
    ServersAndDeploy,
}

impl Via {
    /// `SLIPWAY_BENCH_INSTALL_VIA`: `installs` (default) or `servers`.
    pub fn from_env() -> anyhow::Result<Via> {
        match std::env::var("SLIPWAY_BENCH_INSTALL_VIA").as_deref() {
            Err(_) | Ok("installs") => Ok(Via::Installs),
            Ok("servers") => Ok(Via::ServersAndDeploy),
            Ok(other) => {
                anyhow::bail!("SLIPWAY_BENCH_INSTALL_VIA={other}: expected `installs` or `servers`")
            }
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Via::Installs => {
                "POST /v1/installs until completed; DELETE /v1/installs/{id} until destroyed"
            }
            Via::ServersAndDeploy => {
                "POST /v1/servers until ready, POST /v1/apps on its target, a deploy until live, \
                 the app answering at the server's address; DELETE the app, then the server"
            }
        }
    }
}

/// One install that completed.
#[derive(Debug, Clone)]
pub struct Installed {
    pub requested: DateTime<Utc>,
    /// The install's id (installs API) or the server's (servers + deploy).
    pub id: String,
    /// The server's create operation (a deployment of kind `server_create`).
    pub server_operation: String,
    /// The app's first deployment.
    pub deployment: String,
    pub completed: DateTime<Utc>,
}

pub async fn install(fleet: &Fleet, via: Via, git_url: &str) -> anyhow::Result<Installed> {
    match via {
        Via::Installs => through_installs(fleet, git_url).await,
        Via::ServersAndDeploy => through_servers(fleet, git_url).await,
    }
}

/// Removes what `installed` made; the time from the request to all gone.
pub async fn destroy(fleet: &Fleet, via: Via, installed: &Installed) -> anyhow::Result<Duration> {
    let started = Instant::now();
    match via {
        Via::Installs => {
            let path = format!("/v1/installs/{}", installed.id);
            let (status, view) = fleet.call(Method::DELETE, &path, None).await?;
            anyhow::ensure!(status == 202, "DELETE {path}: {status} {view}");
            let ended = wait(fleet, &path, |v| ended_status(v, &["destroyed", "failed"])).await?;
            anyhow::ensure!(ended["status"] == "destroyed", "destroy: {ended:#}");
        }
        Via::ServersAndDeploy => {
            let app = format!("/v1/apps/{NAME}");
            let (status, answer) = fleet.call(Method::DELETE, &app, None).await?;
            anyhow::ensure!(status == 202, "DELETE {app}: {status} {answer}");
            wait_gone(fleet, &app).await?;
            let server = format!("/v1/servers/{}", installed.id);
            let (status, answer) = fleet.call(Method::DELETE, &server, None).await?;
            anyhow::ensure!(status == 202, "DELETE {server}: {status} {answer}");
            let ended = wait(fleet, &server, |s| {
                ended_status_of(s, "state", &["destroyed", "failed"])
            })
            .await?;
            anyhow::ensure!(ended["state"] == "destroyed", "destroy: {ended:#}");
        }
    }
    Ok(started.elapsed())
}

async fn through_installs(fleet: &Fleet, git_url: &str) -> anyhow::Result<Installed> {
    let requested = Utc::now();
    let (status, view) = fleet
        .call(
            Method::POST,
            "/v1/installs",
            Some(
                json!({"provider": "hetzner", "account": ACCOUNT, "region": REGION, "size": SIZE,
                        "server_name": NAME,
                        "app": {"name": NAME, "git_url": git_url, "git_ref": "main"}}),
            ),
        )
        .await?;
    anyhow::ensure!(status == 202, "POST /v1/installs: {status} {view}");
    let id = text(&view, "id")?;
    let path = format!("/v1/installs/{id}");
    let ended = wait(fleet, &path, |v| ended_status(v, &["completed", "failed"])).await?;
    anyhow::ensure!(ended["status"] == "completed", "install: {ended:#}");
    let step = |name: &str| -> anyhow::Result<String> {
        let steps = ended["steps"].as_array().context("steps")?;
        let step = steps
            .iter()
            .find(|s| s["name"] == name)
            .with_context(|| format!("no {name} step in {ended}"))?;
        text(step, "operation")
    };
    let completed = text(&ended, "completed_at")?.parse()?;
    let app_url = text(&ended, "app_url")?;
    // The install says it is done; the bench checks the app does answer.
    answer(&app_url, None).await?;
    Ok(Installed {
        requested,
        server_operation: step("provision")?,
        deployment: step("deploy")?,
        completed,
        id,
    })
}

async fn through_servers(fleet: &Fleet, git_url: &str) -> anyhow::Result<Installed> {
    let requested = Utc::now();
    let (status, made) = fleet
        .call(
            Method::POST,
            "/v1/servers",
            Some(json!({"account": ACCOUNT, "region": REGION, "size": SIZE, "name": NAME})),
        )
        .await?;
    anyhow::ensure!(status == 202, "POST /v1/servers: {status} {made}");
    let id = text(&made, "id")?;
    let server = wait(fleet, &format!("/v1/servers/{id}"), |s| {
        ended_status_of(s, "state", &["ready", "failed"])
    })
    .await?;
    anyhow::ensure!(server["state"] == "ready", "server: {server:#}");
    let server_operation = text(&server["operations"][0], "id")?;
    let ipv4 = text(&server, "ipv4")?;

    let (status, app) = fleet
        .call(
            Method::POST,
            "/v1/apps",
            Some(json!({"name": NAME, "git_url": git_url, "git_ref": "main", "target": NAME})),
        )
        .await?;
    anyhow::ensure!(status == 201, "POST /v1/apps: {status} {app}");
    let (status, queued) = fleet
        .call(
            Method::POST,
            &format!("/v1/apps/{NAME}/deployments"),
            Some(json!({})),
        )
        .await?;
    anyhow::ensure!(status == 202, "deploy: {status} {queued}");
    let deployment = text(&queued, "id")?;
    let done = wait(fleet, &format!("/v1/deployments/{deployment}"), |d| {
        ["live", "failed", "cancelled"].contains(&d["state"].as_str().unwrap_or_default())
    })
    .await?;
    anyhow::ensure!(done["state"] == "live", "deploy: {done:#}");
    // The server's Caddy routes by the app's host name, at the server's address.
    let url = text(&done, "url")?;
    let host = reqwest::Url::parse(&url)?
        .host_str()
        .context("the release's URL has no host")?
        .to_owned();
    answer(&format!("http://{ipv4}/"), Some(&host)).await?;
    Ok(Installed {
        requested,
        id,
        server_operation,
        deployment,
        completed: Utc::now(),
    })
}

/// Waits until `url` answers 200 with the example's page.
async fn answer(url: &str, host: Option<&str>) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().no_proxy().build()?;
    let started = Instant::now();
    loop {
        let mut request = client.get(url).timeout(Duration::from_secs(5));
        if let Some(host) = host {
            request = request.header("host", host);
        }
        let last = match request.send().await {
            Ok(r) if r.status() == 200 => {
                let body = r.text().await.unwrap_or_default();
                if body.contains(PAGE_MARK) {
                    return Ok(());
                }
                format!("200 without the page: {body:.200}")
            }
            Ok(r) => format!("status {}", r.status()),
            Err(e) => e.to_string(),
        };
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(60),
            "{url} (host {host:?}) did not serve the app: {last}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// `GET path`, asked again while the API answers 503 (for up to
/// [`UNAVAILABLE_LIMIT`]): Postgres here is shared with other work, and an
/// API whose pool waited too long for a connection says so with a 503;
/// the moments read afterwards are the platform's own either way.
pub async fn get(fleet: &Fleet, path: &str) -> anyhow::Result<Value> {
    let started = Instant::now();
    loop {
        let (status, body) = fleet.call(Method::GET, path, None).await?;
        match status {
            200 => return Ok(body),
            503 if started.elapsed() < UNAVAILABLE_LIMIT => {
                eprintln!("[bench] GET {path}: 503 {body}; asking again");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            _ => anyhow::bail!("GET {path}: {status} {body}"),
        }
    }
}

/// Polls `GET path` until `done` holds.
async fn wait(fleet: &Fleet, path: &str, done: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
    let started = Instant::now();
    loop {
        let now = get(fleet, path).await?;
        if done(&now) {
            return Ok(now);
        }
        anyhow::ensure!(
            started.elapsed() < LIMIT,
            "{path} not done after {LIMIT:?}: {now:#}"
        );
        tokio::time::sleep(POLL).await;
    }
}

async fn wait_gone(fleet: &Fleet, path: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let (status, body) = fleet.call(Method::GET, path, None).await?;
        if status == 404 {
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < LIMIT,
            "{path} still there after {LIMIT:?}: {body}"
        );
        tokio::time::sleep(POLL).await;
    }
}

fn ended_status(view: &Value, statuses: &[&str]) -> bool {
    statuses.contains(&view["status"].as_str().unwrap_or_default())
}

/// A server in one of `states` with none of its operations still open.
fn ended_status_of(server: &Value, field: &str, states: &[&str]) -> bool {
    let open = server["operations"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|o| {
            !["live", "failed", "cancelled", "superseded"]
                .contains(&o["state"].as_str().unwrap_or_default())
        });
    states.contains(&server[field].as_str().unwrap_or_default()) && !open
}

fn text(value: &Value, field: &str) -> anyhow::Result<String> {
    value[field]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no `{field}` in {value}"))
}
