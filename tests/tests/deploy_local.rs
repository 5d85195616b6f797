//! The local deploy path against real podman, Caddy and a test registry:
//! the static-site example is built and pushed, pulled by digest, started on
//! a fresh port, health-checked and routed by host name through Caddy; a
//! second version takes over while a request loop runs through Caddy with no
//! failed request; a release that fails its health check leaves the route on
//! the release that serves.
//!
//! Needs `scripts/build-tools.sh` and `scripts/deploy-tools.sh` (caddy); without
//! them the tests fail saying so.

use slipway_shared::job::JobError;
use slipway_shared::logsink::LogSink;
use slipway_testkit::caddy::Caddy;
use slipway_testkit::fresh_database;
use slipway_testkit::registry::Registry;
use slipway_worker_build::config::BuildSettings;
use slipway_worker_build::image::{self, BuildRequest, BuiltImage, ImageRepository};
use slipway_worker_build::plan;
use slipway_worker_deploy::caddy::{CaddyAdmin, RouteChange, RouteInfo};
use slipway_worker_deploy::engine::{
    ContainerSpec, Engine, EngineError, EngineKind, RunningContainer, LABEL_APP,
};
use slipway_worker_deploy::health::verdict::{Miss, Observation};
use slipway_worker_deploy::health::{
    self, wait_listening, HealthCheck, HealthError, ListenError, ListeningCheck,
};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const SERVER: &str = "apps";
const HOST: &str = "site.demo.localhost";

/// Removes, by name, every container and image a test made, even when the
/// test panics.
struct Cleanup {
    containers_conf: Option<PathBuf>,
    containers: Mutex<Vec<String>>,
    images: Mutex<Vec<String>>,
}

impl Cleanup {
    fn podman(&self) -> std::process::Command {
        let mut command = std::process::Command::new("podman");
        if let Some(conf) = &self.containers_conf {
            command.env("CONTAINERS_CONF", conf);
        }
        command
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let names = std::mem::take(&mut *self.containers.lock().unwrap_or_else(|p| p.into_inner()));
        for name in names {
            let _ = self
                .podman()
                .args(["rm", "--force", "--ignore", "--time", "0", &name])
                .output();
        }
        let images = std::mem::take(&mut *self.images.lock().unwrap_or_else(|p| p.into_inner()));
        for image in images {
            let _ = self.podman().args(["rmi", "--ignore", &image]).output();
        }
    }
}

struct Harness {
    settings: BuildSettings,
    /// Held for its Drop.
    _registry: Registry,
    engine: Engine,
    caddy: Caddy,
    admin: CaddyAdmin,
    app_id: Uuid,
    cleanup: Cleanup,
    _work: TempDir,
}

impl Harness {
    async fn start() -> anyhow::Result<Harness> {
        let mut settings = BuildSettings::from_env()?;
        let registry = Registry::start().await?;
        let work = TempDir::new("work");
        settings.registry.address = registry.addr().to_string();
        settings.registry.tls_verify = false;
        settings.work_dir = work.path.clone();
        let caddy = Caddy::start().await?;
        let admin = CaddyAdmin::new(&caddy.admin_url())?;
        Ok(Harness {
            engine: Engine::local(settings.containers_conf.clone()),
            cleanup: Cleanup {
                containers_conf: settings.containers_conf.clone(),
                containers: Default::default(),
                images: Default::default(),
            },
            settings,
            _registry: registry,
            caddy,
            admin,
            app_id: Uuid::new_v4(),
            _work: work,
        })
    }

    /// Builds and pushes `dir` (a static site) as this test's app.
    async fn build(&self, dir: &Path) -> anyhow::Result<BuiltImage> {
        let db = fresh_database().await?;
        let project_id = Uuid::new_v4();
        let deployment_id = Uuid::new_v4();
        sqlx::query("INSERT INTO projects (id, name) VALUES ($1, $2)")
            .bind(project_id)
            .bind(format!("p-{project_id}"))
            .execute(&db.pool)
            .await?;
        sqlx::query(
            "INSERT INTO deployments (id, project_id, kind, state, trace_id) VALUES ($1, $2, 'app', 'building', '')",
        )
        .bind(deployment_id)
        .bind(project_id)
        .execute(&db.pool)
        .await?;
        let stop = CancellationToken::new();
        let (sink, _task) =
            LogSink::start(db.pool.clone(), Duration::from_millis(20), stop.clone());
        let logs = sink.handle(deployment_id, "build", 1);
        let plan = plan::detect(dir, &self.settings.plan_settings(&Default::default()))?;
        let repository = ImageRepository::new(&self.settings.registry.address, "deploy", "site");
        let request = BuildRequest {
            source_dir: dir,
            plan: &plan,
            repository: &repository,
            deployment_id,
            build_vars: &[],
        };
        let mut built =
            image::build_and_push(&self.settings, &request, &logs, &CancellationToken::new()).await;
        // buildah's layer-cache lookup fails when an image it just listed is
        // removed under it (tests running in parallel prune and remove
        // images): one more try, as a retried build job would.
        if matches!(&built, Err(JobError::Permanent { message, .. }) if message.contains("layer not known"))
        {
            built =
                image::build_and_push(&self.settings, &request, &logs, &CancellationToken::new())
                    .await;
        }
        stop.cancel();
        let built = built.map_err(|e| anyhow::anyhow!("building {}: {e}", dir.display()))?;
        let mut images = self.cleanup.images.lock().unwrap();
        images.push(built.tag.clone());
        images.push(built.reference.clone());
        Ok(built)
    }

    /// Pulls the release's image (removed locally first, so the pull is
    /// real) and starts it; the pull time and the container.
    async fn start_release(
        &self,
        built: &BuiltImage,
        command: &[&str],
    ) -> anyhow::Result<(Duration, RunningContainer)> {
        self.engine.remove_image(&built.tag).await?;
        self.engine.remove_image(&built.reference).await?;
        let pull = self.engine.pull(&built.reference, false).await?;
        let mut spec = ContainerSpec::for_release(self.app_id, Uuid::new_v4(), &built.reference);
        spec.env.push(("GREETING".into(), "hello".into()));
        spec.memory = Some("128m".into());
        spec.command = command.iter().map(|s| s.to_string()).collect();
        self.cleanup
            .containers
            .lock()
            .unwrap()
            .push(spec.name.clone());
        let running = self.engine.run(&spec).await?;
        Ok((pull, running))
    }

    fn route_id(&self) -> String {
        format!("app-{}", self.app_id.simple())
    }

    async fn route_to(&self, c: &RunningContainer) -> anyhow::Result<(RouteChange, Duration)> {
        let started = Instant::now();
        let change = self
            .admin
            .set_route(
                SERVER,
                &self.route_id(),
                &[HOST.to_string()],
                &[upstream(c)],
            )
            .await?;
        Ok((change, started.elapsed()))
    }

    async fn get_page(&self, client: &reqwest::Client) -> anyhow::Result<(u16, String)> {
        let resp = client
            .get(format!("http://{}/", self.caddy.http_addr()))
            .header(reqwest::header::HOST, HOST)
            .send()
            .await?;
        Ok((resp.status().as_u16(), resp.text().await?))
    }
}

fn upstream(c: &RunningContainer) -> String {
    format!("127.0.0.1:{}", c.host_port)
}

/// Keep-alive connections, as browsers and most clients use: Caddy's
/// config reloads must let them go without a failed request (see
/// `caddy/drain.rs`).
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client")
}

/// What a request loop saw.
#[derive(Debug, Default)]
struct LoopReport {
    sent: usize,
    failed: Vec<String>,
    version_1: usize,
    version_2: usize,
    slowest: Duration,
}

/// Sends `rate` requests per second through Caddy until `stop` fires or
/// `limit` requests went out; each one counts as failed on a non-2xx, a
/// connection error or an answer slower than 2 s.
async fn request_loop(url: String, rate: u32, limit: usize, stop: CancellationToken) -> LoopReport {
    let report = Arc::new(Mutex::new(LoopReport::default()));
    let client = client();
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
    let mut tasks = Vec::new();
    for _ in 0..limit {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let (client, url, report) = (client.clone(), url.clone(), report.clone());
        tasks.push(tokio::spawn(async move {
            let started = Instant::now();
            let outcome = async {
                let resp = client
                    .get(&url)
                    .header(reqwest::header::HOST, HOST)
                    .send()
                    .await
                    .map_err(|e| format!("error: {e}"))?;
                let status = resp.status();
                let body = resp.text().await.map_err(|e| format!("body: {e}"))?;
                if !status.is_success() {
                    return Err(format!("status {status}"));
                }
                Ok(body)
            }
            .await;
            let elapsed = started.elapsed();
            let mut r = report.lock().unwrap();
            r.sent += 1;
            r.slowest = r.slowest.max(elapsed);
            match outcome {
                Ok(_) if elapsed > Duration::from_secs(2) => {
                    r.failed.push(format!("slow: {elapsed:?}"))
                }
                Ok(body) if body.contains("VERSION 1") => r.version_1 += 1,
                Ok(body) if body.contains("VERSION 2") => r.version_2 += 1,
                Ok(body) => r.failed.push(format!("unexpected body: {body}")),
                Err(e) => r.failed.push(e),
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    Arc::try_unwrap(report)
        .map(|m| m.into_inner().unwrap())
        .unwrap_or_else(|_| panic!("all request tasks finished"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn static_site_is_deployed_switched_without_failures_and_a_failed_release_keeps_the_old_one(
) -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let client = client();

    // Caddy: the apps server, idempotently.
    assert!(h.admin.ensure_server(SERVER, h.caddy.http_addr()).await?);
    assert!(
        !h.admin.ensure_server(SERVER, h.caddy.http_addr()).await?,
        "second ensure_server changes nothing"
    );
    let (status, _) = h.get_page(&client).await?;
    assert_eq!(status, 404, "an unknown host gets the catch-all 404");

    // Version 1: pull by digest, start, health-check, route.
    let site = TempDir::new("site");
    copy_dir(&example("static-site"), &site.path);
    let v1 = h.build(&site.path).await?;
    let (pull_1, c1) = h.start_release(&v1, &[]).await?;
    let healthy_1 = health::wait_healthy(c1.host_port, &HealthCheck::default()).await;
    let healthy_1 = healthy_1.unwrap_or_else(|e| panic!("v1 unhealthy: {e}"));
    let (change, route_1) = h.route_to(&c1).await?;
    assert_eq!(change, RouteChange::Created);
    let (status, page) = h.get_page(&client).await?;
    assert_eq!(status, 200, "{page}\n{}", h.caddy.log_tail(10));
    assert!(page.contains("VERSION 1"), "{page}");
    println!(
        "v1: pull {:.3} s, start {:.3} s, healthy {:.3} s ({} tries), route created {:.3} s",
        pull_1.as_secs_f64(),
        c1.start_time.as_secs_f64(),
        healthy_1.elapsed.as_secs_f64(),
        healthy_1.attempts,
        route_1.as_secs_f64()
    );

    // Version 2: a one-line change, started next to v1.
    replace_in(&site.path.join("index.html"), "VERSION 1", "VERSION 2");
    let v2 = h.build(&site.path).await?;
    assert_ne!(v1.digest, v2.digest);
    let (pull_2, c2) = h.start_release(&v2, &[]).await?;
    let healthy_2 = health::wait_healthy(c2.host_port, &HealthCheck::default()).await;
    let healthy_2 = healthy_2.unwrap_or_else(|e| panic!("v2 unhealthy: {e}"));
    let listed = h.engine.list(LABEL_APP, &h.app_id.to_string()).await?;
    let mut names: Vec<&str> = listed
        .iter()
        .filter(|c| c.is_running())
        .map(|c| c.name.as_str())
        .collect();
    names.sort();
    let mut want = vec![c1.name.as_str(), c2.name.as_str()];
    want.sort();
    assert_eq!(names, want, "both releases run under the app's label");
    assert!(listed.iter().any(|c| c.host_port == Some(c2.host_port)));

    // Switch under load over keep-alive connections: 400 req/s, at most
    // 16,000 requests. Every switch is a config reload that closes the old
    // servers' idle connections; 15 of them (back and forth, then to v2)
    // failed 2–6 requests in each of three runs without the drain.
    let stop = CancellationToken::new();
    let load = tokio::spawn(request_loop(
        format!("http://{}/", h.caddy.http_addr()),
        400,
        16000,
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(2)).await;
    for _ in 0..7 {
        h.route_to(&c2).await?;
        h.route_to(&c1).await?;
    }
    let (change, switch) = h.route_to(&c2).await?;
    assert_eq!(change, RouteChange::UpstreamsSwitched);
    // Drain, then stop the old release while the loop still runs.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stopping = Instant::now();
    h.engine.stop(&c1.name, Duration::from_secs(5)).await?;
    let stop_time = stopping.elapsed();
    h.engine.remove(&c1.name).await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.cancel();
    let report = load.await?;
    println!(
        "v2: pull {:.3} s, start {:.3} s, healthy {:.3} s ({} tries), switch {:.3} s, old stop {:.3} s",
        pull_2.as_secs_f64(),
        c2.start_time.as_secs_f64(),
        healthy_2.elapsed.as_secs_f64(),
        healthy_2.attempts,
        switch.as_secs_f64(),
        stop_time.as_secs_f64()
    );
    println!(
        "request loop: sent {}, failed {}, v1 {}, v2 {}, slowest {:.3} s",
        report.sent,
        report.failed.len(),
        report.version_1,
        report.version_2,
        report.slowest.as_secs_f64()
    );
    assert!(
        report.failed.is_empty(),
        "failed requests: {:?}",
        report.failed
    );
    assert!(report.sent >= 250, "{report:?}");
    assert!(report.version_1 > 0 && report.version_2 > 0, "{report:?}");
    assert!(
        !h.engine.is_running(&c1.name).await?,
        "the old release is gone"
    );
    assert!(h
        .engine
        .list(LABEL_APP, &h.app_id.to_string())
        .await?
        .iter()
        .all(|c| c.name != c1.name));
    let v2_route = RouteInfo {
        id: h.route_id(),
        hosts: vec![HOST.into()],
        upstreams: vec![upstream(&c2)],
    };
    assert_eq!(h.admin.routes(SERVER).await?, vec![v2_route.clone()]);

    // A release whose command exits at once never gets healthy.
    let quick = HealthCheck {
        interval: Duration::from_millis(200),
        attempts: 5,
        ..HealthCheck::default()
    };
    let (_, dead) = h.start_release(&v1, &["/bin/true"]).await?;
    let err = health::wait_healthy(dead.host_port, &quick)
        .await
        .expect_err("nothing listens");
    assert!(
        matches!(&err, HealthError::Unhealthy { attempts: 5, .. }),
        "{err}"
    );
    assert!(err.to_string().starts_with("GET /healthz: error:"), "{err}");
    let job_error: JobError = err.into();
    assert!(
        matches!(&job_error, JobError::Permanent { code, .. } if code == "health_check_failed")
    );
    assert!(!h.engine.is_running(&dead.name).await?);
    h.engine.remove(&dead.name).await?;

    // A release that answers its health path with 404.
    let (_, wrong) = h.start_release(&v1, &[]).await?;
    let wrong_path = HealthCheck {
        path: "/no-such-health-path".into(),
        ..quick.clone()
    };
    let err = health::wait_healthy(wrong.host_port, &wrong_path)
        .await
        .expect_err("404");
    assert!(
        err.to_string()
            .starts_with("GET /no-such-health-path: status 404"),
        "{err}"
    );
    let logs = h.engine.logs_tail(&wrong.name, 5).await?;
    println!("failed release's last log lines: {logs:?}");
    h.engine.stop(&wrong.name, Duration::from_secs(2)).await?;
    h.engine.remove(&wrong.name).await?;

    // The route never moved and v2 still answers through Caddy.
    assert_eq!(h.admin.routes(SERVER).await?, vec![v2_route]);
    let (status, page) = h.get_page(&client).await?;
    assert_eq!(status, 200);
    assert!(page.contains("VERSION 2"), "{page}");

    // New hosts replace the route in place; the old host is no longer routed.
    let www = "www.site.demo.localhost".to_string();
    let change = h
        .admin
        .set_route(
            SERVER,
            &h.route_id(),
            std::slice::from_ref(&www),
            &[upstream(&c2)],
        )
        .await?;
    assert_eq!(change, RouteChange::Replaced);
    let resp = client
        .get(format!("http://{}/", h.caddy.http_addr()))
        .header(reqwest::header::HOST, format!("{www}:80"))
        .send()
        .await?;
    assert_eq!(resp.status(), 200, "a Host with a port matches too");
    assert_eq!(h.get_page(&client).await?.0, 404);
    assert_eq!(h.admin.routes(SERVER).await?.len(), 1);

    // Removing the route leaves the catch-all.
    assert!(h.admin.remove_route(&h.route_id()).await?);
    assert!(!h.admin.remove_route(&h.route_id()).await?);
    assert_eq!(h.get_page(&client).await?.0, 404);
    h.engine.stop(&c2.name, Duration::from_secs(5)).await?;
    h.engine.remove(&c2.name).await?;
    assert!(h
        .engine
        .list(LABEL_APP, &h.app_id.to_string())
        .await?
        .is_empty());
    Ok(())
}

#[tokio::test]
async fn pull_errors_say_whether_a_retry_can_help() -> anyhow::Result<()> {
    let settings = BuildSettings::from_env()?;
    let engine = Engine::local(settings.containers_conf.clone());
    let registry = Registry::start().await?;
    let digest = format!("sha256:{}", "0".repeat(64));

    let unknown = format!("{}/slipway/none@{digest}", registry.addr());
    let err = engine
        .pull(&unknown, false)
        .await
        .expect_err("no such image");
    assert!(
        matches!(
            err,
            EngineError::PullFailed {
                retryable: false,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        matches!(err.into_job_error(), JobError::Permanent { code, .. } if code == "image_pull_failed")
    );

    let port = slipway_testkit::free_port();
    let unreachable = format!("127.0.0.1:{port}/slipway/none@{digest}");
    let err = engine
        .pull(&unreachable, false)
        .await
        .expect_err("nothing listens");
    assert!(
        matches!(
            err,
            EngineError::PullFailed {
                retryable: true,
                ..
            }
        ),
        "{err}"
    );
    assert!(matches!(err.into_job_error(), JobError::Retryable(_)));
    Ok(())
}

#[tokio::test]
async fn a_container_that_cannot_start_names_the_reason() -> anyhow::Result<()> {
    let settings = BuildSettings::from_env()?;
    let engine = Engine::local(settings.containers_conf.clone());
    let mut spec = ContainerSpec::for_release(
        Uuid::new_v4(),
        Uuid::new_v4(),
        "localhost/slipway/no-such-image:x",
    );
    let err = engine
        .run(&spec)
        .await
        .expect_err("image missing and never pulled");
    assert_eq!(err.code(), "container_start_failed", "{err}");
    assert!(!engine.is_running(&spec.name).await?);
    // Nothing of the failed start is left behind.
    assert!(engine
        .list("io.slipway.release", &spec.labels[1].1)
        .await?
        .is_empty());
    spec.name = "bad name".into();
    assert_eq!(
        engine.run(&spec).await.expect_err("invalid").code(),
        "invalid_container_spec"
    );
    Ok(())
}

/// Runs `command` in a container of `image` on `engine` (the app port
/// 8080), its name queued for removal.
async fn run_command(
    engine: &Engine,
    cleanup: &Cleanup,
    image: &str,
    command: &[&str],
    volumes: &[(String, String)],
) -> anyhow::Result<ContainerSpec> {
    let mut spec = ContainerSpec::for_release(Uuid::new_v4(), Uuid::new_v4(), image);
    spec.command = command.iter().map(|s| s.to_string()).collect();
    spec.volumes = volumes.to_vec();
    cleanup.containers.lock().unwrap().push(spec.name.clone());
    engine.run(&spec).await?;
    Ok(spec)
}

/// Waits until the container exited; its exit code.
async fn exit_code(engine: &Engine, name: &str) -> anyhow::Result<i32> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Observation::Exited { code } = engine.observe(name).await? {
            return Ok(code);
        }
        anyhow::ensure!(Instant::now() < deadline, "{name} did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_listening_check_tells_a_serving_app_from_a_broken_one() -> anyhow::Result<()> {
    let settings = BuildSettings::from_env()?;
    let engine = Engine::local(settings.containers_conf.clone());
    let cleanup = Cleanup {
        containers_conf: settings.containers_conf.clone(),
        containers: Default::default(),
        images: Default::default(),
    };
    let image = &settings.base_images.static_site;
    // Few looks: each is a `podman inspect` and a `sh`, and another test
    // of this binary counts failed requests under load meanwhile.
    let check = ListeningCheck {
        port: 8080,
        settle: Duration::from_millis(1500),
        wait: Duration::from_secs(2),
        interval: Duration::from_millis(250),
    };
    let httpd = |addr: &'static str| ["busybox", "httpd", "-f", "-p", addr, "-h", "/etc"];
    // Start them all, then check: their waits overlap.
    let serving = run_command(&engine, &cleanup, image, &httpd("0.0.0.0:8080"), &[]).await?;
    let loopback = run_command(&engine, &cleanup, image, &httpd("127.0.0.1:8080"), &[]).await?;
    let other_port = run_command(&engine, &cleanup, image, &httpd("0.0.0.0:9000"), &[]).await?;
    let silent = run_command(&engine, &cleanup, image, &["sleep", "600"], &[]).await?;
    let exiting = run_command(&engine, &cleanup, image, &["sh", "-c", "exit 7"], &[]).await?;

    let healthy = wait_listening(&engine, &serving.name, &check).await?;
    println!(
        "listening and settled after {:?}, {} looks",
        healthy.elapsed, healthy.probes
    );

    let err = wait_listening(&engine, &loopback.name, &check)
        .await
        .expect_err("loopback only");
    let loopback_addr = "127.0.0.1:8080".parse()?;
    assert!(
        matches!(&err, ListenError::NotListening { miss: Miss::LoopbackOnly(a), .. } if *a == loopback_addr),
        "{err}"
    );
    let said = err.to_string();
    assert!(
        said.starts_with("port 8080 inside the container: nothing listening after"),
        "{said}"
    );
    assert!(
        said.contains("the app listens on 127.0.0.1:8080 only")
            && said.contains("listen on 0.0.0.0"),
        "{said}"
    );

    let err = wait_listening(&engine, &other_port.name, &check)
        .await
        .expect_err("another port");
    assert!(
        err.to_string().contains("listens on port 9000 instead"),
        "{err}"
    );

    let err = wait_listening(&engine, &silent.name, &check)
        .await
        .expect_err("never listens");
    assert!(
        matches!(
            &err,
            ListenError::NotListening {
                miss: Miss::Nothing,
                ..
            }
        ),
        "{err}"
    );

    // Listens at once, then dies 0.8 s after its start: inside the settle
    // time. Started just before its check, which sees it listening first.
    let crashing = run_command(
        &engine,
        &cleanup,
        image,
        &[
            "sh",
            "-c",
            "busybox httpd -p 0.0.0.0:8080 -h /etc; sleep 0.8; exit 3",
        ],
        &[],
    )
    .await?;
    let err = wait_listening(&engine, &crashing.name, &check)
        .await
        .expect_err("crashes within its settle time");
    assert!(matches!(&err, ListenError::Exited { code: 3, .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "port 8080 inside the container: the container exited with code 3"
    );

    // An exited container fails at once, not after the whole wait.
    let long_wait = ListeningCheck {
        wait: Duration::from_secs(600),
        ..check.clone()
    };
    let err = tokio::time::timeout(
        Duration::from_secs(60),
        wait_listening(&engine, &exiting.name, &long_wait),
    )
    .await
    .map_err(|_| anyhow::anyhow!("still waiting for a container that exited"))?
    .expect_err("exited");
    assert!(matches!(&err, ListenError::Exited { code: 7, .. }), "{err}");

    engine.remove(&serving.name).await?;
    let err = wait_listening(&engine, &serving.name, &check)
        .await
        .expect_err("removed");
    assert!(matches!(&err, ListenError::Gone { .. }), "{err}");
    Ok(())
}

/// Generated images run as 1000:1000: a volume an earlier release wrote as
/// root stays writable for them (podman's `:U`).
#[tokio::test]
async fn a_volume_written_as_root_stays_writable_for_an_unprivileged_release() -> anyhow::Result<()>
{
    let settings = BuildSettings::from_env()?;
    let engine = Engine::local(settings.containers_conf.clone());
    let cleanup = Cleanup {
        containers_conf: settings.containers_conf.clone(),
        containers: Default::default(),
        images: Default::default(),
    };
    let suffix = &Uuid::new_v4().simple().to_string()[..12];
    let volume = format!("slipway-test-{suffix}");
    let tag = format!("localhost/slipway-test/uid1000:{suffix}");
    cleanup.images.lock().unwrap().push(tag.clone());
    let dir = TempDir::new("uid1000");
    std::fs::write(
        dir.path.join("Containerfile"),
        format!(
            "FROM {}\nUSER 1000:1000\n",
            settings.base_images.static_site
        ),
    )?;
    let built = cleanup
        .podman()
        .args(["build", "--pull=never", "-t", &tag])
        .arg(&dir.path)
        .output()?;
    anyhow::ensure!(
        built.status.success(),
        "podman build: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let volumes = vec![(volume.clone(), "/data".to_owned())];
    let root_release = run_command(
        &engine,
        &cleanup,
        &settings.base_images.static_site,
        &[
            "sh",
            "-c",
            "mkdir /data/sub && echo one > /data/sub/file && id -u",
        ],
        &volumes,
    )
    .await?;
    let root_exit = exit_code(&engine, &root_release.name).await;
    let uid1000_release = match root_exit {
        Ok(0) => {
            run_command(
                &engine,
                &cleanup,
                &tag,
                &[
                    "sh",
                    "-c",
                    "id -u && echo two >> /data/sub/file && touch /data/new",
                ],
                &volumes,
            )
            .await
        }
        other => Err(anyhow::anyhow!("the root release exited with {other:?}")),
    };
    let outcome = async {
        let release = uid1000_release?;
        let code = exit_code(&engine, &release.name).await?;
        let said = engine.logs_tail(&release.name, 10).await?;
        anyhow::ensure!(code == 0, "uid 1000 could not write the volume: {said:?}");
        anyhow::ensure!(said.first().map(String::as_str) == Some("1000"), "{said:?}");
        Ok(())
    }
    .await;
    let names = cleanup.containers.lock().unwrap().clone();
    for name in names {
        engine.remove(&name).await?;
    }
    engine.remove_volume(&volume).await?;
    outcome
}

/// A directory under the temp dir, removed on drop.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new(what: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "slipway-deploy-{what}-{}",
            &Uuid::new_v4().simple().to_string()[..8]
        ));
        std::fs::create_dir_all(&path).expect("temp dir");
        TempDir { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn replace_in(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from:?} in {}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

/// An sshd on a free loopback port letting root in with one key: the
/// "server" of an `ssh` target, which here is this machine again.
struct Sshd {
    child: std::process::Child,
    port: u16,
    dir: TempDir,
}

impl Sshd {
    fn start() -> anyhow::Result<Sshd> {
        use std::os::unix::process::CommandExt;
        std::fs::create_dir_all("/run/sshd")?;
        let dir = TempDir::new("sshd");
        let client = slipway_testkit::git::ssh_keygen(&dir.path, "client_key")?;
        let host = slipway_testkit::git::ssh_keygen(&dir.path, "host_key")?;
        std::fs::write(
            dir.path.join("authorized_keys"),
            format!("{}\n", client.public_key),
        )?;
        let port = slipway_testkit::free_port();
        let mut fields = host.public_key.split_whitespace();
        let (kind, key) = (fields.next().unwrap(), fields.next().unwrap());
        std::fs::write(
            dir.path.join("known_hosts"),
            format!("[127.0.0.1]:{port} {kind} {key}\n"),
        )?;
        let d = dir.path.display();
        std::fs::write(
            dir.path.join("sshd_config"),
            format!(
                "ListenAddress 127.0.0.1:{port}\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
                 PidFile none\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\nAllowUsers root\nStrictModes no\n"
            ),
        )?;
        let log = std::fs::File::create(dir.path.join("sshd.log"))?;
        let child = std::process::Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(dir.path.join("sshd_config"))
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()?;
        let sshd = Sshd { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            anyhow::ensure!(Instant::now() < deadline, "sshd did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(sshd)
    }

    fn host(&self) -> slipway_worker_deploy::engine::SshHost {
        slipway_worker_deploy::engine::SshHost {
            destination: "root@127.0.0.1".into(),
            port: self.port,
            identity_file: self.dir.path.join("client_key"),
            known_hosts_file: self.dir.path.join("known_hosts"),
            control_path: None,
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn the_engine_runs_the_same_commands_over_ssh() -> anyhow::Result<()> {
    let settings = BuildSettings::from_env()?;
    let sshd = Sshd::start()?;
    let engine = Engine::ssh(
        sshd.host(),
        EngineKind::Podman,
        settings.containers_conf.clone(),
    );
    let cleanup = Cleanup {
        containers_conf: settings.containers_conf.clone(),
        containers: Default::default(),
        images: Default::default(),
    };
    let app_id = Uuid::new_v4();
    let mut spec =
        ContainerSpec::for_release(app_id, Uuid::new_v4(), &settings.base_images.static_site);
    spec.command = ["busybox", "httpd", "-f", "-p", "8080", "-h", "/etc"]
        .map(String::from)
        .to_vec();
    let secret = format!("s3cr'et {}", Uuid::new_v4());
    spec.env.push(("APP_SECRET".into(), secret.clone()));
    cleanup.containers.lock().unwrap().push(spec.name.clone());
    let running = engine.run(&spec).await?;
    println!("over ssh: start {:.3} s", running.start_time.as_secs_f64());
    let check = HealthCheck {
        path: "/hostname".into(),
        ..HealthCheck::default()
    };
    health::wait_healthy(running.host_port, &check).await?;
    // The listening check reads the container's /proc over SSH too.
    let listening = ListeningCheck {
        port: 8080,
        settle: Duration::from_millis(200),
        wait: Duration::from_secs(10),
        interval: Duration::from_millis(100),
    };
    wait_listening(&engine, &spec.name, &listening).await?;
    assert!(engine.is_running(&spec.name).await?);
    let listed = engine.list(LABEL_APP, &app_id.to_string()).await?;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].host_port, Some(running.host_port));
    // The value arrived intact, quotes and spaces included.
    let env = cleanup
        .podman()
        .args([
            "inspect",
            "--format",
            "{{range .Config.Env}}{{println .}}{{end}}",
            &spec.name,
        ])
        .output()?;
    let env = String::from_utf8_lossy(&env.stdout);
    assert!(
        env.lines().any(|l| l == format!("APP_SECRET={secret}")),
        "{env}"
    );
    engine.logs_tail(&spec.name, 10).await?;
    engine.stop(&spec.name, Duration::from_secs(2)).await?;
    assert!(!engine.is_running(&spec.name).await?);
    engine.remove(&spec.name).await?;
    assert!(engine
        .list(LABEL_APP, &app_id.to_string())
        .await?
        .is_empty());

    // A server that does not answer is worth another attempt.
    let mut gone = sshd.host();
    gone.port = slipway_testkit::free_port();
    let err = Engine::ssh(gone, EngineKind::Podman, None)
        .is_running("x")
        .await
        .expect_err("nobody listens");
    assert_eq!(err.code(), "host_unreachable", "{err}");
    assert!(err.is_retryable());
    Ok(())
}
