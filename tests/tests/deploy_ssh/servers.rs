//! Servers bought through the real fleet from the provider fakes
//! (`slipway_testkit::cloud_fake`): a created server is a real test host
//! booted from the create's user data, set up over SSH and registered as a
//! target, then destroyed with nothing left at the fake (per driver); a
//! provision worker SIGKILLed after the provider accepted the create leaves
//! one server, which the re-run adopts; a create that fails at the provider
//! or times out deletes everything it made, in the provider's words; a
//! destroy during the create waits for the provider's id and leaves
//! nothing. The Hetzner run buys and destroys through the `slipway` CLI
//! (`servers create/list/show/destroy`), the OpenStack run through the API.

use super::cli_run::Cli;
use super::common::{Fleet, Options, TERMINAL};
use super::log_text;
use anyhow::Context;
use reqwest::Method;
use serde_json::{json, Value};
use slipway_testkit::caddy::Caddy;
use slipway_testkit::cloud_fake::hetzner::FakeHetzner;
use slipway_testkit::cloud_fake::hosts::{silent_addresses, FakeHosts};
use slipway_testkit::cloud_fake::openstack::FakeOpenStack;
use slipway_testkit::host::APT_SOURCE;
use slipway_testkit::registry::Registry;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

pub(super) const TOKEN: &str = "hz-test-token";
pub(super) const LONG: Duration = Duration::from_secs(400);

pub(super) fn env(extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("SLIPWAY_SECRET_KEY", "ab".repeat(32)),
        ("SLIPWAY_OUTBOUND_ALLOW", "loopback".to_owned()),
        ("SLIPWAY_CLOUD_POLL_INTERVAL", "100ms".to_owned()),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    env
}

pub(super) async fn hetzner_account(fleet: &Fleet, fake: &FakeHetzner) -> anyhow::Result<()> {
    let (status, made) = fleet
        .call(Method::POST, "/v1/cloud-accounts", Some(json!({
            "provider": "hetzner", "name": "main", "endpoint": fake.url(), "credentials": {"token": TOKEN}})))
        .await?;
    anyhow::ensure!(status == 201, "account: {status} {made}");
    Ok(())
}

/// A Hetzner fake whose created servers are test hosts, gone when deleted.
pub(super) async fn hetzner_with_hosts() -> anyhow::Result<(Arc<FakeHosts>, FakeHetzner)> {
    let hosts = FakeHosts::new();
    let fake = FakeHetzner::start_with(TOKEN, hosts.hook()).await?;
    let released = hosts.clone();
    fake.on_delete(Arc::new(move |ip| released.release(ip)));
    Ok((hosts, fake))
}

/// The same at an OpenStack fake (region GRA11).
pub(super) async fn openstack_with_hosts() -> anyhow::Result<(Arc<FakeHosts>, FakeOpenStack)> {
    let hosts = FakeHosts::new();
    let fake = FakeOpenStack::start("GRA11", Some(hosts.hook())).await?;
    let released = hosts.clone();
    fake.on_delete(Arc::new(move |ip| released.release(ip)));
    Ok((hosts, fake))
}

/// The account `ovh` at the OpenStack fake (region GRA11).
pub(super) async fn openstack_account(fleet: &Fleet, fake: &FakeOpenStack) -> anyhow::Result<()> {
    let (id, secret) = FakeOpenStack::APP_CREDENTIAL;
    let (status, made) = fleet
        .call(Method::POST, "/v1/cloud-accounts", Some(json!({
            "provider": "openstack", "name": "ovh", "endpoint": fake.auth_url(),
            "credentials": {"region": "GRA11", "application_credential_id": id, "application_credential_secret": secret}})))
        .await?;
    anyhow::ensure!(status == 201, "account: {status} {made}");
    Ok(())
}

pub(super) async fn create(
    fleet: &Fleet,
    account: &str,
    region: &str,
    size: &str,
    name: &str,
) -> anyhow::Result<Value> {
    let (status, made) = fleet
        .call(
            Method::POST,
            "/v1/servers",
            Some(json!({
            "account": account, "region": region, "size": size, "name": name})),
        )
        .await?;
    anyhow::ensure!(status == 202, "create: {status} {made}");
    Ok(made)
}

async fn server(fleet: &Fleet, id: &str) -> anyhow::Result<Value> {
    let (status, server) = fleet
        .call(Method::GET, &format!("/v1/servers/{id}"), None)
        .await?;
    anyhow::ensure!(status == 200, "server {id}: {status} {server}");
    Ok(server)
}

/// Waits until the server is in one of `states` and its operations ended.
pub(super) async fn wait_server(
    fleet: &Fleet,
    id: &str,
    states: &[&str],
    limit: Duration,
) -> anyhow::Result<Value> {
    read_until(fleet, &format!("/v1/servers/{id}"), limit, |now| {
        let ended = now["operations"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|o| TERMINAL.contains(&o["state"].as_str().unwrap_or_default()));
        states.contains(&now["state"].as_str().unwrap_or_default()) && ended
    })
    .await
}

/// Reads `path` until `done` holds for what it answers, within `limit`.
pub(super) async fn read_until(
    fleet: &Fleet,
    path: &str,
    limit: Duration,
    done: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let (status, now) = fleet.call(Method::GET, path, None).await?;
        anyhow::ensure!(status == 200, "{path}: {status} {now}");
        if done(&now) {
            return Ok(now);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{path}: not as wanted within {limit:?}\n{now:#}\n{}",
            fleet.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(super) async fn operation(
    fleet: &Fleet,
    server: &Value,
    index: usize,
) -> anyhow::Result<Value> {
    let id: Uuid = server["operations"][index]["id"]
        .as_str()
        .context("operation")?
        .parse()?;
    fleet.deployment(id).await
}

/// A fleet whose deploy worker can check an ssh target (as the setup
/// test's), with `build_workers` build workers (none when nothing builds).
pub(super) async fn full_fleet(
    extra: &[(&'static str, &str)],
    build_workers: usize,
) -> anyhow::Result<(Fleet, Registry, Caddy, tempfile::TempDir)> {
    let registry = Registry::start().await?;
    let caddy = Caddy::start().await?;
    let dirs = tempfile::tempdir()?;
    let mut env = env(extra);
    env.extend([
        ("SLIPWAY_REGISTRY", registry.addr().to_string()),
        ("SLIPWAY_BUILD_DIR", dirs.path().display().to_string()),
        ("SLIPWAY_BASE_DOMAIN", "localhost".to_string()),
        ("SLIPWAY_CADDY_ADMIN", caddy.admin_url()),
        ("SLIPWAY_CADDY_HTTP_ADDR", caddy.http_addr().to_owned()),
        ("SLIPWAY_CADDY_SERVER", "apps".to_owned()),
        ("SLIPWAY_CADDY_HTTPS_ADDR", "off".to_owned()),
        ("SLIPWAY_SERVER_APT_SOURCE", APT_SOURCE.to_owned()),
    ]);
    if let Ok(conf) = std::env::var("CONTAINERS_CONF") {
        env.push(("CONTAINERS_CONF", conf));
    }
    let fleet = Fleet::start(Options {
        build_workers,
        env,
        ..Options::default()
    })
    .await?;
    Ok((fleet, registry, caddy, dirs))
}

/// Create → ready (a real host, set up, a target) → destroy → nothing left.
async fn create_and_destroy(
    fleet: &Fleet,
    hosts: &FakeHosts,
    account: &str,
    region: &str,
    size: &str,
    holdings: impl Fn() -> (usize, usize, usize),
    cli: Option<&Cli>,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let id = match cli {
        // Followed to its end: exit 0 once the server is ready, and the
        // server shown last (JSON on stdout, the steps on stderr).
        Some(cli) => {
            let made = cli
                .run(&[
                    "servers",
                    "create",
                    "web-1",
                    "--account",
                    account,
                    "--region",
                    region,
                    "--size",
                    size,
                    "--follow",
                    "--json",
                ])
                .await?;
            anyhow::ensure!(
                made.code == 0,
                "slipway servers create: {made}\n{}",
                fleet.logs()
            );
            let shown: Value = serde_json::from_str(&made.stdout).context("create's JSON")?;
            assert_eq!(shown["state"], "ready", "{made}");
            assert!(made.stderr.contains("step 6/6"), "{made}");
            shown["id"].as_str().context("id")?.to_owned()
        }
        None => {
            let made = create(fleet, account, region, size, "web-1").await?;
            made["id"].as_str().context("id")?.to_owned()
        }
    };
    let ready = wait_server(fleet, &id, &["ready", "failed"], LONG).await?;
    let to_ready = started.elapsed();
    let create_op = operation(fleet, &ready, 0).await?;
    let logs = log_text(fleet, &create_op).await?;
    assert_eq!(
        ready["state"],
        "ready",
        "{ready:#}\n{create_op:#}\n{logs}\nboot failures: {:?}",
        hosts.failures.lock().unwrap()
    );
    assert_eq!(create_op["state"], "live");
    for step in [
        "step 1/6",
        "step 3/6",
        "step 4/6",
        "step 6/6",
        "setup step 5/5: verify as slipway",
    ] {
        assert!(logs.contains(step), "{step} in {logs}");
    }
    assert_eq!(ready["target"], "web-1");
    assert_eq!(hosts.running(), 1);
    assert_eq!(holdings(), (1, 1, 1));
    // The target connects as the deploy user setup made, to the address
    // the provider reported, pinned to the host key Slipway made.
    let (status, target) = fleet.call(Method::GET, "/v1/targets/web-1", None).await?;
    assert_eq!(status, 200, "{target}");
    assert_eq!(target["host"], ready["ipv4"], "{target}");
    assert_eq!(target["user"], "slipway", "{target}");

    let started = std::time::Instant::now();
    match cli {
        Some(cli) => {
            let listed = cli.run(&["servers", "list"]).await?;
            assert_eq!(listed.code, 0, "{listed}");
            assert!(
                listed.stdout.contains("web-1") && listed.stdout.contains("ready"),
                "{listed}"
            );
            let destroyed = cli
                .run(&["servers", "destroy", "web-1", "--follow"])
                .await?;
            assert_eq!(destroyed.code, 0, "{destroyed}");
            assert!(destroyed.stdout.contains("destroyed"), "{destroyed}");
        }
        None => {
            let (status, destroying) = fleet
                .call(Method::DELETE, "/v1/servers/web-1", None)
                .await?;
            assert_eq!(status, 202, "{destroying}");
        }
    }
    let destroyed = wait_server(fleet, &id, &["destroyed", "failed"], LONG).await?;
    eprintln!(
        "{account}: request to ready {to_ready:.1?} (test host boot {:.1?}), destroy {:.1?}",
        hosts.boot_times().first().copied().unwrap_or_default(),
        started.elapsed()
    );
    assert_eq!(
        destroyed["state"],
        "destroyed",
        "{destroyed:#}\n{}",
        fleet.logs()
    );
    nothing_left(fleet, hosts, holdings, "/v1/targets/web-1").await
}

/// After a destroy: the fake holds no server, key or firewall, no test host
/// runs, and `made` (what Slipway made on the server: its target, the app)
/// answers 404.
pub(super) async fn nothing_left(
    fleet: &Fleet,
    hosts: &FakeHosts,
    holdings: impl Fn() -> (usize, usize, usize),
    made: &str,
) -> anyhow::Result<()> {
    assert_eq!(holdings(), (0, 0, 0), "the fake holds nothing");
    assert_eq!(hosts.running(), 0, "the test host is gone");
    let (status, _) = fleet.call(Method::GET, made, None).await?;
    assert_eq!(status, 404, "{made} is gone");
    Ok(())
}

#[tokio::test]
async fn a_hetzner_server_is_made_a_target_and_destroyed() -> anyhow::Result<()> {
    let (hosts, fake) = hetzner_with_hosts().await?;
    let (fleet, _registry, _caddy, _dirs) = full_fleet(&[], 0).await?;
    hetzner_account(&fleet, &fake).await?;
    let home = tempfile::tempdir()?;
    let cli = Cli::with_env(home.path(), &fleet.api_url, &fleet.token);
    create_and_destroy(
        &fleet,
        &hosts,
        "main",
        "fsn1",
        "cx22",
        || fake.holdings(),
        Some(&cli),
    )
    .await?;
    fleet.stop().await;
    Ok(())
}

#[tokio::test]
async fn an_openstack_server_is_made_a_target_and_destroyed() -> anyhow::Result<()> {
    let (hosts, fake) = openstack_with_hosts().await?;
    let (fleet, _registry, _caddy, _dirs) = full_fleet(&[], 0).await?;
    openstack_account(&fleet, &fake).await?;
    create_and_destroy(
        &fleet,
        &hosts,
        "ovh",
        "GRA11",
        "d2-2",
        || fake.holdings(),
        None,
    )
    .await?;
    fleet.stop().await;
    Ok(())
}

/// A fleet without build workers (a destroy's last step runs on the
/// deploy worker), fast sweeps, and servers that never answer SSH (unused
/// loopback addresses).
pub(super) async fn provision_fleet(extra: &[(&'static str, &str)]) -> anyhow::Result<Fleet> {
    let mut all = vec![
        ("SLIPWAY_SERVER_SSH_TIMEOUT", "2s"),
        ("SLIPWAY_LEASE_TIMEOUT", "3s"),
        ("SLIPWAY_HEARTBEAT_INTERVAL", "1s"),
        ("SLIPWAY_SWEEP_INTERVAL", "1s"),
    ];
    all.extend_from_slice(extra);
    Fleet::start(Options {
        build_workers: 0,
        env: env(&all),
        ..Options::default()
    })
    .await
}

async fn wait_until(
    what: &str,
    limit: Duration,
    mut done: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    while !done() {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

#[tokio::test]
async fn a_create_killed_after_the_provider_accepted_it_adopts_that_server() -> anyhow::Result<()> {
    let fake = FakeHetzner::start_with(TOKEN, silent_addresses()).await?;
    // The worker never hears the server's id before it dies.
    fake.faults(|f| f.create_answer_delay = Some(Duration::from_secs(5)));
    let mut fleet = provision_fleet(&[]).await?;
    hetzner_account(&fleet, &fake).await?;
    let made = create(&fleet, "main", "fsn1", "cx22", "web-1").await?;
    let id = made["id"].as_str().context("id")?.to_owned();
    wait_until(
        "the provider accepted the create",
        Duration::from_secs(60),
        || fake.holdings().0 == 1,
    )
    .await?;
    let first = fleet.workers[0].id.clone();
    fleet.worker(&first).proc.sigkill()?;
    let recorded = server(&fleet, &id).await?;
    assert!(
        recorded["provider_id"].is_null(),
        "the id never reached Slipway: {recorded}"
    );
    fake.faults(|f| f.create_answer_delay = None);
    fleet.spawn_worker("provision")?;

    // The re-run finds the server by its label (the fake never holds two),
    // then waits for SSH in vain: everything made is deleted.
    let mut most = 0;
    let ended = loop {
        most = most.max(fake.holdings().0);
        let now = server(&fleet, &id).await?;
        if now["state"] == "failed" {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let creates = fake
        .requests()
        .iter()
        .filter(|r| *r == "POST /v1/servers")
        .count();
    assert_eq!(
        (creates, most),
        (1, 1),
        "one create, one server: {:?}",
        fake.requests()
    );
    let create_op = operation(&fleet, &ended, 0).await?;
    let logs = log_text(&fleet, &create_op).await?;
    assert!(logs.contains("adopting server"), "{logs}");
    assert!(ended["provider_id"].is_string(), "{ended}");
    assert_eq!(create_op["error_code"], "ssh_timeout", "{create_op:#}");
    assert_eq!(fake.holdings(), (0, 0, 0), "everything made is deleted");
    fleet.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_create_that_fails_or_times_out_leaves_nothing() -> anyhow::Result<()> {
    let fake = FakeHetzner::start_with(TOKEN, silent_addresses()).await?;
    let fleet = provision_fleet(&[("SLIPWAY_SERVER_RUNNING_TIMEOUT", "2s")]).await?;
    hetzner_account(&fleet, &fake).await?;

    fake.faults(|f| f.fail_create = Some("the host's disk could not be created".into()));
    let made = create(&fleet, "main", "fsn1", "cx22", "broken").await?;
    let failed = wait_server(&fleet, made["id"].as_str().unwrap(), &["failed"], LONG).await?;
    let op = operation(&fleet, &failed, 0).await?;
    assert_eq!(op["error_code"], "provider_error", "{op:#}");
    assert!(
        op["error_message"]
            .as_str()
            .unwrap_or_default()
            .contains("the host's disk could not be created"),
        "{op:#}"
    );
    assert!(
        failed["error"]
            .as_str()
            .unwrap_or_default()
            .contains("disk could not be created"),
        "{failed}"
    );
    assert_eq!(fake.holdings(), (0, 0, 0), "everything made is deleted");

    fake.faults(|f| {
        f.fail_create = None;
        f.stuck_creating = true;
    });
    let made = create(&fleet, "main", "fsn1", "cx22", "stuck").await?;
    let failed = wait_server(&fleet, made["id"].as_str().unwrap(), &["failed"], LONG).await?;
    let op = operation(&fleet, &failed, 0).await?;
    assert_eq!(op["error_code"], "provider_timeout", "{op:#}");
    assert!(
        op["error_message"]
            .as_str()
            .unwrap_or_default()
            .contains("within 2s"),
        "{op:#}"
    );
    assert_eq!(fake.holdings(), (0, 0, 0), "everything made is deleted");
    fleet.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_destroy_during_the_create_waits_for_it_and_leaves_nothing() -> anyhow::Result<()> {
    let fake = FakeHetzner::start_with(TOKEN, silent_addresses()).await?;
    fake.faults(|f| f.create_answer_delay = Some(Duration::from_secs(2)));
    let fleet = provision_fleet(&[("SLIPWAY_SERVER_SSH_TIMEOUT", "60s")]).await?;
    hetzner_account(&fleet, &fake).await?;
    let made = create(&fleet, "main", "fsn1", "cx22", "web-1").await?;
    let id = made["id"].as_str().context("id")?.to_owned();
    wait_until(
        "the provider accepted the create",
        Duration::from_secs(60),
        || fake.holdings().0 == 1,
    )
    .await?;
    let (status, destroying) = fleet
        .call(Method::DELETE, "/v1/servers/web-1", None)
        .await?;
    assert_eq!(status, 202, "{destroying}");
    let destroyed = wait_server(&fleet, &id, &["destroyed", "failed"], LONG).await?;
    assert_eq!(
        destroyed["state"],
        "destroyed",
        "{destroyed:#}\n{}",
        fleet.logs()
    );
    let create_op = operation(&fleet, &destroyed, 0).await?;
    assert_eq!(create_op["error_code"], "server_destroyed", "{create_op:#}");
    let destroy_op = operation(&fleet, &destroyed, 1).await?;
    let logs = log_text(&fleet, &destroy_op).await?;
    assert!(logs.contains("waiting for the server's create"), "{logs}");
    assert!(destroyed["provider_id"].is_string(), "{destroyed}");
    assert_eq!(fake.holdings(), (0, 0, 0), "nothing is left");
    fleet.stop().await;
    Ok(())
}
