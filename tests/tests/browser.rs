//! The web dashboard in a real browser against the real fleet: the API
//! (serving the built dashboard from `web/dist`) and one worker per stage,
//! a test-owned registry, Caddy and git daemon, real buildah and podman.
//! `tests/browser/run.mjs` drives Debian's Chromium through playwright-core:
//! sign in, create an app from the git repository, deploy it (its build
//! prints timed MARK lines, so the page's log latency is measured), see it
//! go live, deploy another ref and roll back in one click, cancel a running
//! build, set and unset a secret, add and remove a custom domain and an
//! add-on and see the scale, invite a member by email (the one-use link is
//! shown; `already_invited`, `already_member` and `last_owner` refusals
//! too) who opens the link and joins, the install wizard's prices and
//! refusals, an install through the wizard (a cloud account added at the
//! fake Hetzner, an API refusal shown at its field, then a server bought
//! there that is a real test host, set up, the app deployed on it and
//! verified, each step live with its log, then destroyed), the owners'
//! pages, 200 apps painted, and a viewer who sees no deploy, domain, scale,
//! add-on or install form and whose deploy the API refuses with 403.
//! Screenshots go to `target/screenshots`. `SLIPWAY_BROWSER_ONLY=PATTERN`
//! runs only the scenarios whose names match (after signing in), and skips
//! the checks of what the others did.
//!
//! Needs `chromium` (scripts/test-tools.sh), `npm ci` and `npm run build`
//! in `web/` (scripts/test.sh does both). Outside CI a missing piece skips
//! the test with a message; in CI (`CI=true`) it fails.

mod common;

use anyhow::Context;
use common::{Fleet, Options};
use serde_json::{json, Value};
use slipway_testkit::caddy::Caddy;
use slipway_testkit::cloud_fake::hetzner::FakeHetzner;
use slipway_testkit::cloud_fake::hosts::FakeHosts;
use slipway_testkit::git::{git, seed_repo, GitDaemon};
use slipway_testkit::host::APT_SOURCE;
use slipway_testkit::registry::Registry;
use std::path::{Path, PathBuf};
use std::time::Duration;

const ADMIN_EMAIL: &str = "admin@browser.test";
const ADMIN_PASSWORD: &str = "tide-lantern-quartz-8812";
const VIEWER_EMAIL: &str = "viewer@browser.test";
const VIEWER_PASSWORD: &str = "ember-willow-cobalt-5530";
/// Invited by the owner on the members page; joins through the link.
const INVITEE_EMAIL: &str = "newcomer@browser.test";
/// The fake Hetzner's API token, typed into the wizard's account form.
const HETZNER_TOKEN: &str = "hz-browser-token";
/// The app the wizard's install deploys on the server it buys.
const INSTALL_APP: &str = "shop";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

/// What the run needs, or why it cannot run here.
fn missing_prerequisite(root: &Path) -> Option<String> {
    if !Path::new("/usr/bin/chromium").exists() {
        return Some("chromium is not installed (scripts/test-tools.sh installs it)".into());
    }
    if !root.join("web/node_modules/playwright-core").exists() {
        return Some("web/node_modules is missing: run `npm ci` in web/".into());
    }
    if !root.join("web/dist/index.html").exists() {
        return Some("the dashboard is not built: run `npm run build` in web/".into());
    }
    None
}

/// The example Dockerfile app, whose build prints `MARK <epoch ms> <n>`
/// every 100 ms (a nonce keeps the layer out of any cache), in a repository
/// with `main`, `feature` (one more commit) and `slow` (a build that
/// prints `TICK 1` to `TICK 30` over 6 s, then sleeps until cancelled); `app.tar.gz` beside it is the same source as
/// an archive.
fn repository(dir: &Path) -> anyhow::Result<slipway_testkit::git::SeededRepo> {
    let source = dir.join("source");
    std::fs::create_dir_all(&source)?;
    let example = common::example("dockerfile-app");
    for file in ["Dockerfile", "server.py"] {
        std::fs::copy(example.join(file), source.join(file))?;
    }
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let dockerfile = std::fs::read_to_string(source.join("Dockerfile"))?;
    let marks = format!(
        "RUN echo build {nonce}; for i in $(seq 1 40); do echo \"MARK $(date +%s%3N) $i\"; sleep 0.1; done\nCMD"
    );
    std::fs::write(
        source.join("Dockerfile"),
        dockerfile.replacen("CMD", &marks, 1),
    )?;
    let archive = dir.join("app.tar.gz");
    let tar = std::process::Command::new("tar")
        .arg("-czf")
        .arg(&archive)
        .arg("-C")
        .arg(&source)
        .arg(".")
        .status()?;
    anyhow::ensure!(tar.success(), "tar: {tar}");
    let repos = dir.join("repos");
    std::fs::create_dir_all(&repos)?;
    let repo = seed_repo(&repos, "web", Some(&source))?;
    let work = dir.join("slow-work");
    let (repo_path, work_path) = (
        repo.path.to_str().context("path")?,
        work.to_str().context("path")?,
    );
    git(Path::new("/"), &["clone", "-q", repo_path, work_path])?;
    git(&work, &["checkout", "-q", "-b", "slow"])?;
    let slow = std::fs::read_to_string(work.join("Dockerfile"))?.replacen(
        "CMD",
        "RUN for i in $(seq 1 30); do echo \"TICK $i\"; sleep 0.2; done; \
         echo SLOW-START && sleep 600\nCMD",
        1,
    );
    std::fs::write(work.join("Dockerfile"), slow)?;
    git(&work, &["commit", "-q", "-am", "slow build"])?;
    git(&work, &["push", "-q", "origin", "slow"])?;
    Ok(repo)
}

/// A viewer of the fleet's project, through an invitation it accepts.
async fn viewer(fleet: &Fleet) -> anyhow::Result<()> {
    let invited = fleet
        .admin_post(
            &format!("/v1/projects/{}/invitations", fleet.project_id),
            json!({"email": VIEWER_EMAIL, "role": "viewer"}),
        )
        .await?;
    let secret = invited["token"].as_str().context("invitation token")?;
    let accepted = fleet
        .client
        .post(format!("{}/v1/invitations/{secret}/accept", fleet.api_url))
        .json(&json!({"password": VIEWER_PASSWORD}))
        .send()
        .await?;
    anyhow::ensure!(accepted.status() == 201, "accept: {}", accepted.status());
    Ok(())
}

#[tokio::test]
async fn the_dashboard_deploys_follows_logs_rolls_back_and_hides_what_a_viewer_cannot_do(
) -> anyhow::Result<()> {
    let root = workspace();
    if let Some(why) = missing_prerequisite(&root) {
        if std::env::var("CI").as_deref() == Ok("true") {
            anyhow::bail!("the browser test cannot run in CI: {why}");
        }
        eprintln!("SKIPPED the browser test: {why}");
        return Ok(());
    }
    let only = std::env::var("SLIPWAY_BROWSER_ONLY").ok();
    let registry = Registry::start().await?;
    let caddy = Caddy::start().await?;
    // The wizard buys its server here: a real test host, gone on delete.
    let hosts = FakeHosts::new();
    let hetzner = FakeHetzner::start_with(HETZNER_TOKEN, hosts.hook()).await?;
    let released = hosts.clone();
    hetzner.on_delete(std::sync::Arc::new(move |ip| released.release(ip)));
    let dirs = tempfile::tempdir()?;
    let mut env = vec![
        ("SLIPWAY_REGISTRY", registry.addr().to_string()),
        (
            "SLIPWAY_BUILD_DIR",
            dirs.path().join("build").display().to_string(),
        ),
        ("SLIPWAY_CADDY_ADMIN", caddy.admin_url().to_string()),
        ("SLIPWAY_CADDY_HTTP_ADDR", caddy.http_addr().to_string()),
        ("SLIPWAY_CADDY_HTTPS_ADDR", "off".to_string()),
        ("SLIPWAY_CADDY_SERVER", "apps".to_string()),
        ("SLIPWAY_BASE_DOMAIN", "localhost".to_string()),
        ("SLIPWAY_RUNTIME_LOG_INTERVAL", "300ms".to_string()),
        // The provision worker opens the cloud account's credentials.
        ("SLIPWAY_SECRET_KEY", "ab".repeat(32)),
        ("SLIPWAY_CLOUD_POLL_INTERVAL", "100ms".to_string()),
        ("SLIPWAY_SERVER_APT_SOURCE", APT_SOURCE.to_string()),
        (
            "SLIPWAY_WEB_DIR",
            root.join("web/dist").display().to_string(),
        ),
        ("SLIPWAY_BOOTSTRAP_ADMIN_EMAIL", ADMIN_EMAIL.to_string()),
        (
            "SLIPWAY_BOOTSTRAP_ADMIN_PASSWORD",
            ADMIN_PASSWORD.to_string(),
        ),
    ];
    if let Ok(conf) = std::env::var("CONTAINERS_CONF") {
        env.push(("CONTAINERS_CONF", conf));
    }
    let fleet = Fleet::start(Options {
        env,
        ..Options::default()
    })
    .await?;
    viewer(&fleet).await?;
    let repo = repository(dirs.path())?;
    let daemon = GitDaemon::start(&dirs.path().join("repos"))?;
    let app = "web";
    let secret_value = format!("s3cret-{}", uuid::Uuid::new_v4().simple());
    let screenshots = root.join("target/screenshots");
    let config = json!({
        "url": fleet.api_url,
        "project": "p",
        "app": app,
        "git_url": daemon.url(&repo.name),
        "admin": {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
        "viewer": {"email": VIEWER_EMAIL, "password": VIEWER_PASSWORD},
        "invitee": INVITEE_EMAIL,
        "secret_value": secret_value,
        "archive": dirs.path().join("app.tar.gz"),
        "screenshots": screenshots,
        "hetzner": {"url": hetzner.url(), "token": HETZNER_TOKEN},
        "install_app": INSTALL_APP,
        "only": only,
    });
    let started = std::time::Instant::now();
    let run = tokio::process::Command::new("node")
        .arg(root.join("tests/browser/run.mjs"))
        .env("SLIPWAY_BROWSER", config.to_string())
        .kill_on_drop(true)
        .status();
    let status = tokio::time::timeout(Duration::from_secs(900), run)
        .await
        .context("the browser run took over 15 minutes")??;
    println!(
        "browser run: {status} in {:.0} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        screenshots.display()
    );
    // The app's containers go when the test ends, passed or not.
    let (_, app_now) = fleet
        .call(reqwest::Method::GET, &format!("/v1/apps/{app}"), None)
        .await?;
    let _containers = common::AppContainers(app_now["id"].as_str().unwrap_or("").to_owned());
    if !status.success() {
        println!("{}", fleet.logs());
    }
    anyhow::ensure!(status.success(), "the browser scenarios failed: {status}");

    // The install the wizard made was destroyed: nothing left at the
    // provider, no test host running.
    let (_, installs) = fleet
        .call(reqwest::Method::GET, "/v1/installs", None)
        .await?;
    let installs = installs["items"].as_array().context("installs")?.clone();
    assert!(
        only.is_some() || installs.len() == 1,
        "the wizard made one install: {installs:?}"
    );
    for install in &installs {
        assert_eq!(install["status"], "destroyed", "{install}");
    }
    assert_eq!(hetzner.holdings(), (0, 0, 0), "the fake holds nothing");
    assert_eq!(hosts.running(), 0, "the server's test host is gone");
    if only.is_some() {
        fleet.stop().await;
        return Ok(());
    }

    // What the pages did, as the API records it.
    assert_eq!(app_now["status"]["state"], "running", "{app_now}");
    assert!(app_now["secrets"].get("API_TOKEN").is_none(), "{app_now}");
    assert_eq!(app_now["env"]["PLAIN_KEY"], "plain-value", "{app_now}");
    assert_eq!(
        app_now["domains"],
        json!([]),
        "the domain was removed: {app_now}"
    );
    let (_, addons) = fleet
        .call(
            reqwest::Method::GET,
            &format!("/v1/apps/{app}/addons"),
            None,
        )
        .await?;
    assert_eq!(
        addons["items"],
        json!([]),
        "the add-on was detached: {addons}"
    );
    let (_, members) = fleet
        .call(
            reqwest::Method::GET,
            &format!("/v1/projects/{}/members", fleet.project_id),
            None,
        )
        .await?;
    assert!(
        members["items"].as_array().is_some_and(|items| items
            .iter()
            .any(|m| m["email"] == INVITEE_EMAIL && m["role"] == "owner")),
        "the invitee joined and was made owner: {members}"
    );
    let (_, list) = fleet
        .call(
            reqwest::Method::GET,
            &format!("/v1/apps/{app}/deployments?limit=20"),
            None,
        )
        .await?;
    let states: Vec<(String, Value)> = list["items"]
        .as_array()
        .context("items")?
        .iter()
        .map(|d| {
            (
                d["state"].as_str().unwrap_or("").to_owned(),
                d["source"].clone(),
            )
        })
        .collect();
    assert!(
        states
            .iter()
            .any(|(s, src)| s == "live" && src.get("rollback_to").is_some()),
        "a rollback went live: {states:?}"
    );
    assert!(
        states.iter().any(|(s, _)| s == "cancelled"),
        "a build was cancelled: {states:?}"
    );
    let (_, audit) = fleet
        .call(
            reqwest::Method::GET,
            "/v1/audit?action=create_deployment&outcome=refused",
            None,
        )
        .await?;
    assert!(
        audit["items"]
            .as_array()
            .is_some_and(|items| items.iter().any(|i| i["status"] == 403)),
        "the viewer's deploy was refused: {audit}"
    );
    fleet.stop().await;
    Ok(())
}
