//! Operating a deployed app through the real fleet on the local target (API
//! and worker binaries, a test-owned git daemon, registry and Caddy, real
//! buildah and podman): stop answers 503 and stops the container, start
//! brings a fresh container of the same image back, restart replaces it
//! with no failed request, the app's status shows release, URLs and health;
//! custom domains join the route and are unique on the platform; the app
//! answers over HTTPS with a certificate from Caddy's internal CA; the
//! containers' output reaches the API as runtime logs;
//! `runtime.replicas` puts several containers behind the route; a request
//! in flight when the route switches finishes before its release stops;
//! destroy removes containers, route and app.

mod common;

use anyhow::Context;
use common::{example, Fleet, GitApp, Options};
use reqwest::Method;
use serde_json::{json, Value};
use slipway_testkit::caddy::Caddy;
use slipway_testkit::free_port;
use slipway_testkit::registry::Registry;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const DEPLOY_TIMEOUT: Duration = Duration::from_secs(300);
const HOST: &str = "site.p.localhost";
const DOMAIN: &str = "shop.example.test";

/// Sends `POST path` (a deploy or an operation), waits for its end.
async fn run(fleet: &Fleet, method: Method, path: &str, body: Value) -> anyhow::Result<Value> {
    let (status, answer) = fleet.call(method, path, Some(body)).await?;
    anyhow::ensure!(status == 202, "{path}: {status} {answer}");
    let id = answer["id"].as_str().context("id")?.parse()?;
    fleet.wait_state(id, common::TERMINAL, DEPLOY_TIMEOUT).await
}

async fn logs_of(fleet: &Fleet, deployment: &Value) -> anyhow::Result<String> {
    let id = deployment["id"].as_str().unwrap_or_default();
    let (_, logs) = fleet
        .call(
            Method::GET,
            &format!("/v1/deployments/{id}/logs?limit=1000"),
            None,
        )
        .await?;
    Ok(logs.to_string())
}

async fn app(fleet: &Fleet) -> anyhow::Result<Value> {
    let (status, app) = fleet.call(Method::GET, "/v1/apps/site", None).await?;
    anyhow::ensure!(status == 200, "{status} {app}");
    Ok(app)
}

struct Setup {
    fleet: Fleet,
    caddy: Caddy,
    https_addr: String,
    _registry: Registry,
    _dirs: tempfile::TempDir,
    _site: GitApp,
    _containers: common::AppContainers,
    app_id: String,
}

/// A fleet on a test-owned Caddy (HTTP and HTTPS) and registry, with the
/// static-site example as app `site` (custom domain `shop.example.test`).
async fn setup() -> anyhow::Result<Setup> {
    setup_with(&example("static-site")).await
}

/// The same with the app's code from `source`.
async fn setup_with(source: &Path) -> anyhow::Result<Setup> {
    let registry = Registry::start().await?;
    let caddy = Caddy::start().await?;
    let dirs = tempfile::tempdir()?;
    let https_addr = format!("127.0.0.1:{}", free_port());
    let mut env = vec![
        ("SLIPWAY_REGISTRY", registry.addr().to_string()),
        ("SLIPWAY_BUILD_DIR", dirs.path().display().to_string()),
        ("SLIPWAY_CADDY_ADMIN", caddy.admin_url().to_string()),
        ("SLIPWAY_CADDY_HTTP_ADDR", caddy.http_addr().to_string()),
        ("SLIPWAY_CADDY_HTTPS_ADDR", https_addr.clone()),
        ("SLIPWAY_CADDY_SERVER", "apps".to_string()),
        ("SLIPWAY_BASE_DOMAIN", "localhost".to_string()),
        ("SLIPWAY_HEALTH_MONITOR_INTERVAL", "500ms".to_string()),
        ("SLIPWAY_RUNTIME_LOG_INTERVAL", "300ms".to_string()),
        ("SLIPWAY_SECRET_KEY", "ab".repeat(32)),
    ];
    if let Ok(conf) = std::env::var("CONTAINERS_CONF") {
        env.push(("CONTAINERS_CONF", conf));
    }
    let fleet = Fleet::start(Options {
        env,
        ..Options::default()
    })
    .await?;
    let site = GitApp::create(&fleet, "site", source, json!({"domains": [DOMAIN]})).await?;
    let app_id = site.id.clone();
    Ok(Setup {
        fleet,
        caddy,
        https_addr,
        _registry: registry,
        _dirs: dirs,
        _site: site,
        _containers: common::AppContainers(app_id.clone()),
        app_id,
    })
}

#[tokio::test]
async fn stop_start_restart_with_status_domains_and_https() -> anyhow::Result<()> {
    let setup = setup().await?;
    let Setup {
        fleet,
        caddy,
        https_addr,
        app_id,
        ..
    } = &setup;

    // Domains are host names, one app's each.
    let (status, answer) = fleet
        .call(
            Method::POST,
            "/v1/apps",
            Some(json!({"name": "other", "domains": [DOMAIN]})),
        )
        .await?;
    assert_eq!((status, &answer["code"]), (409, &json!("domain_taken")));
    for bad in [
        "*.example.test",
        "Shop.example.test",
        "localhost",
        "a b.test",
    ] {
        let (status, answer) = fleet
            .call(
                Method::POST,
                "/v1/apps",
                Some(json!({"name": "other", "domains": [bad]})),
            )
            .await?;
        assert_eq!(
            (status, &answer["code"]),
            (422, &json!("validation_failed"))
        );
    }
    assert_eq!(app(fleet).await?["domains"], json!([DOMAIN]));
    assert_eq!(app(fleet).await?["status"]["state"], "not_deployed");
    let (status, answer) = fleet.call(Method::POST, "/v1/apps/site/stop", None).await?;
    assert_eq!((status, &answer["code"]), (409, &json!("not_deployed")));

    // Deployed: the app's host and its domain answer, over HTTP and HTTPS.
    let first = run(fleet, Method::POST, "/v1/apps/site/deployments", json!({})).await?;
    assert_eq!(first["state"], "live", "{first:#}\n{}", fleet.logs());
    for host in [HOST, DOMAIN] {
        let (status, page) = common::through_caddy(caddy, host).await?;
        assert_eq!(
            (status, page.contains("static-site")),
            (200, true),
            "{page}"
        );
    }
    let https_port = https_addr.rsplit(':').next().unwrap_or_default();
    let status = app(fleet).await?["status"].clone();
    assert_eq!(status["state"], "running", "{status:#}");
    assert_eq!(status["release"]["deployment"], first["id"]);
    assert_eq!(status["https_url"], format!("https://{HOST}:{https_port}/"));
    assert_eq!(status["health"]["ok"], true, "{status:#}");
    let root = reqwest::get(format!("{}/pki/ca/local", caddy.admin_url()))
        .await?
        .json::<Value>()
        .await?["root_certificate"]
        .as_str()
        .context("root_certificate")?
        .to_owned();
    let tls = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(root.as_bytes())?)
        .resolve(HOST, https_addr.parse()?)
        .resolve(DOMAIN, https_addr.parse()?)
        .timeout(Duration::from_secs(10))
        .build()?;
    assert_eq!(first["https_url"], status["https_url"]);
    let logs = logs_of(fleet, &first).await?;
    assert!(logs.contains("HTTPS certificates ready"), "{logs}");
    for host in [HOST, DOMAIN] {
        let page = tls
            .get(format!("https://{host}:{https_port}/"))
            .send()
            .await
            .with_context(|| format!("https://{host}: {}", caddy.log_tail(30)))?;
        assert_eq!(page.status(), 200);
        assert!(page.text().await?.contains("static-site"));
    }
    // A client without the internal root refuses the certificate.
    let untrusting = reqwest::Client::builder()
        .resolve(HOST, https_addr.parse()?)
        .build()?;
    assert!(untrusting
        .get(format!("https://{HOST}:{https_port}/"))
        .send()
        .await
        .is_err());

    // The deploy worker's monitor checks the serving release again.
    let first_check = status["health"]["checked_at"].clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let health = app(fleet).await?["status"]["health"].clone();
        if health["checked_at"] != first_check {
            assert_eq!(health["ok"], true, "{health}");
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "no new health check"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Runtime logs: busybox httpd's request lines, collected by the worker.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let logs = loop {
        let (status, logs) = fleet.call(Method::GET, "/v1/apps/site/logs", None).await?;
        assert_eq!(status, 200, "{logs}");
        let text = logs["lines"].to_string();
        if text.contains("response:200") {
            break logs;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "no request lines in the runtime logs: {logs}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let lines = logs["lines"].as_array().context("lines")?;
    assert!(lines.iter().all(|l| l["container"]
        .as_str()
        .is_some_and(|c| c.starts_with("slipway-"))));
    let seqs: Vec<i64> = lines.iter().filter_map(|l| l["seq"].as_i64()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    let (_, rest) = fleet
        .call(
            Method::GET,
            &format!("/v1/apps/site/logs?after={}", logs["next"]),
            None,
        )
        .await?;
    assert!(rest["lines"]
        .as_array()
        .is_some_and(|l| l.iter().all(|l| l["seq"].as_i64() > logs["next"].as_i64())));

    // Stop: 503, no container running, the release paused.
    let stop = run(fleet, Method::POST, "/v1/apps/site/stop", json!({})).await?;
    assert_eq!(stop["state"], "live", "{stop:#}\n{}", fleet.logs());
    assert_eq!(stop["source"], json!({"action": "stop"}));
    let (status, page) = common::through_caddy(caddy, HOST).await?;
    assert_eq!(status, 503, "{page}");
    assert!(common::app_containers(app_id, false).is_empty());
    let status = app(fleet).await?["status"].clone();
    assert_eq!(
        (&status["state"], &status["release"]["state"]),
        (&json!("stopped"), &json!("paused")),
        "{status:#}"
    );
    assert_eq!(app(fleet).await?["live"], Value::Null);
    let logs = logs_of(fleet, &stop).await?;
    assert!(logs.contains("nothing to build"), "{logs}");

    // Start: a fresh container of the same image, health-checked, routed.
    let start = run(fleet, Method::POST, "/v1/apps/site/start", json!({})).await?;
    assert_eq!(start["state"], "live", "{start:#}\n{}", fleet.logs());
    assert_eq!(start["image_digest"], first["image_digest"]);
    let (status, page) = common::through_caddy(caddy, HOST).await?;
    assert_eq!(
        (status, page.contains("static-site")),
        (200, true),
        "{page}"
    );
    assert_eq!(common::app_containers(app_id, false).len(), 1);
    assert_eq!(
        common::app_containers(app_id, true).len(),
        1,
        "the paused one is gone"
    );
    let logs = logs_of(fleet, &start).await?;
    assert!(
        logs.contains("without building") && logs.contains("healthy"),
        "{logs}"
    );
    let status = app(fleet).await?["status"].clone();
    assert_eq!(status["state"], "running");
    assert_eq!(status["release"]["deployment"], start["id"]);

    // Start of a running app changes nothing.
    let again = run(fleet, Method::POST, "/v1/apps/site/start", json!({})).await?;
    assert_eq!(again["state"], "live");
    assert!(logs_of(fleet, &again).await?.contains("nothing to do"));
    assert_eq!(
        app(fleet).await?["status"]["release"]["deployment"],
        start["id"]
    );

    // A container that dies is started again (or replaced) by the deploy
    // worker on the engine's death event, with no one asking (the monitor
    // may never see the gap: the repair is quicker than its round), and a
    // start then has nothing to do. The repair's start may come while
    // `podman stop` still cleans up after the death; that stop then fails,
    // with the container already running again. A (container, start time)
    // pair tells a revived container from the one stopped.
    let started_at = |id: &str| {
        std::process::Command::new("podman")
            .args(["inspect", "--format", "{{.State.StartedAt}}", id])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let running_now = || -> Vec<(String, String)> {
        common::app_containers(app_id, false)
            .into_iter()
            .map(|id| {
                let at = started_at(&id);
                (id, at)
            })
            .collect()
    };
    let killed = running_now();
    let stopped_at = tokio::time::Instant::now();
    for (id, _) in &killed {
        let stopped = std::process::Command::new("podman")
            .args(["stop", "-t", "0", id])
            .output()?;
        anyhow::ensure!(
            stopped.status.success() || !common::app_containers(app_id, false).is_empty(),
            "podman stop {id}: {}",
            String::from_utf8_lossy(&stopped.stderr)
        );
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let running = running_now();
        let revived = !running.is_empty() && running.iter().all(|c| !killed.contains(c));
        if revived && common::through_caddy(caddy, HOST).await?.0 == 200 {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the dead container is not back: running {running:?}, stopped {killed:?}\n{}",
            fleet.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("stopped container back after {:.2?}", stopped_at.elapsed());
    let revived = run(fleet, Method::POST, "/v1/apps/site/start", json!({})).await?;
    assert_eq!(revived["state"], "live", "{revived:#}\n{}", fleet.logs());
    assert!(logs_of(fleet, &revived).await?.contains("nothing to do"));
    let (status, page) = common::through_caddy(caddy, HOST).await?;
    assert_eq!(
        (status, page.contains("static-site")),
        (200, true),
        "{page}"
    );

    // Restart: a new container takes over while requests keep flowing.
    let stop_loop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let load = {
        let (stop_loop, sent, failed) = (stop_loop.clone(), sent.clone(), failed.clone());
        let url = format!("http://{}/", caddy.http_addr());
        tokio::spawn(async move {
            // Keep-alive connections, which Caddy's config reloads let go
            // gracefully (see worker-deploy's caddy/drain.rs).
            let client = reqwest::Client::new();
            while !stop_loop.load(Ordering::Relaxed) {
                let answer = client
                    .get(&url)
                    .header("host", HOST)
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await;
                sent.fetch_add(1, Ordering::Relaxed);
                let failure = match answer {
                    Ok(r) if r.status() == 200 => None,
                    Ok(r) => Some(format!("status {}", r.status())),
                    Err(e) => Some(format!("{e:?}")),
                };
                if let Some(failure) = failure {
                    failed.lock().expect("lock").push(failure);
                }
            }
        })
    };
    let restart = run(fleet, Method::POST, "/v1/apps/site/restart", json!({})).await?;
    stop_loop.store(true, Ordering::Relaxed);
    load.await?;
    assert_eq!(restart["state"], "live", "{restart:#}\n{}", fleet.logs());
    assert!(sent.load(Ordering::Relaxed) > 0);
    let failed = failed.lock().expect("lock").clone();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed during the restart: {failed:?}\n{}",
        failed.len(),
        sent.load(Ordering::Relaxed),
        logs_of(fleet, &restart).await?
    );
    assert_eq!(common::app_containers(app_id, true).len(), 1);
    assert_eq!(
        app(fleet).await?["status"]["release"]["deployment"],
        restart["id"]
    );

    // Scale: three containers of the same image behind the route.
    for bad in [json!({"replicas": 0}), json!({"replicas": 17})] {
        let (status, answer) = fleet
            .call(Method::POST, "/v1/apps/site/scale", Some(bad))
            .await?;
        assert_eq!(
            (status, &answer["code"]),
            (422, &json!("validation_failed"))
        );
    }
    let scaled = run(
        fleet,
        Method::POST,
        "/v1/apps/site/scale",
        json!({"replicas": 3}),
    )
    .await?;
    assert_eq!(scaled["state"], "live", "{scaled:#}\n{}", fleet.logs());
    assert_eq!(scaled["image_digest"], first["image_digest"]);
    assert_eq!(common::app_containers(app_id, false).len(), 3);
    assert_eq!(
        common::app_containers(app_id, true).len(),
        3,
        "the old release is gone"
    );
    assert_eq!(app(fleet).await?["runtime"]["replicas"], 3);
    for _ in 0..6 {
        let (status, page) = common::through_caddy(caddy, HOST).await?;
        assert_eq!(status, 200, "{page}");
    }
    // A domain taken off the app leaves its route and its certificate.
    let (status, answer) = fleet
        .call(Method::PATCH, "/v1/apps/site", Some(json!({"domains": []})))
        .await?;
    assert_eq!(status, 200, "{answer}");
    let restart_again = run(fleet, Method::POST, "/v1/apps/site/restart", json!({})).await?;
    assert_eq!(restart_again["state"], "live", "{restart_again:#}");
    let (status, _) = common::through_caddy(caddy, DOMAIN).await?;
    assert_eq!(status, 404);
    let tls_config: Value = reqwest::get(format!("{}/config/apps/tls", caddy.admin_url()))
        .await?
        .json()
        .await?;
    let text = tls_config.to_string();
    assert!(text.contains(HOST) && !text.contains(DOMAIN), "{text}");

    for (what, deployment) in [
        ("deploy", &first),
        ("stop", &stop),
        ("start", &start),
        ("start (running)", &again),
        ("start (dead container)", &revived),
        ("restart", &restart),
        ("scale to 3", &scaled),
    ] {
        eprintln!("{what}: {:.2} s", took(deployment));
    }
    setup.fleet.stop().await;
    Ok(())
}

/// Seconds from a deployment's creation to its end.
fn took(deployment: &Value) -> f64 {
    let at = |key: &str| {
        deployment[key]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    };
    match (at("created_at"), at("finished_at")) {
        (Some(created), Some(finished)) => (finished - created).as_seconds_f64(),
        _ => f64::NAN,
    }
}

#[tokio::test]
async fn destroy_removes_containers_route_and_app() -> anyhow::Result<()> {
    let setup = setup().await?;
    let Setup {
        fleet,
        caddy,
        app_id,
        ..
    } = &setup;
    // An app that never ran anything goes at once.
    let (status, _) = fleet
        .call(Method::POST, "/v1/apps", Some(json!({"name": "idle"})))
        .await?;
    assert_eq!(status, 201);
    let (status, answer) = fleet.call(Method::DELETE, "/v1/apps/idle", None).await?;
    assert_eq!(status, 204, "{answer}");

    // Two replicas behind the route, both stopped by a stop.
    let (status, answer) = fleet
        .call(
            Method::PATCH,
            "/v1/apps/site",
            Some(json!({"runtime": {"replicas": 2}})),
        )
        .await?;
    assert_eq!(status, 200, "{answer}");
    let first = run(fleet, Method::POST, "/v1/apps/site/deployments", json!({})).await?;
    assert_eq!(first["state"], "live", "{first:#}\n{}", fleet.logs());
    assert_eq!(common::app_containers(app_id, false).len(), 2);
    let route_id = format!("slipway-app-{}", app_id.replace('-', ""));
    let route: Value = reqwest::get(format!("{}/id/{route_id}", caddy.admin_url()))
        .await?
        .json()
        .await?;
    assert_eq!(
        route["handle"][0]["upstreams"].as_array().map(Vec::len),
        Some(2),
        "{route:#}"
    );
    for _ in 0..4 {
        let (status, page) = common::through_caddy(caddy, HOST).await?;
        assert_eq!(status, 200, "{page}");
    }
    let stop = run(fleet, Method::POST, "/v1/apps/site/stop", json!({})).await?;
    assert_eq!(stop["state"], "live", "{stop:#}");
    assert!(
        common::app_containers(app_id, false).is_empty(),
        "both replicas stopped"
    );
    assert_eq!(
        common::app_containers(app_id, true).len(),
        2,
        "stopped, not removed"
    );

    let (status, answer) = fleet.call(Method::DELETE, "/v1/apps/site", None).await?;
    assert_eq!(status, 202, "{answer}");
    let id = answer["id"].as_str().context("id")?.parse()?;
    let destroy = fleet
        .wait_state(id, common::TERMINAL, DEPLOY_TIMEOUT)
        .await?;
    assert_eq!(destroy["state"], "live", "{destroy:#}\n{}", fleet.logs());
    assert_eq!(destroy["source"], json!({"action": "destroy"}));
    assert_eq!(destroy["app"], Value::Null, "the app is gone");
    eprintln!("destroy (2 replicas, stopped): {:.2} s", took(&destroy));
    assert!(common::app_containers(app_id, true).is_empty());
    let (status, page) = common::through_caddy(caddy, HOST).await?;
    assert_eq!((status, page.as_str()), (404, "no app here\n"));
    let (status, _) = fleet.call(Method::GET, "/v1/apps/site", None).await?;
    assert_eq!(status, 404);
    // Its deployments stay readable; its domain is free again.
    assert_eq!(
        fleet
            .deployment(first["id"].as_str().unwrap_or_default().parse()?)
            .await?["state"],
        "live"
    );
    let (status, answer) = fleet
        .call(
            Method::POST,
            "/v1/apps",
            Some(json!({"name": "next", "domains": [DOMAIN]})),
        )
        .await?;
    assert_eq!(status, 201, "{answer}");
    let routes: Value = reqwest::get(format!("{}/config/apps/tls", caddy.admin_url()))
        .await?
        .json()
        .await?;
    assert!(!routes.to_string().contains(HOST), "{routes}");
    setup.fleet.stop().await;
    Ok(())
}

/// What the API says about operations without running them (no workers:
/// every operation stays queued): they are deployments in the app's lane,
/// a destroying app refuses new work, and the status says `destroying`.
/// The app's release is written as the deploy stage would have.
#[tokio::test]
async fn operations_are_queued_deployments_and_destroying_refuses_new_work() -> anyhow::Result<()> {
    let fleet = Fleet::start(Options {
        build_workers: 0,
        provision_workers: 0,
        deploy_workers: 0,
        ..Options::default()
    })
    .await?;
    let (status, app) = fleet
        .call(Method::POST, "/v1/apps", Some(json!({"name": "site"})))
        .await?;
    assert_eq!(status, 201, "{app}");
    let app_id: uuid::Uuid = app["id"].as_str().context("id")?.parse()?;
    let deployment = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO deployments (id, project_id, app_id, kind, state, dispatched, source, trace_id)
         VALUES ($1, $2, $3, 'app', 'live', true, '{}', '')",
    )
    .bind(deployment)
    .bind(fleet.project_id)
    .bind(app_id)
    .execute(&fleet.db.pool)
    .await?;
    sqlx::query(
        "INSERT INTO releases (id, app_id, deployment_id, image_ref, container_name, host_port, state, url)
         VALUES ($1, $2, $1, 'r/x@sha256:00', 'slipway-x', 1, 'live', 'http://site.p.localhost:8088/')",
    )
    .bind(deployment)
    .bind(app_id)
    .execute(&fleet.db.pool)
    .await?;
    let status = app_status(&fleet).await?;
    assert_eq!(
        (&status["state"], &status["url"], &status["health"]),
        (
            &json!("running"),
            &json!("http://site.p.localhost:8088/"),
            &Value::Null
        ),
        "{status:#}"
    );

    let (code, stop) = fleet.call(Method::POST, "/v1/apps/site/stop", None).await?;
    assert_eq!(code, 202, "{stop}");
    let stop_id = stop["id"].as_str().context("id")?.to_owned();
    let stop = fleet.deployment(stop_id.parse()?).await?;
    assert_eq!(
        (&stop["state"], &stop["source"]),
        (&json!("queued"), &json!({"action": "stop"}))
    );
    // A second operation waits in the lane behind the first.
    let (code, restart) = fleet
        .call(Method::POST, "/v1/apps/site/restart", None)
        .await?;
    assert_eq!(code, 202, "{restart}");
    let (code, answer) = fleet.call(Method::DELETE, "/v1/apps/site", None).await?;
    assert_eq!((code, &answer["code"]), (409, &json!("app_busy")));
    for id in [&stop_id, restart["id"].as_str().unwrap_or_default()] {
        let (code, _) = fleet
            .call(Method::POST, &format!("/v1/deployments/{id}/cancel"), None)
            .await?;
        assert_eq!(code, 200);
    }

    let (code, destroy) = fleet.call(Method::DELETE, "/v1/apps/site", None).await?;
    assert_eq!(code, 202, "{destroy}");
    assert_eq!(app_status(&fleet).await?["state"], "destroying");
    for (method, path) in [
        (Method::POST, "/v1/apps/site/deployments"),
        (Method::POST, "/v1/apps/site/start"),
        (Method::DELETE, "/v1/apps/site"),
    ] {
        let (code, answer) = fleet.call(method, path, None).await?;
        assert_eq!(
            (code, &answer["code"]),
            (409, &json!("app_destroying")),
            "{path}"
        );
    }
    let destroy = fleet
        .deployment(destroy["id"].as_str().context("id")?.parse()?)
        .await?;
    assert_eq!(destroy["source"], json!({"action": "destroy"}));
    fleet.stop().await;
    Ok(())
}

async fn app_status(fleet: &Fleet) -> anyhow::Result<Value> {
    let (code, app) = fleet.call(Method::GET, "/v1/apps/site", None).await?;
    anyhow::ensure!(code == 200, "{code} {app}");
    Ok(app["status"].clone())
}

/// The number of requests Caddy is proxying to each upstream, from its
/// admin API.
async fn in_flight(caddy: &Caddy) -> anyhow::Result<Vec<(String, u64)>> {
    let upstreams: Value = reqwest::Client::new()
        .get(format!("{}/reverse_proxy/upstreams", caddy.admin_url()))
        .send()
        .await?
        .json()
        .await?;
    Ok(upstreams
        .as_array()
        .context("an array")?
        .iter()
        .filter_map(|u| {
            Some((
                u["address"].as_str()?.to_owned(),
                u["num_requests"].as_u64()?,
            ))
        })
        .collect())
}

#[tokio::test]
async fn a_request_in_flight_during_a_switch_finishes_before_its_release_stops(
) -> anyhow::Result<()> {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/slow-app");
    let setup = setup_with(&fixture).await?;
    let Setup { fleet, caddy, .. } = &setup;
    let (status, answer) = fleet
        .call(
            Method::PATCH,
            "/v1/apps/site",
            Some(json!({"runtime": {"health_path": "/", "drain_ms": 20_000}})),
        )
        .await?;
    assert_eq!(status, 200, "{answer}");
    let first = run(fleet, Method::POST, "/v1/apps/site/deployments", json!({})).await?;
    assert_eq!(first["state"], "live", "{first:#}\n{}", fleet.logs());

    // A slow request (8 s, within the 20 s drain) reaches the live release
    // and is still running when the restart switches the route to a new
    // one, a few seconds later.
    let slow = tokio::spawn({
        let url = format!("http://{}/slow/8", caddy.http_addr());
        async move {
            let answer = reqwest::Client::new()
                .get(url)
                .header("host", HOST)
                .timeout(Duration::from_secs(30))
                .send()
                .await?;
            let status = answer.status().as_u16();
            anyhow::Ok((status, answer.text().await?))
        }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !in_flight(caddy).await?.iter().any(|(_, n)| *n > 0) {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the slow request never reached Caddy's upstream"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let restart = run(fleet, Method::POST, "/v1/apps/site/restart", json!({})).await?;
    assert_eq!(restart["state"], "live", "{restart:#}\n{}", fleet.logs());
    let (status, body) = tokio::time::timeout(Duration::from_secs(60), slow).await???;
    assert_eq!(
        status, 200,
        "the request in flight was answered by the old release: {body}"
    );
    assert!(body.starts_with("slow answer"), "{body}");
    let logs = logs_of(fleet, &restart).await?;
    assert!(logs.contains("is stopped"), "the drain ended: {logs}");
    // The deployment was `live` from the switch on; its attempt went on
    // through the drain (which can only make the gap longer).
    let at = |t: &Value| {
        t.as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    };
    let live_at = restart["events"]
        .as_array()
        .and_then(|events| events.iter().find(|e| e["to"] == "live"))
        .and_then(|e| at(&e["at"]))
        .context("a live event")?;
    let finished_at = restart["attempts"]
        .as_array()
        .and_then(|attempts| attempts.iter().rev().find(|a| a["stage"] == "deploy"))
        .and_then(|a| at(&a["finished_at"]))
        .context("a finished deploy attempt")?;
    assert!(
        (finished_at - live_at).num_milliseconds() >= 20_000,
        "live at {live_at}, the attempt ended at {finished_at}"
    );
    setup.fleet.stop().await;
    Ok(())
}
