//! The reconciler against real podman, a test-owned Caddy and the real
//! deploy worker process: after the app's container is killed, or removed,
//! and after Caddy restarts without its config, the app serves again
//! without any new deployment, and the worker's metrics count the repairs;
//! so it does after a "host restart" (deploy worker, container and Caddy
//! down at once, then a new worker). A stray container of the app goes.
//! The advisory locks: one reconciler pass at a time, and a deploy waits
//! for an app being repaired.
//! Every replica of a live release comes back (killed, removed, after a
//! Caddy restart with its domain and HTTPS), and a stopped app stays
//! stopped: its containers are not started, and after a Caddy restart its
//! route answers 503 ("stopped") again.
//! A deploy worker killed in the middle of a deploy leaves the old release
//! serving (the other worker's reconciler does not undo the half-done
//! deploy), and the re-run job finishes the switch.

mod common;

use anyhow::Context;
use common::{Fleet, Options};
use reqwest::Method;
use serde_json::{json, Value};
use slipway_testkit::caddy::Caddy;
use slipway_testkit::free_port;
use slipway_testkit::git::{seed_repo, GitDaemon, SeededRepo};
use slipway_testkit::registry::Registry;
use std::path::Path;
use std::time::{Duration, Instant};
use uuid::Uuid;

const DEPLOY_TIMEOUT: Duration = Duration::from_secs(300);
/// Generous: a repair takes a pass (1 s apart here) plus a podman command.
const REPAIR_TIMEOUT: Duration = Duration::from_secs(90);

fn podman(args: &[&str]) -> anyhow::Result<String> {
    let out = std::process::Command::new("podman").args(args).output()?;
    anyhow::ensure!(
        out.status.success(),
        "podman {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// What a test works with: the fleet, Caddy and the app (`site`).
struct Setup {
    fleet: Fleet,
    caddy: Caddy,
    /// Where the test's Caddy serves the apps over HTTPS.
    https_addr: String,
    repo: SeededRepo,
    host: String,
    app_id: String,
    _registry: Registry,
    _daemon: GitDaemon,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
    _containers: common::AppContainers,
}

async fn setup(deploy_workers: usize) -> anyhow::Result<Setup> {
    let registry = Registry::start().await?;
    let caddy = Caddy::start().await?;
    let https_addr = format!("127.0.0.1:{}", free_port());
    let builds = tempfile::tempdir()?;
    let mut env = vec![
        ("SLIPWAY_REGISTRY", registry.addr().to_string()),
        ("SLIPWAY_BUILD_DIR", builds.path().display().to_string()),
        ("SLIPWAY_CADDY_ADMIN", caddy.admin_url()),
        ("SLIPWAY_CADDY_HTTP_ADDR", caddy.http_addr().to_string()),
        ("SLIPWAY_CADDY_HTTPS_ADDR", https_addr.clone()),
        ("SLIPWAY_CADDY_SERVER", "apps".to_string()),
        ("SLIPWAY_BASE_DOMAIN", "localhost".to_string()),
        ("SLIPWAY_SECRET_KEY", "ab".repeat(32)),
        ("SLIPWAY_RECONCILE_INTERVAL", "1s".to_string()),
    ];
    if let Ok(conf) = std::env::var("CONTAINERS_CONF") {
        env.push(("CONTAINERS_CONF", conf));
    }
    let fleet = Fleet::start(Options {
        env,
        deploy_workers,
        ..Options::default()
    })
    .await?;
    let repos = tempfile::tempdir()?;
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/static-site");
    let repo = seed_repo(repos.path(), "site", Some(&example))?;
    let daemon = GitDaemon::start(repos.path())?;
    let (status, app) = fleet
        .call(
            Method::POST,
            "/v1/apps",
            Some(json!({"name": "site", "git_url": daemon.url("site"), "git_ref": "main"})),
        )
        .await?;
    anyhow::ensure!(status == 201, "create app: {status} {app}");
    let app_id = app["id"].as_str().context("app id")?.to_owned();
    Ok(Setup {
        fleet,
        caddy,
        https_addr,
        repo,
        host: "site.p.localhost".into(),
        _containers: common::AppContainers(app_id.clone()),
        app_id,
        _registry: registry,
        _daemon: daemon,
        _dirs: (builds, repos),
    })
}

impl Setup {
    async fn deploy(&self, body: Value) -> anyhow::Result<Uuid> {
        let (status, answer) = self
            .fleet
            .call(Method::POST, "/v1/apps/site/deployments", Some(body))
            .await?;
        anyhow::ensure!(status == 202, "deploy: {status} {answer}");
        Ok(answer["id"].as_str().context("id")?.parse()?)
    }

    /// The page through Caddy, by host name.
    async fn page(&self) -> anyhow::Result<(u16, String)> {
        let answer = reqwest::Client::builder()
            .no_proxy()
            .build()?
            .get(format!("http://{}/", self.caddy.http_addr()))
            .header("host", &self.host)
            .timeout(Duration::from_secs(5))
            .send()
            .await?;
        Ok((answer.status().as_u16(), answer.text().await?))
    }

    /// Waits until the app answers 200 with `text` through Caddy.
    async fn wait_serving(&self, text: &str) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            let last = self.page().await;
            if matches!(&last, Ok((200, page)) if page.contains(text)) {
                return Ok(());
            }
            anyhow::ensure!(
                started.elapsed() < REPAIR_TIMEOUT,
                "the app does not serve {text:?}: {last:?}\n{}\n--- caddy\n{}",
                self.fleet.logs(),
                self.caddy.log_tail(20)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `(container name, release id)` of the app's live release.
    async fn live_release(&self) -> anyhow::Result<(String, Uuid)> {
        Ok(sqlx::query_as(
            "SELECT container_name, id FROM releases WHERE app_id = $1::uuid AND state = 'live'",
        )
        .bind(&self.app_id)
        .fetch_one(&self.fleet.db.pool)
        .await?)
    }

    async fn deployments(&self) -> anyhow::Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT count(*) FROM deployments WHERE app_id = $1::uuid")
                .bind(&self.app_id)
                .fetch_one(&self.fleet.db.pool)
                .await?,
        )
    }

    /// Waits until a repair of `kind` is counted.
    async fn wait_repaired(&self, kind: &str) -> anyhow::Result<()> {
        self.fleet.wait_repairs(kind, 1, REPAIR_TIMEOUT).await
    }

    async fn repairs(&self, kind: &str) -> anyhow::Result<u64> {
        self.fleet.repairs(kind).await
    }
}

fn running(name: &str) -> bool {
    podman(&[
        "container",
        "inspect",
        "--format",
        "{{.State.Running}}",
        name,
    ])
    .is_ok_and(|out| out == "true")
}

#[tokio::test]
async fn a_killed_or_removed_container_and_a_restarted_caddy_are_brought_back() -> anyhow::Result<()>
{
    let s = setup(1).await?;
    let first = s.deploy(json!({})).await?;
    let first = s
        .fleet
        .wait_state(first, common::TERMINAL, DEPLOY_TIMEOUT)
        .await?;
    assert_eq!(first["state"], "live", "{first:#}\n{}", s.fleet.logs());
    s.wait_serving("VERSION 1").await?;
    let (name, release) = s.live_release().await?;

    // The app's process dies: the container is started again.
    podman(&["kill", &name])?;
    s.wait_serving("VERSION 1").await?;
    assert!(running(&name), "{name} runs again");
    s.wait_repaired("container_started").await?;
    // Counted under the target's kind, not its id.
    let on = |target: &str| {
        format!(r#"slipway_reconcile_repairs_total{{kind="container_started",target="{target}"}}"#)
    };
    assert!(s.fleet.metric("deploy", &on("local")).await? >= 1);
    assert_eq!(s.fleet.metric("deploy", &on("ssh")).await?, 0);

    // The container is removed: it is re-created from the release's image.
    let old_id = podman(&["container", "inspect", "--format", "{{.Id}}", &name])?;
    podman(&["rm", "-f", "-t", "0", &name])?;
    s.wait_serving("VERSION 1").await?;
    let new_id = podman(&["container", "inspect", "--format", "{{.Id}}", &name])?;
    assert_ne!(old_id, new_id, "a new container under the release's name");
    s.wait_repaired("container_recreated").await?;

    // Caddy restarts with an empty config: server and route come back.
    let mut s = s;
    s.caddy.restart().await?;
    s.wait_serving("VERSION 1").await?;
    s.wait_repaired("caddy_server_restored").await?;
    s.wait_repaired("route_restored").await?;

    // The host restarts: the deploy worker, the app's container and Caddy
    // all go down; a new worker brings the app back.
    let worker = s
        .fleet
        .workers
        .iter()
        .find(|w| w.stage == "deploy")
        .map(|w| w.id.clone())
        .context("a deploy worker")?;
    s.fleet.worker(&worker).proc.sigkill()?;
    podman(&["stop", "-t", "0", &name])?;
    assert!(!running(&name));
    s.caddy.restart().await?;
    s.fleet.spawn_worker("deploy")?;
    s.wait_serving("VERSION 1").await?;
    assert!(running(&name), "{name} runs again");
    // Counted by the new worker.
    s.wait_repaired("container_started").await?;

    // A container of the app that is not the live release (as a crashed
    // deploy may leave one) is removed.
    let image = podman(&["container", "inspect", "--format", "{{.ImageName}}", &name])?;
    let stray = format!("slipway-stray-{}", Uuid::new_v4().simple());
    let label = format!("io.slipway.app={}", s.app_id);
    podman(&["run", "-d", "--name", &stray, "--label", &label, &image])?;
    let started = Instant::now();
    while podman(&["container", "exists", &stray]).is_ok() {
        anyhow::ensure!(
            started.elapsed() < REPAIR_TIMEOUT,
            "{stray} was not removed\n{}",
            s.fleet.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    s.wait_repaired("stale_container_removed").await?;
    assert!(running(&name));

    // The container is gone and, before anything repairs it, another
    // process takes its host port: it is re-created on a fresh port and
    // the route follows (the failed run on the old port leaves nothing in
    // the way of the name).
    let old_port = host_port(&name)?;
    let worker = s
        .fleet
        .workers
        .iter()
        .rev()
        .find(|w| w.stage == "deploy")
        .map(|w| w.id.clone())
        .context("the deploy worker spawned last")?;
    s.fleet.worker(&worker).proc.sigkill()?;
    podman(&["rm", "-f", "-t", "0", &name])?;
    let squatter = std::net::TcpListener::bind(("127.0.0.1", old_port))
        .with_context(|| format!("taking port {old_port}"))?;
    s.fleet.spawn_worker("deploy")?;
    s.wait_serving("VERSION 1").await?;
    let new_port = host_port(&name)?;
    assert_ne!(new_port, old_port, "a fresh port");
    drop(squatter);

    // All of it without a deployment: the same release is live.
    assert_eq!(s.deployments().await?, 1);
    assert_eq!(s.live_release().await?, (name, release));
    s.fleet.stop().await;
    Ok(())
}

/// The host port a container of the local engine publishes.
fn host_port(name: &str) -> anyhow::Result<u16> {
    let out = podman(&["port", name])?;
    let port = out
        .lines()
        .find_map(|l| l.rsplit(':').next()?.trim().parse().ok())
        .with_context(|| format!("no published port of {name}: {out}"))?;
    Ok(port)
}

#[tokio::test]
async fn a_deploy_worker_killed_mid_deploy_leaves_the_old_release_serving_and_the_rerun_switches(
) -> anyhow::Result<()> {
    let mut s = setup(2).await?;
    let first = s.deploy(json!({})).await?;
    let first = s
        .fleet
        .wait_state(first, common::TERMINAL, DEPLOY_TIMEOUT)
        .await?;
    assert_eq!(first["state"], "live", "{first:#}\n{}", s.fleet.logs());
    s.wait_serving("VERSION 1").await?;

    // A release whose health check keeps failing: the deploy waits in it.
    let (status, answer) = s
        .fleet
        .call(
            Method::PATCH,
            "/v1/apps/site",
            Some(
                json!({"runtime": {"health_path": "/not-yet", "health_attempts": 10000,
                                    "health_interval_ms": 100}}),
            ),
        )
        .await?;
    anyhow::ensure!(status == 200, "patch: {status} {answer}");
    let page = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/static-site/index.html"),
    )?;
    s.repo.push_change(
        "main",
        "index.html",
        &page.replacen("VERSION 1<", "VERSION 2<", 1),
    )?;
    let second = s.deploy(json!({})).await?;
    let holder = s
        .fleet
        .wait_running(second, "deploy", DEPLOY_TIMEOUT)
        .await?;
    let started = Instant::now();
    loop {
        let checking: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM deployment_logs WHERE deployment_id = $1
             AND line LIKE 'health check of %')",
        )
        .bind(second)
        .fetch_one(&s.fleet.db.pool)
        .await?;
        if checking {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < DEPLOY_TIMEOUT,
            "no health check\n{}",
            s.fleet.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The worker dies in the health check; the re-run will find the app
    // healthy again.
    s.fleet.worker(&holder).proc.sigkill()?;
    let (status, answer) = s
        .fleet
        .call(
            Method::PATCH,
            "/v1/apps/site",
            Some(json!({"runtime": {"health_path": "/healthz"}})),
        )
        .await?;
    anyhow::ensure!(status == 200, "patch: {status} {answer}");
    // Until the lease runs out (5 s here) the other worker's reconciler
    // passes (1 s apart) see the deploy in flight: the old release serves.
    for _ in 0..12 {
        let (status, page) = s.page().await?;
        assert_eq!((status, page.contains("VERSION 1")), (200, true), "{page}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let second = s
        .fleet
        .wait_state(second, common::TERMINAL, DEPLOY_TIMEOUT)
        .await?;
    assert_eq!(second["state"], "live", "{second:#}\n{}", s.fleet.logs());
    s.wait_serving("VERSION 2").await?;
    let deploy_attempts = second["attempts"]
        .as_array()
        .map_or(0, |a| a.iter().filter(|a| a["stage"] == "deploy").count());
    assert!(deploy_attempts >= 2, "the deploy was re-run: {second:#}");
    let (_, logs) = s
        .fleet
        .call(
            Method::GET,
            &format!(
                "/v1/deployments/{}/logs?limit=1000",
                second["id"].as_str().unwrap_or_default()
            ),
            None,
        )
        .await?;
    assert!(
        logs.to_string().contains("already running"),
        "the re-run took over the release the killed attempt started: {logs}"
    );
    // Settled: the reconciler leaves the new release alone.
    tokio::time::sleep(Duration::from_secs(3)).await;
    s.wait_serving("VERSION 2").await?;
    let filter = format!("label=io.slipway.app={}", s.app_id);
    let running_now = podman(&["ps", "-q", "--filter", &filter])?;
    assert_eq!(running_now.split_whitespace().count(), 1, "{running_now}");
    s.fleet.stop().await;
    Ok(())
}

#[tokio::test]
async fn one_reconciler_at_a_time_and_a_deploy_waits_for_an_app_being_repaired(
) -> anyhow::Result<()> {
    use slipway_worker_deploy::lock;
    let db = slipway_testkit::fresh_database().await?;
    let pool = &db.pool;

    // A second worker's pass finds the reconciler lock taken.
    let pass = lock::try_lock(pool, lock::RECONCILER_KEY)
        .await?
        .context("the reconciler lock is free at first")?;
    assert!(lock::try_lock(pool, lock::RECONCILER_KEY).await?.is_none());
    // A holder dropped without release (a cancelled job) closes its
    // session, which frees the lock.
    drop(pass);
    let started = Instant::now();
    let again = loop {
        if let Some(again) = lock::try_lock(pool, lock::RECONCILER_KEY).await? {
            break again;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "the dropped lock stays held"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    again.release().await;

    // A deploy (blocking lock) waits while the reconciler repairs the app;
    // the reconciler skips an app a deploy holds.
    let app = Uuid::new_v4();
    let repairing = lock::try_lock(pool, lock::app_key(app))
        .await?
        .context("the app lock is free")?;
    let deploy = tokio::spawn({
        let pool = pool.clone();
        async move { lock::lock(&pool, lock::app_key(app)).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!deploy.is_finished(), "the deploy waits for the repair");
    repairing.release().await;
    let deploying = tokio::time::timeout(Duration::from_secs(30), deploy).await???;
    assert!(lock::try_lock(pool, lock::app_key(app)).await?.is_none());
    deploying.release().await;
    let free = lock::try_lock(pool, lock::app_key(app)).await?;
    assert!(free.is_some(), "released");
    if let Some(free) = free {
        free.release().await;
    }
    db.drop_database().await;
    Ok(())
}

/// Waits until `name` runs.
async fn wait_running(s: &Setup, name: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    while !running(name) {
        anyhow::ensure!(
            started.elapsed() < REPAIR_TIMEOUT,
            "{name} does not run again\n{}",
            s.fleet.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

#[tokio::test]
async fn every_replica_comes_back_and_a_stopped_app_stays_stopped() -> anyhow::Result<()> {
    const DOMAIN: &str = "shop.example.test";
    let mut s = setup(1).await?;
    let (status, answer) = s
        .fleet
        .call(
            Method::PATCH,
            "/v1/apps/site",
            Some(json!({"runtime": {"replicas": 2}, "domains": [DOMAIN]})),
        )
        .await?;
    anyhow::ensure!(status == 200, "patch: {status} {answer}");
    let first = s.deploy(json!({})).await?;
    let first = s
        .fleet
        .wait_state(first, common::TERMINAL, DEPLOY_TIMEOUT)
        .await?;
    assert_eq!(first["state"], "live", "{first:#}\n{}", s.fleet.logs());
    s.wait_serving("VERSION 1").await?;
    let (name, _) = s.live_release().await?;
    let replica = format!("{name}-r1");
    assert!(running(&name) && running(&replica));

    // The second replica dies, then is removed: it comes back each time.
    podman(&["kill", &replica])?;
    wait_running(&s, &replica).await?;
    podman(&["rm", "-f", "-t", "0", &replica])?;
    wait_running(&s, &replica).await?;
    s.wait_repaired("container_recreated").await?;

    // Caddy restarts empty: the route comes back with both hosts and both
    // replicas, and the HTTPS server with the hosts' certificates.
    s.caddy.restart().await?;
    s.wait_serving("VERSION 1").await?;
    let route_id = format!("slipway-app-{}", s.app_id.replace('-', ""));
    let route: Value = reqwest::get(format!("{}/id/{route_id}", s.caddy.admin_url()))
        .await?
        .json()
        .await?;
    assert_eq!(
        route["handle"][0]["upstreams"].as_array().map(Vec::len),
        Some(2),
        "{route:#}"
    );
    assert!(route.to_string().contains(DOMAIN), "{route:#}");
    let port = s.https_addr.rsplit(':').next().unwrap_or_default();
    let started = Instant::now();
    loop {
        let root = reqwest::get(format!("{}/pki/ca/local", s.caddy.admin_url()))
            .await?
            .json::<Value>()
            .await?["root_certificate"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let answer = match reqwest::Certificate::from_pem(root.as_bytes()) {
            Ok(root) => reqwest::Client::builder()
                .no_proxy()
                .add_root_certificate(root)
                .resolve(DOMAIN, s.https_addr.parse()?)
                .timeout(Duration::from_secs(5))
                .build()?
                .get(format!("https://{DOMAIN}:{port}/"))
                .send()
                .await
                .map(|a| a.status().as_u16())
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if answer == Ok(200) {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < REPAIR_TIMEOUT,
            "HTTPS does not come back: {answer:?}\n{}",
            s.caddy.log_tail(20)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // A stopped app: its paused release is not started again.
    let (status, answer) = s
        .fleet
        .call(Method::POST, "/v1/apps/site/stop", None)
        .await?;
    anyhow::ensure!(status == 202, "stop: {status} {answer}");
    let stop = answer["id"].as_str().context("id")?.parse()?;
    let stop = s
        .fleet
        .wait_state(stop, common::TERMINAL, DEPLOY_TIMEOUT)
        .await?;
    assert_eq!(stop["state"], "live", "{stop:#}\n{}", s.fleet.logs());
    // Several passes (1 s apart).
    let corrected = s.repairs("route_corrected").await?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(!running(&name) && !running(&replica), "both stay stopped");
    assert_eq!(s.page().await?.0, 503);
    assert_eq!(
        s.repairs("route_corrected").await?,
        corrected,
        "the reconciler leaves a stopped app's 503 route as it is"
    );

    // Caddy restarts empty: the stopped app's 503 route comes back, and
    // its containers stay stopped.
    let restored = s.repairs("route_restored").await?;
    s.caddy.restart().await?;
    let started = Instant::now();
    let page = loop {
        match s.page().await {
            Ok((503, page)) => break page,
            last => anyhow::ensure!(
                started.elapsed() < REPAIR_TIMEOUT,
                "the stopped app's route does not come back: {last:?}\n{}",
                s.fleet.logs()
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!(
        "stopped app's 503 route back {:.2}s after the Caddy restart",
        started.elapsed().as_secs_f64()
    );
    assert!(page.contains("stopped"), "{page}");
    s.fleet
        .wait_repairs("route_restored", restored + 1, REPAIR_TIMEOUT)
        .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!running(&name) && !running(&replica), "both stay stopped");
    assert_eq!(s.repairs("route_restored").await?, restored + 1);
    assert_eq!(s.repairs("route_corrected").await?, corrected);
    assert_eq!(s.page().await?.0, 503);
    let state: String = sqlx::query_scalar(
        "SELECT state FROM releases WHERE app_id = $1::uuid ORDER BY created_at DESC LIMIT 1",
    )
    .bind(&s.app_id)
    .fetch_one(&s.fleet.db.pool)
    .await?;
    assert_eq!(state, "paused");
    s.fleet.stop().await;
    Ok(())
}
