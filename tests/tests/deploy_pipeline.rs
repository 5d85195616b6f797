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

/// The fleet's settings for the local target behind a test Caddy; `extra` joins them.
fn local_env(
    registry: &Registry,
    caddy: &Caddy,
    build_dir: &std::path::Path,
    extra: &[(&'static str, String)],
) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("SLIPWAY_REGISTRY", registry.addr().to_string()),
        ("SLIPWAY_BUILD_DIR", build_dir.display().to_string()),
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
    env.extend(extra.iter().cloned());
    env
}

/// The fleet with its own registry, build dir and Caddy (HTTP only).
async fn start_fleet(
    registry: &Registry,
    caddy: &Caddy,
    dirs: &tempfile::TempDir,
) -> anyhow::Result<Fleet> {
    Fleet::start(Options {
        env: local_env(registry, caddy, dirs.path(), &[]),
        ..Options::default()
    })
    .await
}

#[tokio::test]
async fn an_app_goes_live_behind_caddy_and_a_redeploy_replaces_it() -> anyhow::Result<()> {
    let registry = Registry::start().await?;
    let caddy = Caddy::start().await?;
    let dirs = tempfile::tempdir()?;
    let mut fleet = start_fleet(&registry, &caddy, &dirs).await?;
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

    // A cancel inside the switch window (the route points at the new
    // release, the deployment is not live yet) wins: the route goes back
    // to the release that served, the cancelled one's containers go. A
    // deploy worker whose HTTPS certificates cannot be issued (its ACME CA
    // does not answer) holds the window open for its HTTPS wait; its
    // reconciler is off, so the deploy itself must put things back.
    let deployer = fleet
        .workers
        .iter()
        .find(|w| w.stage == "deploy")
        .map(|w| w.id.clone())
        .context("a deploy worker")?;
    fleet.worker(&deployer).proc.sigterm()?;
    fleet
        .worker(&deployer)
        .proc
        .wait_exit(Duration::from_secs(60))
        .await
        .context("the deploy worker exits")?;
    let https_addr = format!("127.0.0.1:{}", slipway_testkit::free_port());
    let nowhere = format!(
        "https://127.0.0.1:{}/directory",
        slipway_testkit::free_port()
    );
    fleet.spawn_worker_with(
        "deploy",
        &[
            ("SLIPWAY_CADDY_HTTPS_ADDR", &https_addr),
            ("SLIPWAY_TLS_ISSUER", "acme"),
            ("SLIPWAY_ACME_CA", &nowhere),
            ("SLIPWAY_ACME_EMAIL", "ops@example.test"),
            ("SLIPWAY_RECONCILE_INTERVAL", "off"),
        ],
    )?;
    repo.push_change("main", "index.html", "<h1>cancelled release</h1>\n")?;
    let (status, answer) = fleet
        .call(Method::POST, "/v1/apps/site/deployments", Some(json!({})))
        .await?;
    anyhow::ensure!(status == 202, "deploy: {status} {answer}");
    let cancelled_id = answer["id"].as_str().context("id")?.to_owned();
    slipway_testkit::wait_until(DEPLOY_TIMEOUT, "the route switches", || async {
        let (_, page) = common::through_caddy(&caddy, host)
            .await
            .unwrap_or_default();
        page.contains("cancelled release")
    })
    .await
    .with_context(|| fleet.logs())?;
    let deployment = fleet.deployment(cancelled_id.parse()?).await?;
    assert_ne!(deployment["state"], "live", "{deployment:#}");
    let (status, answer) = fleet
        .call(
            Method::POST,
            &format!("/v1/deployments/{cancelled_id}/cancel"),
            None,
        )
        .await?;
    assert_eq!(status, 200, "{answer}");
    slipway_testkit::wait_until(
        Duration::from_secs(60),
        "the previous release serves again, alone",
        || async {
            let (_, page) = common::through_caddy(&caddy, host)
                .await
                .unwrap_or_default();
            page.contains("VERSION 1") && common::app_containers(&app_id, true).len() == 1
        },
    )
    .await
    .with_context(|| {
        format!(
            "containers {:?}\n{}",
            common::app_containers(&app_id, true),
            fleet.logs()
        )
    })?;
    let deployment = fleet
        .wait_state(cancelled_id.parse()?, common::TERMINAL, DEPLOY_TIMEOUT)
        .await?;
    assert_eq!(deployment["state"], "cancelled", "{deployment:#}");
    assert!(
        !common::states(&deployment).iter().any(|s| s == "live"),
        "{deployment:#}"
    );

    fleet.stop().await;
    Ok(())
}

/// `podman` as the test's build tools run it.
fn podman() -> std::process::Command {
    let mut command = std::process::Command::new("podman");
    if let Ok(conf) = std::env::var("CONTAINERS_CONF") {
        command.env("CONTAINERS_CONF", conf);
    }
    command
}

/// The name the build worker's pull leaves in local storage, untagged
/// before (so the pull really happens) and after.
struct Untag(&'static str);

impl Drop for Untag {
    fn drop(&mut self) {
        let _ = podman().args(["rmi", self.0]).output();
    }
}

#[tokio::test]
async fn a_dockerfile_with_a_short_name_from_deploys_with_no_settings() -> anyhow::Result<()> {
    let registry = Registry::start().await?;
    // Docker Hub cannot be reached here: a test registry is its mirror,
    // holding the local python image as library/python:3.12-slim.
    let mirror = Registry::start().await?;
    let python = std::env::var("SLIPWAY_BASE_IMAGE_PYTHON")
        .unwrap_or_else(|_| "localhost/slipway/python:bookworm".into());
    let pushed = podman()
        .args(["push", "--tls-verify=false", &python])
        .arg(format!("{}/library/python:3.12-slim", mirror.addr()))
        .output()?;
    anyhow::ensure!(
        pushed.status.success(),
        "{}",
        String::from_utf8_lossy(&pushed.stderr)
    );
    let pulled = "docker.io/library/python:3.12-slim";
    let _ = podman().args(["rmi", pulled]).output();
    let _pulled = Untag(pulled);
    let caddy = Caddy::start().await?;
    let dirs = tempfile::tempdir()?;
    let mirrors = format!("docker.io=http://{}", mirror.addr());
    let fleet = Fleet::start(Options {
        env: local_env(
            &registry,
            &caddy,
            dirs.path(),
            &[("SLIPWAY_REGISTRY_MIRRORS", mirrors)],
        ),
        ..Options::default()
    })
    .await?;
    let app = GitApp::create(&fleet, "hello", &example("dockerfile-shortname"), json!({})).await?;
    let _containers = common::AppContainers(app.id.clone());

    let deployed = deploy(&fleet, "hello", json!({})).await?;
    assert_eq!(deployed["state"], "live", "{deployed:#}\n{}", fleet.logs());
    let (status, page) = common::through_caddy(&caddy, "hello.p.localhost").await?;
    assert_eq!(
        (status, page.as_str()),
        (200, "Hello from dockerfile-shortname, VERSION 1\n")
    );
    fleet.stop().await;
    Ok(())
}

/// Express's hello world as it comes (no health route), pushed with no
/// settings: healthy once it listens on its port. Its first deploy, made
/// to crash, fails at once with the exit code and names no previous
/// release, since none serves.
#[tokio::test]
async fn hello_worlds_without_a_health_route_go_live_with_no_settings() -> anyhow::Result<()> {
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
        .call(
            Method::PATCH,
            "/v1/apps/hello",
            Some(json!({"env": {"NODE_OPTIONS": null}})),
        )
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

    // The usual hello worlds, unchanged and with no settings, deployed
    // side by side: Flask without a Procfile, FastAPI declaring Python
    // 3.13, a Vite site, Express with yarn and an .nvmrc.
    let examples = [
        ("flask", "python-flask-noprocfile"),
        ("fastapi", "python-versioned"),
        ("vite", "vite-site"),
        ("yarn", "node-express-yarn"),
    ];
    let mut apps = Vec::new();
    for (name, dir) in examples {
        let app = GitApp::create(&fleet, name, &example(dir), json!({})).await?;
        apps.push((name, common::AppContainers(app.id.clone()), app));
    }
    let deploys = examples.map(|(name, _)| deploy(&fleet, name, json!({})));
    let finished = futures::future::join_all(deploys).await;
    for ((name, dir), deployment) in examples.iter().zip(finished) {
        let deployment = deployment?;
        assert_eq!(
            deployment["state"],
            "live",
            "{dir}: {deployment:#}\n{}",
            fleet.logs()
        );
        let (status, page) = common::through_caddy(&caddy, &format!("{name}.p.localhost")).await?;
        assert_eq!(status, 200, "{dir}: {page}");
    }

    fleet.stop().await;
    Ok(())
}
