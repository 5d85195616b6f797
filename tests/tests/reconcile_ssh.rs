//! The deploy worker's background tasks on an `ssh` target (a network
//! namespace of the test's own with its sshd and Caddy, see
//! `common::ssh`), through the real fleet: after the app's container on the
//! target is killed, or removed, and after the target's Caddy restarts
//! without its config, the reconciler brings the page back through the
//! target's Caddy without a new deployment; the health monitor checks the
//! release on the target (the app's `status.health`), the log followers
//! copy what it printed there (`GET /v1/apps/{app}/logs`); a stopped app's
//! 503 route comes back after a Caddy restart too; and a target that
//! cannot be reached is counted as a failure, then repaired once it
//! answers again. On a podman and a Docker server, the reconciler's pass
//! off, the deploy worker's persistent SSH session carries the engine's
//! events (a killed container is back) and the followed logs (no line lost
//! or doubled across the session's ssh killed and the worker's SIGKILL).

mod common;

use anyhow::Context;
use common::ssh::{self, Leftovers, SshServer};
use common::{Fleet, GitApp};
use reqwest::Method;
use serde_json::{json, Value};
use slipway_testkit::registry::Registry;
use std::time::{Duration, Instant};

/// Generous: a repair takes a pass (1 s apart here), SSH connections and
/// podman commands over SSH.
const REPAIR_TIMEOUT: Duration = Duration::from_secs(120);
const HOST: &str = "site.p.localhost";

fn podman(args: &[&str]) -> anyhow::Result<String> {
    let out = std::process::Command::new("podman").args(args).output()?;
    anyhow::ensure!(
        out.status.success(),
        "podman {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Runs podman on the target (inside its network namespace), as someone
/// on that server would: a container removed from this host's network
/// namespace would leave its port rules behind in the target's.
fn podman_on(server: &SshServer, args: &[&str]) -> anyhow::Result<String> {
    let out = server.ns.command("podman").args(args).output()?;
    anyhow::ensure!(
        out.status.success(),
        "podman {args:?} on the target: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Whether container `name` runs (the target's podman shares this host's
/// container storage).
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

/// Waits until the target's Caddy answers `status` for the app with a page
/// containing `text`; returns how long that took.
async fn wait_page(
    fleet: &Fleet,
    server: &SshServer,
    status: u16,
    text: &str,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let last = server.page(HOST).await;
        if matches!(&last, Ok((s, page)) if *s == status && page.contains(text)) {
            return Ok(started.elapsed());
        }
        anyhow::ensure!(
            started.elapsed() < REPAIR_TIMEOUT,
            "the target's Caddy does not answer {status} {text:?}: {last:?}\n{}\n--- caddy\n{}",
            fleet.logs(),
            server.ns.log_tail("caddy", 20)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn app(fleet: &Fleet) -> anyhow::Result<Value> {
    let (status, app) = fleet.call(Method::GET, "/v1/apps/site", None).await?;
    anyhow::ensure!(status == 200, "{status} {app}");
    Ok(app)
}

#[tokio::test]
async fn an_app_on_an_ssh_target_is_repaired_monitored_and_its_logs_collected() -> anyhow::Result<()>
{
    let mut server = SshServer::start()?;
    let registry = Registry::start().await?;
    let builds = tempfile::tempdir()?;
    let fleet = Fleet::start(server.fleet_options(
        &registry,
        builds.path(),
        &[
            ("SLIPWAY_RECONCILE_INTERVAL", "1s"),
            ("SLIPWAY_HEALTH_MONITOR_INTERVAL", "1s"),
            ("SLIPWAY_RUNTIME_LOG_INTERVAL", "1s"),
        ],
    ))
    .await?;
    server.add_target(&fleet, "ns").await?;
    let site = GitApp::create(
        &fleet,
        "site",
        &common::example("static-site"),
        json!({"target": "ns"}),
    )
    .await?;
    let app_id = site.id.clone();
    let mut leftovers = Leftovers {
        app_id: app_id.clone(),
        tags: Vec::new(),
    };
    let deployed = ssh::deploy(&fleet, "site").await?;
    leftovers.built(&registry, "site", &deployed);
    assert_eq!(deployed["state"], "live", "{deployed:#}\n{}", fleet.logs());
    wait_page(&fleet, &server, 200, "VERSION 1").await?;
    let (name, release): (String, uuid::Uuid) = sqlx::query_as(
        "SELECT container_name, id FROM releases WHERE app_id = $1::uuid AND state = 'live'",
    )
    .bind(&app_id)
    .fetch_one(&fleet.db.pool)
    .await?;

    // The app's process dies on the target: its container is started again.
    podman_on(&server, &["kill", &name])?;
    let took = wait_page(&fleet, &server, 200, "VERSION 1").await?;
    assert!(running(&name), "{name} runs again");
    fleet
        .wait_repairs("container_started", 1, REPAIR_TIMEOUT)
        .await?;
    // Counted under the target's kind, not its id.
    let on = |target: &str| {
        format!(r#"slipway_reconcile_repairs_total{{kind="container_started",target="{target}"}}"#)
    };
    assert!(fleet.metric("deploy", &on("ssh")).await? >= 1);
    assert_eq!(fleet.metric("deploy", &on("local")).await?, 0);
    println!("ssh target: killed container serving again after {took:.2?}");

    // The pass that started it checks its health through a forward before
    // it ends; removed meanwhile, that pass would fail (and the next one
    // re-create it), which is not what the next step is about.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The container is removed: it is re-created from the release's image,
    // pulled by the target through the pass's registry forward.
    let old_id = podman(&["container", "inspect", "--format", "{{.Id}}", &name])?;
    podman_on(&server, &["rm", "-f", "-t", "0", &name])?;
    let took = wait_page(&fleet, &server, 200, "VERSION 1").await?;
    let new_id = podman(&["container", "inspect", "--format", "{{.Id}}", &name])?;
    assert_ne!(old_id, new_id, "a new container under the release's name");
    fleet
        .wait_repairs("container_recreated", 1, REPAIR_TIMEOUT)
        .await?;
    println!("ssh target: removed container serving again after {took:.2?}");

    // The target's Caddy restarts with an empty config: the apps' server
    // and the app's route come back on it.
    server.ns.restart_caddy()?;
    let took = wait_page(&fleet, &server, 200, "VERSION 1").await?;
    fleet
        .wait_repairs("caddy_server_restored", 1, REPAIR_TIMEOUT)
        .await?;
    fleet
        .wait_repairs("route_restored", 1, REPAIR_TIMEOUT)
        .await?;
    println!("ssh target: page back through the restarted Caddy after {took:.2?}");

    // The monitor checks the release on the target (the deploy's own
    // check said "after N tries"; the monitor's says "on N replica(s)").
    let deadline = Instant::now() + REPAIR_TIMEOUT;
    let first = loop {
        let health = app(&fleet).await?["status"]["health"].clone();
        if health["detail"]
            .as_str()
            .is_some_and(|d| d.contains("replica(s)"))
        {
            assert_eq!(health["ok"], true, "{health:#}");
            break health;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the monitor did not check the ssh app: {health:#}\n{}",
            fleet.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let deadline = Instant::now() + REPAIR_TIMEOUT;
    loop {
        let health = app(&fleet).await?["status"]["health"].clone();
        if health["checked_at"] != first["checked_at"] {
            assert_eq!(health["ok"], true, "{health:#}");
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "no second check: {health:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The runtime logs: busybox httpd's request lines on the target (the
    // monitor's checks and the test's pages), collected over SSH.
    let deadline = Instant::now() + REPAIR_TIMEOUT;
    let logs = loop {
        let (status, logs) = fleet.call(Method::GET, "/v1/apps/site/logs", None).await?;
        assert_eq!(status, 200, "{logs}");
        if logs["lines"].to_string().contains("response:200") {
            break logs;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no request lines in the ssh app's runtime logs: {logs}\n{}",
            fleet.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let lines = logs["lines"].as_array().context("lines")?;
    assert!(
        lines.iter().any(|l| l["container"] == json!(name)),
        "{logs}"
    );
    let seqs: Vec<i64> = lines.iter().filter_map(|l| l["seq"].as_i64()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");

    // The target cannot be reached: each pass is counted as a failure, and
    // once it answers again a removed container is re-created there.
    let failures = fleet
        .metric("deploy", "slipway_reconcile_failures_total")
        .await?;
    server.ns.set_link_up(false)?;
    podman_on(&server, &["rm", "-f", "-t", "0", &name])?;
    let started = Instant::now();
    while fleet
        .metric("deploy", "slipway_reconcile_failures_total")
        .await?
        <= failures
    {
        anyhow::ensure!(
            started.elapsed() < REPAIR_TIMEOUT,
            "an unreachable target is not counted\n{}",
            fleet.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!running(&name));
    // The monitor says so in the app's health. A round that began before
    // the session noticed the link is down may first record its health
    // check's own failure through the forward (a timeout); the next says
    // the target cannot be reached.
    let deadline = Instant::now() + REPAIR_TIMEOUT;
    loop {
        let health = app(&fleet).await?["status"]["health"].clone();
        let detail = health["detail"].as_str().unwrap_or_default();
        if health["ok"] == false && detail.contains("cannot reach") {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the health of an app on an unreachable target does not say so: {health:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.ns.set_link_up(true)?;
    let took = wait_page(&fleet, &server, 200, "VERSION 1").await?;
    assert!(running(&name), "{name} runs again");
    fleet
        .wait_repairs("container_recreated", 2, REPAIR_TIMEOUT)
        .await?;
    println!("ssh target: back {took:.2?} after it was reachable again");
    let deadline = Instant::now() + REPAIR_TIMEOUT;
    while app(&fleet).await?["status"]["health"]["ok"] != true {
        anyhow::ensure!(Instant::now() < deadline, "the health stays failed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A stopped app: after a Caddy restart its route answers 503 again,
    // and its container stays stopped.
    let (status, answer) = fleet
        .call(Method::POST, "/v1/apps/site/stop", Some(json!({})))
        .await?;
    anyhow::ensure!(status == 202, "stop: {status} {answer}");
    let stop = fleet
        .wait_state(
            answer["id"].as_str().context("id")?.parse()?,
            common::TERMINAL,
            ssh::TIMEOUT,
        )
        .await?;
    assert_eq!(stop["state"], "live", "{stop:#}\n{}", fleet.logs());
    wait_page(&fleet, &server, 503, "stopped").await?;
    server.ns.restart_caddy()?;
    let took = wait_page(&fleet, &server, 503, "stopped").await?;
    fleet
        .wait_repairs("route_restored", 2, REPAIR_TIMEOUT)
        .await?;
    println!("ssh target: stopped app's 503 route back after {took:.2?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!running(&name), "the stopped app's container stays stopped");

    // All of it without a new deployment: the deploy and the stop.
    let deployments: i64 =
        sqlx::query_scalar("SELECT count(*) FROM deployments WHERE app_id = $1::uuid")
            .bind(&app_id)
            .fetch_one(&fleet.db.pool)
            .await?;
    assert_eq!(deployments, 2);
    let (same, state): (uuid::Uuid, String) = sqlx::query_as(
        "SELECT id, state FROM releases WHERE app_id = $1::uuid AND state IN ('live', 'paused')",
    )
    .bind(&app_id)
    .fetch_one(&fleet.db.pool)
    .await?;
    assert_eq!((same, state.as_str()), (release, "paused"));
    fleet.stop().await;
    drop(leftovers);
    drop(server);
    Ok(())
}

/// How many numbered lines the events tests' app prints (20 a second).
const TICKS: u32 = 600;
const EV_HOST: &str = "ev.p.localhost";
const EV_DOCKERFILE: &str = "FROM localhost/slipway/debian:bookworm\n\
    COPY server.pl /srv/server.pl\n\
    ENV PORT=8080\n\
    CMD [\"perl\", \"/srv/server.pl\"]\n";
/// Serves 200 on PORT; a child prints `tick N` for N in 1..=TICKS, 50 ms
/// apart, once per container (a restart does not print them again).
const EV_SERVER: &str = r#"use strict; use IO::Socket::INET; $| = 1;
my $s = IO::Socket::INET->new(LocalAddr => '0.0.0.0', LocalPort => $ENV{PORT} || 8080,
    Listen => 64, ReuseAddr => 1, Proto => 'tcp') or die "listen: $!";
if (!-e "/tmp/ticked" && fork() == 0) {
    open(my $f, '>', '/tmp/ticked'); close $f;
    for my $n (1 .. TICKS) { print "tick $n\n"; select(undef, undef, undef, 0.05); }
    exit 0;
}
while (my $c = $s->accept) {
    my $line = <$c> // ''; while (my $h = <$c>) { last if $h =~ /^\r?\n$/; }
    print $c "HTTP/1.0 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";
    close $c;
}
"#;

/// The `tick N` numbers among the app's stored runtime log lines.
async fn ticks(fleet: &Fleet) -> anyhow::Result<Vec<u32>> {
    let (mut after, mut all) = (0, Vec::new());
    loop {
        let path = format!("/v1/apps/ev/logs?after={after}&limit=10000");
        let (status, body) = fleet.call(Method::GET, &path, None).await?;
        anyhow::ensure!(status == 200, "logs: {status} {body}");
        let lines = body["lines"].as_array().context("lines")?;
        if lines.is_empty() {
            return Ok(all);
        }
        all.extend(lines.iter().filter_map(|l| {
            l["line"]
                .as_str()?
                .strip_prefix("tick ")?
                .parse::<u32>()
                .ok()
        }));
        after = body["next"].as_i64().context("next")?;
    }
}

/// Waits until at least `n` ticks are stored.
async fn wait_ticks(fleet: &Fleet, n: usize, what: &str) -> anyhow::Result<Vec<u32>> {
    let deadline = Instant::now() + REPAIR_TIMEOUT;
    loop {
        let got = ticks(fleet).await?;
        if got.len() >= n {
            return Ok(got);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{what}: {} of {n} lines\n{}",
            got.len(),
            fleet.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The pids of the deploy workers' persistent SSH sessions to `addr` (the
/// ssh processes whose remote command carries the sessions' mark).
fn session_pids(addr: &str) -> Vec<u32> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .filter_map(|p| {
            let p = p.ok()?;
            let pid: u32 = p.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(p.path().join("cmdline")).ok()?;
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let ssh = args.iter().any(|a| a == "ssh" || a.ends_with("/ssh"));
            let ours = args.iter().any(|a| a.contains("slipway-engine-session"))
                && args.iter().any(|a| a == &format!("root@{addr}"));
            (ssh && ours).then_some(pid)
        })
        .collect()
}

/// Waits for a session other than `not` to `addr`; returns its pid.
async fn wait_session(fleet: &Fleet, addr: &str, not: Option<u32>) -> anyhow::Result<u32> {
    let deadline = Instant::now() + REPAIR_TIMEOUT;
    loop {
        if let Some(pid) = session_pids(addr).into_iter().find(|p| Some(*p) != not) {
            return Ok(pid);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no SSH session to {addr}\n{}",
            fleet.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An ssh target (podman or Docker) driven by its engine's events through
/// the deploy worker's persistent SSH session, the reconciler's pass off:
/// the app's logs are followed through the session, across the session's
/// ssh being killed (it comes back and follows on) and the deploy worker's
/// SIGKILL, every line stored once and in order; a killed app container is
/// started again by its death event, with no new deployment.
async fn events_through_the_session(server: SshServer) -> anyhow::Result<()> {
    let registry = Registry::start().await?;
    let builds = tempfile::tempdir()?;
    let mut fleet = Fleet::start(server.fleet_options(
        &registry,
        builds.path(),
        &[
            // Only the engine's events repair here.
            ("SLIPWAY_RECONCILE_INTERVAL", "off"),
            ("SLIPWAY_HEALTH_MONITOR_INTERVAL", "off"),
        ],
    ))
    .await?;
    server.add_target(&fleet, "ns").await?;
    let source = tempfile::tempdir()?;
    std::fs::write(source.path().join("Dockerfile"), EV_DOCKERFILE)?;
    let script = EV_SERVER.replace("TICKS", &TICKS.to_string());
    std::fs::write(source.path().join("server.pl"), script)?;
    let app = GitApp::create(&fleet, "ev", source.path(), json!({"target": "ns"})).await?;
    let mut leftovers = Leftovers {
        app_id: app.id.clone(),
        tags: Vec::new(),
    };
    let deployed = ssh::deploy(&fleet, "ev").await?;
    leftovers.built(&registry, "ev", &deployed);
    assert_eq!(deployed["state"], "live", "{deployed:#}\n{}", fleet.logs());
    let name: String = sqlx::query_scalar(
        "SELECT container_name FROM releases WHERE app_id = $1::uuid AND state = 'live'",
    )
    .bind(&app.id)
    .fetch_one(&fleet.db.pool)
    .await?;
    let addr = server.ns.addr.to_string();

    // Followed through the session; its ssh is killed: it comes back and
    // the lines go on.
    let session = wait_session(&fleet, &addr, None).await?;
    let before = wait_ticks(&fleet, 40, "followed through the session").await?;
    std::process::Command::new("kill")
        .args(["-KILL", &session.to_string()])
        .status()?;
    let again = wait_session(&fleet, &addr, Some(session)).await?;
    wait_ticks(&fleet, before.len() + 40, "after the session came back").await?;
    println!("ssh session {session} killed; {again} follows on");

    // The deploy worker dies mid-stream; the next one follows on.
    let first = fleet
        .workers
        .iter()
        .find(|w| w.stage == "deploy")
        .context("deploy worker")?
        .id
        .clone();
    fleet.worker(&first).proc.sigkill()?;
    let _ = fleet
        .worker(&first)
        .proc
        .wait_exit(Duration::from_secs(10))
        .await;
    fleet.spawn_worker("deploy")?;
    wait_ticks(&fleet, TICKS as usize, "after the worker's SIGKILL").await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let expected: Vec<u32> = (1..=TICKS).collect();
    assert_eq!(
        ticks(&fleet).await?,
        expected,
        "lines lost, repeated or out of order"
    );

    // The app's container is killed on the target: its death event starts
    // it again (the reconciler's pass is off), with no new deployment.
    let kill = |name: &str| -> anyhow::Result<()> {
        match &server.docker {
            Some(docker) => {
                let out = docker.docker(&["kill", name])?;
                anyhow::ensure!(out.status.success(), "docker kill: {out:?}");
                Ok(())
            }
            None => podman_on(&server, &["kill", name]).map(drop),
        }
    };
    for round in 0..2 {
        kill(&name)?;
        let killed = Instant::now();
        while !matches!(server.page(EV_HOST).await, Ok((200, _))) {
            anyhow::ensure!(
                killed.elapsed() < Duration::from_secs(30),
                "round {round}: the killed container is not back\n{}",
                fleet.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        println!(
            "round {round}: killed container serving again after {:.2?}",
            killed.elapsed()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let deployments: i64 =
        sqlx::query_scalar("SELECT count(*) FROM deployments WHERE app_id = $1::uuid")
            .bind(&app.id)
            .fetch_one(&fleet.db.pool)
            .await?;
    assert_eq!(deployments, 1, "a repair makes no deployment");
    let started = r#"slipway_reconcile_repairs_total{kind="container_started",target="ssh"}"#;
    assert!(fleet.metric("deploy", started).await? >= 1);
    fleet.stop().await;
    drop(leftovers);
    drop(server);
    Ok(())
}

#[tokio::test]
async fn a_podman_ssh_target_is_repaired_and_followed_through_one_session() -> anyhow::Result<()> {
    events_through_the_session(SshServer::start()?).await
}

#[tokio::test]
async fn a_docker_ssh_target_is_repaired_and_followed_through_one_session() -> anyhow::Result<()> {
    events_through_the_session(SshServer::start_docker()?).await
}
