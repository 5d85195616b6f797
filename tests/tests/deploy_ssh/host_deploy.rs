//! A deploy to a server Slipway set up itself, end to end: a fresh test
//! host with its own root (`slipway_testkit::host`) set up by the
//! `target_setup` job, then the static site built here, pushed through the
//! registry forward and started by the deploy user's rootless podman on
//! the host, served by the host's own Caddy at the host's address; a
//! second deploy switching with no failed request; destroyed with nothing
//! left of it on the host. Prints how long setup and the first deploy took.

use super::common::{example, ssh, Fleet, GitApp, Options};
use super::log_text;
use super::setup::{add_target, setup};
use anyhow::Context;
use reqwest::Method;
use serde_json::json;
use slipway_testkit::caddy::Caddy;
use slipway_testkit::host::{HostOptions, TestHost, APT_SOURCE};
use slipway_testkit::registry::Registry;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const HOST: &str = "site.p.localhost";

/// `GET /` of the app at the host's address (its port 80, published on
/// this machine's loopback), through the host's Caddy.
async fn page(client: &reqwest::Client, host: &TestHost) -> anyhow::Result<(u16, String)> {
    let answer = client
        .get(format!("http://{}/", host.http_addr))
        .header("host", HOST)
        .timeout(Duration::from_secs(10))
        .send()
        .await?;
    Ok((answer.status().as_u16(), answer.text().await?))
}

/// The deploy user's containers on the host (all, or running only).
async fn containers(host: &TestHost, all: bool) -> anyhow::Result<Vec<String>> {
    let flag = if all { "-a " } else { "" };
    let out = host
        .ssh_as(
            "slipway",
            &format!("podman ps {flag}--format '{{{{.Names}}}}'"),
        )
        .await?;
    Ok(out.split_whitespace().map(str::to_owned).collect())
}

/// Requests `GET /` until `stop`, counting them and keeping the failures.
struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    failed: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    fn start(addr: String) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(Mutex::new(Vec::new()));
        let (s, n, f) = (stop.clone(), sent.clone(), failed.clone());
        let task = tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client");
            while !s.load(Ordering::Relaxed) {
                let answer = client
                    .get(format!("http://{addr}/"))
                    .header("host", HOST)
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await;
                n.fetch_add(1, Ordering::Relaxed);
                let failure = match answer {
                    Ok(r) if r.status() == 200 => None,
                    Ok(r) => Some(format!("status {}", r.status())),
                    Err(e) => Some(format!("{e:?}")),
                };
                if let Some(failure) = failure {
                    f.lock().expect("lock").push(failure);
                }
            }
        });
        Load {
            stop,
            sent,
            failed,
            task,
        }
    }

    /// Stops; how many requests were sent and the failures.
    async fn finish(self) -> anyhow::Result<(usize, Vec<String>)> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await?;
        let failed = self.failed.lock().expect("lock").clone();
        Ok((self.sent.load(Ordering::Relaxed), failed))
    }
}

#[tokio::test]
async fn an_app_is_deployed_to_a_server_slipway_set_up() -> anyhow::Result<()> {
    let host = TestHost::boot(HostOptions::default()).await?;
    eprintln!("test host booted in {:?}", host.boot_time);
    let registry = Registry::start().await?;
    // The local target's Caddy: nothing of this app may land there.
    let local_caddy = Caddy::start().await?;
    let dirs = tempfile::tempdir()?;
    let mut env = vec![
        ("SLIPWAY_REGISTRY", registry.addr().to_string()),
        ("SLIPWAY_BUILD_DIR", dirs.path().display().to_string()),
        ("SLIPWAY_BASE_DOMAIN", "localhost".to_string()),
        ("SLIPWAY_SECRET_KEY", "ab".repeat(32)),
        ("SLIPWAY_CADDY_ADMIN", local_caddy.admin_url()),
        (
            "SLIPWAY_CADDY_HTTP_ADDR",
            local_caddy.http_addr().to_owned(),
        ),
        ("SLIPWAY_CADDY_SERVER", "apps".to_owned()),
        ("SLIPWAY_CADDY_HTTPS_ADDR", "off".to_owned()),
    ];
    if let Ok(conf) = std::env::var("CONTAINERS_CONF") {
        env.push(("CONTAINERS_CONF", conf));
    }
    let fleet = Fleet::start(Options {
        env,
        ..Options::default()
    })
    .await?;
    add_target(&fleet, &host, "vm").await?;
    let started = Instant::now();
    let set_up = setup(&fleet, "vm", json!({"apt_source": APT_SOURCE})).await?;
    let setup_time = started.elapsed();
    assert_eq!(set_up["state"], "live", "{set_up:#}\n{}", fleet.logs());
    eprintln!("setup of a fresh test host took {setup_time:?}");

    // The first deploy: built here, pulled there through the forward,
    // started by the deploy user's podman, routed by the host's Caddy.
    let site = GitApp::create(
        &fleet,
        "site",
        &example("static-site"),
        json!({"target": "vm", "runtime": {"health_path": "/healthz"}}),
    )
    .await?;
    let started = Instant::now();
    let first = ssh::deploy(&fleet, "site").await?;
    let deploy_time = started.elapsed();
    assert_eq!(first["state"], "live", "{first:#}\n{}", fleet.logs());
    eprintln!("first deploy to the test host took {deploy_time:?} (build included)");
    let logs = log_text(&fleet, &first).await?;
    assert!(logs.contains("healthy:"), "{logs}");
    let client = reqwest::Client::builder().no_proxy().build()?;
    let (status, text) = page(&client, &host).await?;
    assert_eq!(
        (status, text.contains("static-site")),
        (200, true),
        "{text}"
    );
    let running = containers(&host, false).await?;
    assert_eq!(running.len(), 1, "{running:?}");
    assert!(
        super::common::app_containers(&site.id, true).is_empty(),
        "nothing of the app in this machine's podman"
    );
    let local = super::common::through_caddy(&local_caddy, HOST).await;
    assert!(
        !matches!(local, Ok((200, _))),
        "the app is not served by the local Caddy: {local:?}"
    );

    // A second release takes over while requests keep flowing.
    site.repo
        .push_change("main", "index.html", "<h1>second release</h1>\n")?;
    let load = Load::start(host.http_addr.clone());
    let second = ssh::deploy(&fleet, "site").await?;
    let (sent, failed) = load.finish().await?;
    assert_eq!(second["state"], "live", "{second:#}\n{}", fleet.logs());
    assert!(sent > 0);
    eprintln!(
        "redeploy: {} failed of {sent} requests during the switch",
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "{} of {sent} requests failed during the redeploy: {failed:?}\n{}",
        failed.len(),
        log_text(&fleet, &second).await?
    );
    let (status, text) = page(&client, &host).await?;
    assert_eq!(
        (status, text.contains("second release")),
        (200, true),
        "{text}"
    );
    let now = containers(&host, true).await?;
    assert_eq!(now.len(), 1, "the old release was removed: {now:?}");
    assert_ne!(now, running);

    // Destroyed: no container, no route.
    let (status, answer) = fleet
        .call(Method::DELETE, "/v1/apps/site?purge=true", None)
        .await?;
    assert_eq!(status, 202, "{answer}");
    let id = answer["id"].as_str().context("id")?.parse()?;
    let destroy = fleet
        .wait_state(id, super::common::TERMINAL, ssh::TIMEOUT)
        .await?;
    assert_eq!(destroy["state"], "live", "{destroy:#}\n{}", fleet.logs());
    assert!(containers(&host, true).await?.is_empty());
    // With its last route gone the host's Caddy may close port 80 too.
    let after = page(&client, &host).await;
    assert!(
        !matches!(after, Ok((200, _))),
        "the route is gone: {after:?}"
    );
    fleet.stop().await;
    Ok(())
}
