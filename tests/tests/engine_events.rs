//! The deploy worker driven by the local engine's events, against real
//! podman, a test-owned Caddy and the real worker processes (the
//! reconciler's pass is turned off here, so only events can repair):
//! - a killed app container is back and serving, with no new deployment,
//!   and the health monitor sees it listening (through the API and /proc);
//!   a container stopped by Slipway (`stop`) is not started again; a death
//!   while the app's lock is held is repaired once it is free;
//! - runtime logs are followed across a deploy worker's SIGKILL and a new
//!   worker: every line stored exactly once, in order;
//! - a container that keeps crashing is started again with growing pauses
//!   and the app's health says `crashing` with its last lines.

mod common;

use anyhow::Context;
use common::{Fleet, GitApp, Options};
use reqwest::Method;
use serde_json::{json, Value};
use slipway_testkit::caddy::Caddy;
use slipway_testkit::registry::Registry;
use std::time::{Duration, Instant};

const DEPLOY_TIMEOUT: Duration = Duration::from_secs(300);
/// How many numbered lines the app prints (20 a second) after it starts.
const TICKS: u32 = 400;

const DOCKERFILE: &str = "FROM localhost/slipway/debian:bookworm\n\
    COPY server.pl /srv/server.pl\n\
    ENV PORT=8080\n\
    CMD [\"perl\", \"/srv/server.pl\"]\n";
/// Serves 200 on PORT; a child prints `tick N` for N in 1..=TICKS, 50 ms
/// apart (once per container: a restart does not print them again);
/// `GET /crash` makes the container exit with 3 and every later start of
/// it exit at once (a crash loop).
const SERVER: &str = r#"use strict; use IO::Socket::INET; $| = 1;
if (-e "/tmp/crashloop") { print "crashing now\n"; sleep 1; exit 3; }
my $s = IO::Socket::INET->new(LocalAddr => '0.0.0.0', LocalPort => $ENV{PORT} || 8080,
    Listen => 64, ReuseAddr => 1, Proto => 'tcp') or die "listen: $!";
if (!-e "/tmp/ticked" && fork() == 0) {
    open(my $f, '>', '/tmp/ticked'); close $f;
    for my $n (1 .. TICKS) { print "tick $n\n"; select(undef, undef, undef, 0.05); }
    exit 0;
}
while (my $c = $s->accept) {
    my $line = <$c> // ''; while (my $h = <$c>) { last if $h =~ /^\r?\n$/; }
    my (undef, $path) = split / /, $line;
    if (defined $path && $path eq '/crash') {
        open(my $f, '>', '/tmp/crashloop'); close $f;
        print "crash requested\n"; exit 3;
    }
    print $c "HTTP/1.0 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";
    close $c;
}
"#;

fn podman(args: &[&str]) -> anyhow::Result<String> {
    let out = std::process::Command::new("podman").args(args).output()?;
    anyhow::ensure!(
        out.status.success(),
        "podman {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

struct Setup {
    fleet: Fleet,
    caddy: Caddy,
    app: GitApp,
    _registry: Registry,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
    _containers: common::AppContainers,
}

async fn setup() -> anyhow::Result<Setup> {
    setup_with("off").await
}

/// [`setup`] with the health monitor every `monitor`.
async fn setup_with(monitor: &str) -> anyhow::Result<Setup> {
    let registry = Registry::start().await?;
    let caddy = Caddy::start().await?;
    let builds = tempfile::tempdir()?;
    let mut env = vec![
        ("SLIPWAY_REGISTRY", registry.addr().to_string()),
        ("SLIPWAY_BUILD_DIR", builds.path().display().to_string()),
        ("SLIPWAY_CADDY_ADMIN", caddy.admin_url()),
        ("SLIPWAY_CADDY_HTTP_ADDR", caddy.http_addr().to_string()),
        ("SLIPWAY_CADDY_HTTPS_ADDR", "off".to_string()),
        ("SLIPWAY_CADDY_SERVER", "apps".to_string()),
        ("SLIPWAY_BASE_DOMAIN", "localhost".to_string()),
        ("SLIPWAY_SECRET_KEY", "ab".repeat(32)),
        // Only the engine's events repair here.
        ("SLIPWAY_RECONCILE_INTERVAL", "off".to_string()),
        ("SLIPWAY_HEALTH_MONITOR_INTERVAL", monitor.to_string()),
    ];
    if let Ok(conf) = std::env::var("CONTAINERS_CONF") {
        env.push(("CONTAINERS_CONF", conf));
    }
    let fleet = Fleet::start(Options {
        env,
        deploy_workers: 1,
        ..Options::default()
    })
    .await?;
    let source = tempfile::tempdir()?;
    std::fs::write(source.path().join("Dockerfile"), DOCKERFILE)?;
    std::fs::write(
        source.path().join("server.pl"),
        SERVER.replace("TICKS", &TICKS.to_string()),
    )?;
    let app = GitApp::create(&fleet, "ev", source.path(), json!({})).await?;
    let (status, answer) = fleet
        .call(Method::POST, "/v1/apps/ev/deployments", Some(json!({})))
        .await?;
    anyhow::ensure!(status == 202, "deploy: {status} {answer}");
    let id = answer["id"].as_str().context("id")?.parse()?;
    let done = fleet
        .wait_state(id, common::TERMINAL, DEPLOY_TIMEOUT)
        .await?;
    anyhow::ensure!(
        done["state"] == "live",
        "deploy ended {done:#}\n{}",
        fleet.logs()
    );
    Ok(Setup {
        _containers: common::AppContainers(app.id.clone()),
        fleet,
        caddy,
        app,
        _registry: registry,
        _dirs: (builds, source),
    })
}

impl Setup {
    async fn page(&self) -> anyhow::Result<(u16, String)> {
        common::through_caddy(&self.caddy, "ev.p.localhost").await
    }

    /// Until the app answers 200 through Caddy again, at most `limit`
    /// after `from`; `what` names the death in the failure.
    async fn wait_serving(&self, from: Instant, limit: Duration, what: &str) -> anyhow::Result<()> {
        while !matches!(self.page().await, Ok((200, _))) {
            anyhow::ensure!(
                from.elapsed() < limit,
                "{what}: not repaired within {limit:?}\n{}",
                self.fleet.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    fn container(&self) -> anyhow::Result<String> {
        let name: String = podman(&[
            "ps",
            "-a",
            "--filter",
            &format!("label=io.slipway.app={}", self.app.id),
            "--format",
            "{{.Names}}",
        ])?;
        name.lines()
            .next()
            .map(str::to_owned)
            .context("no app container")
    }

    /// Every runtime log line of the app stored so far.
    async fn lines(&self) -> anyhow::Result<Vec<String>> {
        let mut after = 0;
        let mut all = Vec::new();
        loop {
            let (status, body) = self
                .fleet
                .call(
                    Method::GET,
                    &format!("/v1/apps/ev/logs?after={after}&limit=10000"),
                    None,
                )
                .await?;
            anyhow::ensure!(status == 200, "logs: {status} {body}");
            let lines = body["lines"].as_array().context("lines")?;
            if lines.is_empty() {
                return Ok(all);
            }
            all.extend(
                lines
                    .iter()
                    .filter_map(|l| l["line"].as_str().map(str::to_owned)),
            );
            after = body["next"].as_i64().context("next")?;
        }
    }

    async fn health(&self) -> anyhow::Result<Value> {
        let (_, app) = self.fleet.call(Method::GET, "/v1/apps/ev", None).await?;
        Ok(app["status"]["health"].clone())
    }
}

fn ticks(lines: &[String]) -> Vec<u32> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("tick ")?.parse().ok())
        .collect()
}

#[tokio::test]
async fn a_killed_container_is_repaired_by_its_death_event_and_a_stopped_one_stays_stopped(
) -> anyhow::Result<()> {
    // The monitor runs here: it looks into the container through the
    // engine's API and reads /proc in-process (the app has no health path).
    let s = setup_with("500ms").await?;
    let name = s.container()?;
    let deployments = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM deployments WHERE app_id = $1::uuid")
            .bind(&s.app.id)
            .fetch_one(&s.fleet.db.pool)
            .await
    };
    let before = deployments().await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let health = s.health().await?;
        let detail = health["detail"].as_str().unwrap_or_default().to_owned();
        if detail.starts_with("port 8080 listening inside the container on 1 replica") {
            assert_eq!(health["ok"], true, "{health}");
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the monitor does not see the app listening: {health}\n{}",
            s.fleet.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A death while the app's lock is held (a reconciler pass whose look
    // came just before it, or a deploy that has just begun) is repaired as
    // soon as the lock is free, not left to the next pass (there is none
    // here): the repair waits for the lock longer than the 2 s it once
    // did. This death comes first, so no crash-loop backoff (from the
    // third death on) adds to the wait.
    let keys = slipway_worker_deploy::lock::app_key(s.app.id.parse()?);
    let held = slipway_worker_deploy::lock::lock(&s.fleet.db.pool, keys).await?;
    podman(&["kill", &name])?;
    let killed = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let while_held = s.page().await.map(|(status, _)| status).unwrap_or(0);
    held.release().await;
    let released = Instant::now();
    s.wait_serving(
        released,
        Duration::from_secs(20),
        "a death under a held lock, once it is free",
    )
    .await?;
    assert_ne!(while_held, 200, "repaired while the app's lock was held");
    eprintln!(
        "under a held lock: repaired {:?} after the kill, {:?} after the lock was free",
        killed.elapsed(),
        released.elapsed()
    );
    for round in 0..3 {
        podman(&["kill", &name])?;
        let killed = Instant::now();
        s.wait_serving(killed, Duration::from_secs(30), &format!("round {round}"))
            .await?;
        eprintln!("round {round}: repaired in {:?}", killed.elapsed());
    }
    assert_eq!(deployments().await?, before, "a repair makes no deployment");
    // Stopped by Slipway: not "repaired".
    let (status, body) = s
        .fleet
        .call(Method::POST, "/v1/apps/ev/stop", Some(json!({})))
        .await?;
    anyhow::ensure!(status == 202, "stop: {status} {body}");
    let stop = body["id"].as_str().context("id")?.parse()?;
    let stopped = s
        .fleet
        .wait_state(stop, common::TERMINAL, DEPLOY_TIMEOUT)
        .await?;
    assert_eq!(stopped["state"], "live", "{stopped:#}");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        common::app_containers(&s.app.id, false).is_empty(),
        "the stopped app's container runs again"
    );
    Ok(())
}

#[tokio::test]
async fn logs_are_followed_across_a_deploy_worker_sigkill_without_loss_or_repeats(
) -> anyhow::Result<()> {
    let mut s = setup().await?;
    // Some lines are stored, then the worker dies mid-stream.
    let started = Instant::now();
    while ticks(&s.lines().await?).len() < 40 {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(60),
            "no lines\n{}",
            s.fleet.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first = s
        .fleet
        .workers
        .iter()
        .find(|w| w.stage == "deploy")
        .context("deploy worker")?
        .id
        .clone();
    s.fleet.worker(&first).proc.sigkill()?;
    let _ = s
        .fleet
        .worker(&first)
        .proc
        .wait_exit(Duration::from_secs(10))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    s.fleet.spawn_worker("deploy")?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let got = ticks(&s.lines().await?);
        if got.len() >= TICKS as usize {
            // Exactly once each, in order; nothing more comes.
            tokio::time::sleep(Duration::from_secs(3)).await;
            let got = ticks(&s.lines().await?);
            let expected: Vec<u32> = (1..=TICKS).collect();
            assert_eq!(got, expected, "lines lost, repeated or out of order");
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{} of {TICKS} lines after the restart\n{}",
            got.len(),
            s.fleet.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_crash_loop_backs_off_and_the_health_says_crashing() -> anyhow::Result<()> {
    let s = setup().await?;
    let name = s.container()?;
    let _ = s.page().await;
    let _ = reqwest::Client::new()
        .get(format!("http://{}/crash", s.caddy.http_addr()))
        .header("host", "ev.p.localhost")
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    let crashed = Instant::now();
    let health = loop {
        let health = s.health().await?;
        if health["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("crashing:"))
        {
            break health;
        }
        anyhow::ensure!(
            crashed.elapsed() < Duration::from_secs(60),
            "health never says crashing: {health}\n{}",
            s.fleet.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(health["ok"], false);
    assert!(
        health["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("crashing now"),
        "the last lines are shown: {health}"
    );
    // Starts 0 s, 0 s, 1 s, 2 s, 4 s, 8 s apart: within 20 s of the first
    // crash about seven starts, where an unpaced loop makes many more.
    tokio::time::sleep(Duration::from_secs(20).saturating_sub(crashed.elapsed())).await;
    let logs = podman(&["logs", &name])?;
    let starts = logs.lines().filter(|l| l.contains("crashing now")).count();
    assert!((3..=8).contains(&starts), "{starts} starts in 20 s\n{logs}");
    Ok(())
}
