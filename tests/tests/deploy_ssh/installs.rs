//! One-click installs through the real fleet and the provider fakes: per
//! driver, an install buys a server (a real test host), sets it up, builds
//! the static site from git and deploys it there, and Slipway's verify
//! reaches it at the server's address; the test then gets the page itself
//! at the address the fake reported (no Host of its own: an install without
//! a domain answers at the bare address), and the install's DELETE leaves
//! nothing at the fake, no test host, no app. The Hetzner run goes through
//! `slipway install` and `slipway installs destroy`, the OpenStack run
//! through the API. An install whose create fails at the provider ends
//! `failed` in the provider's words with nothing bought left, and its
//! DELETE removes the app. A provision worker killed mid-create does not
//! lose the install: the adopted server's create ends and the install goes on.

use super::cli_run::Cli;
use super::common::{example, Fleet, GitSource};
use super::log_text;
use super::servers::{
    full_fleet, hetzner_account, hetzner_with_hosts, nothing_left, openstack_account,
    openstack_with_hosts, provision_fleet, read_until, LONG, TOKEN,
};
use anyhow::Context;
use reqwest::Method;
use serde_json::{json, Value};
use slipway_testkit::cloud_fake::hetzner::FakeHetzner;
use slipway_testkit::cloud_fake::hosts::{silent_addresses, FakeHosts};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Waits until the install's status is one of `statuses`.
pub(super) async fn wait(fleet: &Fleet, id: &str, statuses: &[&str]) -> anyhow::Result<Value> {
    read_until(fleet, &format!("/v1/installs/{id}"), LONG, |now| {
        statuses.contains(&now["status"].as_str().unwrap_or_default())
    })
    .await
}

/// The logs of one of the install's steps.
pub(super) async fn step_logs(
    fleet: &Fleet,
    install: &Value,
    step: usize,
) -> anyhow::Result<String> {
    let id: Uuid = install["steps"][step]["operation"]
        .as_str()
        .context("the step's operation")?
        .parse()?;
    log_text(fleet, &fleet.deployment(id).await?).await
}

fn step_states(install: &Value) -> Vec<String> {
    install["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| format!("{}:{}", s["name"], s["state"]).replace('"', ""))
        .collect()
}

/// Install → completed → the page at the server's address → destroyed,
/// nothing left. With `hold_server` (through the API only), the server's
/// create is held (`hold_server(true)`) until the app's build, queued
/// with the install, has ended and waits for it; then let go.
async fn install_and_destroy(
    fleet: &Fleet,
    hosts: &FakeHosts,
    (provider, account, region, size): (&str, &str, &str, &str),
    holdings: impl Fn() -> (usize, usize, usize),
    cli: Option<&Cli>,
    hold_server: Option<&dyn Fn(bool)>,
) -> anyhow::Result<()> {
    let source = GitSource::serve("site", &example("static-site"))?;
    let started = Instant::now();
    let completed = match cli {
        Some(cli) => {
            let args = [
                "install",
                "--provider",
                provider,
                "--account",
                account,
                "--region",
                region,
                "--size",
                size,
                "--app",
                "site",
                "--git-url",
                &source.url,
                "--git-ref",
                "main",
                "--json",
            ];
            let made = cli.run(&args).await?;
            anyhow::ensure!(made.code == 0, "slipway install: {made}\n{}", fleet.logs());
            for step in ["step provision", "step deploy", "step verify"] {
                assert!(made.stderr.contains(step), "{step} in {made}");
            }
            let shown: Value = serde_json::from_str(&made.stdout).context("install's JSON")?;
            shown
        }
        None => {
            let (status, made) = fleet
                .call(
                    Method::POST,
                    "/v1/installs",
                    Some(json!({
                        "provider": provider, "account": account, "region": region, "size": size,
                        "app": {"name": "site", "git_url": source.url, "git_ref": "main",
                                "runtime": {"health_path": "/healthz"}}})),
                )
                .await?;
            anyhow::ensure!(status == 202, "install: {status} {made}");
            if let Some(hold) = hold_server {
                let deploy = made["steps"][2]["operation"].as_str().context("deploy")?;
                let path = format!("/v1/deployments/{deploy}");
                let waiting = read_until(fleet, &path, LONG, |d| d["state"] == "built").await?;
                let detail = waiting["events"]
                    .as_array()
                    .and_then(|events| events.iter().find(|e| e["to"] == "built"))
                    .map(|e| e["detail"].to_string())
                    .unwrap_or_default();
                assert!(
                    detail.contains("waiting for the install's server"),
                    "{waiting:#}"
                );
                let id = made["id"].as_str().context("id")?;
                let (_, install) = fleet
                    .call(Method::GET, &format!("/v1/installs/{id}"), None)
                    .await?;
                assert_eq!(install["status"], "provisioning", "{install:#}");
                hold(false);
            }
            wait(
                fleet,
                made["id"].as_str().context("id")?,
                &["completed", "failed"],
            )
            .await?
        }
    };
    let id = completed["id"].as_str().context("id")?.to_owned();
    let elapsed = started.elapsed();
    assert_eq!(
        completed["status"],
        "completed",
        "{completed:#}\nboot failures: {:?}\n{}",
        hosts.failures.lock().unwrap(),
        fleet.logs()
    );
    eprintln!("{provider}: install request to completed {elapsed:.1?}");
    assert_eq!(
        step_states(&completed),
        [
            "provision:done",
            "configure:done",
            "deploy:done",
            "verify:done"
        ]
    );
    let ipv4 = completed["server"]["ipv4"].as_str().context("ipv4")?;
    assert_eq!(completed["app_url"], format!("http://{ipv4}/"));
    assert!(completed["completed_at"].is_string(), "{completed}");
    let verify = step_logs(fleet, &completed, 3).await?;
    assert!(verify.contains("the app answered"), "{verify}");
    // The app's build was queued with the install, not after its server.
    let operation = |step: usize| -> anyhow::Result<Uuid> {
        Ok(completed["steps"][step]["operation"]
            .as_str()
            .context("operation")?
            .parse()?)
    };
    let deploy = fleet.deployment(operation(2)?).await?;
    let server_create = fleet.deployment(operation(0)?).await?;
    let at = |value: &Value| -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
        Ok(value.as_str().context("a time")?.parse()?)
    };
    let server_live = server_create["events"]
        .as_array()
        .and_then(|events| events.iter().find(|e| e["to"] == "live"))
        .context("the server's live event")?;
    assert!(
        at(&deploy["created_at"])? < at(&server_live["at"])?,
        "deploy created {} after the server was ready at {}",
        deploy["created_at"],
        server_live["at"]
    );
    // From here, as a visitor would: the bare address, no Host of ours.
    let client = reqwest::Client::builder().no_proxy().build()?;
    let page = client
        .get(format!("http://{ipv4}/"))
        .timeout(Duration::from_secs(10))
        .send()
        .await?;
    assert_eq!(page.status(), 200);
    assert!(page.text().await?.contains("static-site"));
    let (status, app) = fleet.call(Method::GET, "/v1/apps/site", None).await?;
    assert_eq!(status, 200, "{app}");
    assert_eq!(app["target"], completed["server"]["name"], "{app}");
    assert_eq!(hosts.running(), 1);

    match cli {
        Some(cli) => {
            let listed = cli.run(&["installs", "list"]).await?;
            assert!(
                listed.code == 0 && listed.stdout.contains("completed"),
                "{listed}"
            );
            let destroyed = cli.run(&["installs", "destroy", &id]).await?;
            assert_eq!(destroyed.code, 0, "{destroyed}\n{}", fleet.logs());
            assert!(destroyed.stdout.contains("destroyed"), "{destroyed}");
        }
        None => {
            let (status, destroying) = fleet
                .call(Method::DELETE, &format!("/v1/installs/{id}"), None)
                .await?;
            assert_eq!(status, 202, "{destroying}");
            assert_eq!(destroying["status"], "destroying", "{destroying}");
        }
    }
    let destroyed = wait(fleet, &id, &["destroyed", "failed"]).await?;
    assert_eq!(
        destroyed["status"],
        "destroyed",
        "{destroyed:#}\n{}",
        fleet.logs()
    );
    assert_eq!(destroyed["server"]["state"], "destroyed");
    nothing_left(fleet, hosts, holdings, "/v1/apps/site").await
}

#[tokio::test]
async fn a_hetzner_install_through_the_cli_answers_and_is_destroyed() -> anyhow::Result<()> {
    let (hosts, fake) = hetzner_with_hosts().await?;
    let (fleet, _registry, _caddy, _dirs) = full_fleet(&[], 1).await?;
    hetzner_account(&fleet, &fake).await?;
    let home = tempfile::tempdir()?;
    let cli = Cli::with_env(home.path(), &fleet.api_url, &fleet.token);
    install_and_destroy(
        &fleet,
        &hosts,
        ("hetzner", "main", "fsn1", "cx22"),
        || fake.holdings(),
        Some(&cli),
        None,
    )
    .await?;
    fleet.stop().await;
    Ok(())
}

#[tokio::test]
async fn an_openstack_install_answers_and_is_destroyed() -> anyhow::Result<()> {
    let (hosts, fake) = openstack_with_hosts().await?;
    let (fleet, _registry, _caddy, _dirs) = full_fleet(&[], 1).await?;
    openstack_account(&fleet, &fake).await?;
    // Its server is held in BUILD until the app's build ends and waits.
    fake.faults(|f| f.stuck_creating = true);
    let hold = |held: bool| fake.faults(|f| f.stuck_creating = held);
    install_and_destroy(
        &fleet,
        &hosts,
        ("openstack", "ovh", "GRA11", "d2-2"),
        || fake.holdings(),
        None,
        Some(&hold),
    )
    .await?;
    fleet.stop().await;
    Ok(())
}

#[tokio::test]
async fn an_install_whose_create_fails_ends_failed_and_leaves_nothing() -> anyhow::Result<()> {
    let fake = FakeHetzner::start_with(TOKEN, silent_addresses()).await?;
    let fleet = provision_fleet(&[]).await?;
    hetzner_account(&fleet, &fake).await?;
    fake.faults(|f| f.fail_create = Some("the host's disk could not be created".into()));
    let (status, made) = fleet
        .call(
            Method::POST,
            "/v1/installs",
            Some(
                json!({"provider": "hetzner", "account": "main", "region": "fsn1", "size": "cx22",
                        "app": {"name": "shop", "git_url": "http://127.0.0.1:9/shop.git"}}),
            ),
        )
        .await?;
    anyhow::ensure!(status == 202, "install: {status} {made}");
    let id = made["id"].as_str().context("id")?.to_owned();
    let failed = wait(&fleet, &id, &["failed", "completed"]).await?;
    assert_eq!(failed["status"], "failed", "{failed:#}");
    assert_eq!(failed["error"]["code"], "provider_error", "{failed:#}");
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("the host's disk could not be created"),
        "{failed:#}"
    );
    assert_eq!(
        step_states(&failed),
        [
            "provision:failed",
            "configure:pending",
            // The build, queued with the install, has no server to go to.
            "deploy:cancelled",
            "verify:pending"
        ]
    );
    assert!(failed["app_url"].is_null(), "{failed}");
    assert_eq!(fake.holdings(), (0, 0, 0), "everything made is deleted");
    // Its app never ran anywhere and never may until torn down.
    let (status, refused) = fleet
        .call(Method::POST, "/v1/apps/shop/deployments", None)
        .await?;
    assert_eq!(
        (status, refused["code"].as_str()),
        (409, Some("server_not_ready")),
        "{refused}"
    );

    let (status, destroying) = fleet
        .call(Method::DELETE, &format!("/v1/installs/{id}"), None)
        .await?;
    assert_eq!(status, 202, "{destroying}");
    let destroyed = wait(&fleet, &id, &["destroyed"]).await?;
    assert!(destroyed["error"].is_null(), "{destroyed}");
    let (status, _) = fleet.call(Method::GET, "/v1/apps/shop", None).await?;
    assert_eq!(status, 404, "the app is gone");
    assert_eq!(fake.holdings(), (0, 0, 0));
    fleet.stop().await;
    Ok(())
}

/// The provision worker is SIGKILLed while the provider makes the
/// install's server (its id never reached Slipway): the sweeper hands the
/// create to a new worker, which adopts that server, and the install goes
/// on from the create's end to completed, with one server bought.
#[tokio::test]
async fn an_install_survives_its_provision_worker_killed_mid_create() -> anyhow::Result<()> {
    let (hosts, fake) = hetzner_with_hosts().await?;
    fake.faults(|f| f.create_answer_delay = Some(Duration::from_secs(5)));
    // A lease long enough for the set-up's busiest moments on a loaded
    // machine (3 s lost live attempts there), short enough to rescue soon.
    let fast_sweeps = [
        ("SLIPWAY_LEASE_TIMEOUT", "15s"),
        ("SLIPWAY_HEARTBEAT_INTERVAL", "1s"),
        ("SLIPWAY_SWEEP_INTERVAL", "1s"),
    ];
    let (mut fleet, _registry, _caddy, _dirs) = full_fleet(&fast_sweeps, 1).await?;
    hetzner_account(&fleet, &fake).await?;
    let source = GitSource::serve("site", &example("static-site"))?;
    let (status, made) = fleet
        .call(
            Method::POST,
            "/v1/installs",
            Some(
                json!({"provider": "hetzner", "account": "main", "region": "fsn1", "size": "cx22",
                        "app": {"name": "site", "git_url": source.url, "git_ref": "main"}}),
            ),
        )
        .await?;
    anyhow::ensure!(status == 202, "install: {status} {made}");
    let id = made["id"].as_str().context("id")?.to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while fake.holdings().0 == 0 {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "no create at the fake"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let provision = fleet
        .workers
        .iter()
        .find(|w| w.stage == "provision")
        .context("a provision worker")?
        .id
        .clone();
    fleet.worker(&provision).proc.sigkill()?;
    fake.faults(|f| f.create_answer_delay = None);
    fleet.spawn_worker("provision")?;

    let completed = wait(&fleet, &id, &["completed", "failed"]).await?;
    assert_eq!(
        completed["status"],
        "completed",
        "{completed:#}\n{}",
        fleet.logs()
    );
    let creates = fake
        .requests()
        .iter()
        .filter(|r| *r == "POST /v1/servers")
        .count();
    assert_eq!(creates, 1, "one server bought: {:?}", fake.requests());
    let create = step_logs(&fleet, &completed, 0).await?;
    assert!(create.contains("adopting server"), "{create}");
    let (status, destroying) = fleet
        .call(Method::DELETE, &format!("/v1/installs/{id}"), None)
        .await?;
    assert_eq!(status, 202, "{destroying}");
    wait(&fleet, &id, &["destroyed"]).await?;
    assert_eq!(fake.holdings(), (0, 0, 0));
    assert_eq!(hosts.running(), 0);
    fleet.stop().await;
    Ok(())
}
