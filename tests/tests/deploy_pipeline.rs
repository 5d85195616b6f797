//! A deployment from git to live through the real fleet on the local
//! target: API and worker binaries, a test-owned git daemon, registry and
//! Caddy, real buildah and podman. The app answers through Caddy by host
//! name; a redeploy switches to the new release and stops the old one; a
//! release that fails its health check is removed while the old one keeps
//! serving, and the deployment says why; a rollback deploys an earlier
//! release's image again without building.

mod common;

use anyhow::Context;
use common::{example, Fleet, GitApp, Options};
use reqwest::Method;
use serde_json::{json, Value};
use slipway_testkit::caddy::Caddy;
use slipway_testkit::registry::Registry;
use std::time::Duration;

const DEPLOY_TIMEOUT: Duration = Duration::from_secs(300);

async fn deploy(fleet: &Fleet, app: &str, body: Value) -> anyhow::Result<Value> {
    let (status, answer) = fleet
        .call(
            Method::POST,
            &format!("/v1/apps/{app}/deployments"),
            Some(body),
        )
        .await?;
    anyhow::ensure!(status == 202, "deploy: {status} {answer}");
    let id = answer["id"].as_str().context("id")?.parse()?;
    fleet.wait_state(id, common::TERMINAL, DEPLOY_TIMEOUT).await
}

/// The fleet with its own registry, build dir and Caddy (HTTP only).
async fn start_fleet(
    registry: &Registry,
    caddy: &Caddy,
    dirs: &tempfile::TempDir,
) -> anyhow::Result<Fleet> {
    let mut env = vec![
        ("SLIPWAY_REGISTRY", registry.addr().to_string()),
        ("SLIPWAY_BUILD_DIR", dirs.path().display().to_string()),
        ("SLIPWAY_CADDY_ADMIN", caddy.admin_url().to_string()),
        ("SLIPWAY_CADDY_HTTP_ADDR", caddy.http_addr().to_string()),
        ("SLIPWAY_CADDY_SERVER", "apps".to_string()),
        ("SLIPWAY_CADDY_HTTPS_ADDR", "off".to_string()),
        ("SLIPWAY_BASE_DOMAIN", "localhost".to_string()),
        ("SLIPWAY_SECRET_KEY", "ab".repeat(32)),
    ];
    if let Ok(conf) = std::env::var("CONTAINERS_CONF") {
        env.push(("CONTAINERS_CONF", conf));
    }
    Fleet::start(Options {
        env,
        ..Options::default()
    })
    .await
}

#[tokio::test]
async fn an_app_goes_live_behind_caddy_and_a_redeploy_replaces_it() -> anyhow::Result<()> {
    let registry = Registry::start().await?;
    let caddy = Caddy::start().await?;
    let dirs = tempfile::tempdir()?;
    let fleet = start_fleet(&registry, &caddy, &dirs).await?;
    let site = GitApp::create(
        &fleet,
        "site",
        &example("static-site"),
        json!({"runtime": {"health_path": "/healthz"}}),
    )
    .await?;
    let (repo, app_id) = (&site.repo, site.id.clone());
    let _containers = common::AppContainers(app_id.clone());
    let host = "site.p.localhost";

    let first = deploy(&fleet, "site", json!({})).await?;
    assert_eq!(first["state"], "live", "{first:#}\n{}", fleet.logs());
    assert_eq!(
        first["url"],
        format!(
            "http://{host}:{}/",
            caddy.http_addr().rsplit(':').next().unwrap_or_default()
        )
    );
    let (status, page) = common::through_caddy(&caddy, host).await?;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("static-site"), "{page}");
    assert_eq!(common::app_containers(&app_id, false).len(), 1);
    let (_, app_now) = fleet.call(Method::GET, "/v1/apps/site", None).await?;
    assert_eq!(app_now["live"]["deployment"], first["id"], "{app_now:#}");

    // A new commit: a new release replaces the old one.
    repo.push_change("main", "index.html", "<h1>second release</h1>\n")?;
    let second = deploy(&fleet, "site", json!({})).await?;
    assert_eq!(second["state"], "live", "{second:#}\n{}", fleet.logs());
    let (status, page) = common::through_caddy(&caddy, host).await?;
    assert_eq!(
        (status, page.contains("second release")),
        (200, true),
        "{page}"
    );
    assert_eq!(
        common::app_containers(&app_id, false).len(),
        1,
        "the old release was stopped"
    );

    // A release that never becomes healthy leaves the second one serving.
    let (status, answer) = fleet
        .call(
            Method::PATCH,
            "/v1/apps/site",
            Some(
                json!({"runtime": {"health_path": "/no-such-path", "health_attempts": 3,
                                    "health_interval_ms": 100}}),
            ),
        )
        .await?;
    anyhow::ensure!(status == 200, "patch: {status} {answer}");
    repo.push_change("main", "index.html", "<h1>third release</h1>\n")?;
    let third = deploy(&fleet, "site", json!({})).await?;
    assert_eq!(third["state"], "failed", "{third:#}");
    assert_eq!(third["error_code"], "health_check_failed", "{third:#}");
    let message = third["error_message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("GET /no-such-path: status 404"),
        "{message}"
    );
    assert!(
        message.contains("; the previous release keeps serving."),
        "{message}"
    );
    let (status, page) = common::through_caddy(&caddy, host).await?;
    assert_eq!(
        (status, page.contains("second release")),
        (200, true),
        "{page}"
    );
    assert_eq!(
        common::app_containers(&app_id, false).len(),
        1,
        "the failed release was removed"
    );

    // Roll back to the first release: its image again, no build.
    let (status, answer) = fleet
        .call(
            Method::PATCH,
            "/v1/apps/site",
            Some(json!({"runtime": {"health_path": "/healthz"}})),
        )
        .await?;
    anyhow::ensure!(status == 200, "patch: {status} {answer}");
    let rollback = deploy(&fleet, "site", json!({"rollback_to": first["id"]})).await?;
    assert_eq!(rollback["state"], "live", "{rollback:#}\n{}", fleet.logs());
    assert_eq!(rollback["image_digest"], first["image_digest"]);
    assert_eq!(rollback["resolved_commit"], first["resolved_commit"]);
    let (status, page) = common::through_caddy(&caddy, host).await?;
    assert_eq!((status, page.contains("VERSION 1")), (200, true), "{page}");
    assert_eq!(common::app_containers(&app_id, false).len(), 1);
    let rollback_id = rollback["id"].as_str().unwrap_or_default();
    let (_, logs) = fleet
        .call(
            Method::GET,
            &format!("/v1/deployments/{rollback_id}/logs?limit=1000"),
            None,
        )
        .await?;
    let text = logs.to_string();
    assert!(
        text.contains("without building") && !text.contains("STEP"),
        "{text}"
    );
    // Only a deployment of this app with an image can be rolled back to.
    let (status, answer) = fleet
        .call(
            Method::POST,
            "/v1/apps/site/deployments",
            Some(json!({"rollback_to": uuid::Uuid::new_v4()})),
        )
        .await?;
    assert_eq!(status, 404, "{answer}");

    fleet.stop().await;
    Ok(())
}

/// Express's hello world as it comes (no health route), pushed with no
/// settings: healthy once it listens on its port. Its first deploy, made
/// to crash, fails at once with the exit code and names no previous
/// release, since none serves.
#[tokio::test]
async fn an_app_without_a_health_route_goes_live_with_no_settings() -> anyhow::Result<()> {
    let registry = Registry::start().await?;
    let caddy = Caddy::start().await?;
    let dirs = tempfile::tempdir()?;
    let fleet = start_fleet(&registry, &caddy, &dirs).await?;
    // `node` (npm's too) stops at once when a required module is missing.
    let hello = GitApp::create(
        &fleet,
        "hello",
        &example("node-express-nohealth"),
        json!({"env": {"NODE_OPTIONS": "--require /no/such/module.js"}}),
    )
    .await?;
    let _containers = common::AppContainers(hello.id.clone());

    let crashed = deploy(&fleet, "hello", json!({})).await?;
    assert_eq!(crashed["state"], "failed", "{crashed:#}\n{}", fleet.logs());
    assert_eq!(crashed["error_code"], "health_check_failed", "{crashed:#}");
    let message = crashed["error_message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("port 8080 inside the container: the container exited with code"),
        "{message}"
    );
    assert!(!message.contains("previous release"), "{message}");
    assert!(message.contains("Cannot find module"), "{message}");

    let (status, answer) = fleet
        .call(Method::PATCH, "/v1/apps/hello", Some(json!({"env": {}})))
        .await?;
    anyhow::ensure!(status == 200, "patch: {status} {answer}");
    let live = deploy(&fleet, "hello", json!({})).await?;
    assert_eq!(live["state"], "live", "{live:#}\n{}", fleet.logs());
    let (status, page) = common::through_caddy(&caddy, "hello.p.localhost").await?;
    assert_eq!((status, page.as_str()), (200, "Hello World!"));
    let (_, app) = fleet.call(Method::GET, "/v1/apps/hello", None).await?;
    let detail = app["status"]["health"]["detail"]
        .as_str()
        .unwrap_or_default();
    assert!(
        detail.starts_with("port 8080 listening inside the container"),
        "{app:#}"
    );

    fleet.stop().await;
    Ok(())
}
