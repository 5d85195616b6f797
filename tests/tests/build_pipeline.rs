//! The build stage through the real fleet: the API and worker binaries, a
//! test-owned git daemon and registry, real buildah. A deployment of a git
//! ref is built, pushed and recorded (commit, digest, plan); the same commit
//! again reuses the image without building; a missing ref fails permanently
//! with a clear message; an uploaded version builds too. The fleet has no
//! Caddy, so provisioning stops each deployment after `built` and names
//! what the target lacks. The app's build commands and a declared runtime
//! version reach the plan (an unavailable version fails before building).

mod common;

use anyhow::Context;
use common::{example, Fleet, Options};
use reqwest::Method;
use serde_json::{json, Value};
use slipway_testkit::dns::DnsServer;
use slipway_testkit::git::{seed_repo, GitDaemon, GitHttp};
use slipway_testkit::registry::Registry;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;
use uuid::Uuid;

const BUILD_TIMEOUT: Duration = Duration::from_secs(300);
/// The discard port: nothing listens on it.
const NO_CADDY: &str = "http://127.0.0.1:9";

struct BuildFleet {
    fleet: Fleet,
    registry: Registry,
    _dirs: tempfile::TempDir,
}

async fn start() -> anyhow::Result<BuildFleet> {
    start_with(Vec::new()).await
}

/// With every process run through `wrapper`.
async fn start_with(wrapper: Vec<String>) -> anyhow::Result<BuildFleet> {
    let registry = Registry::start().await?;
    let dirs = tempfile::tempdir()?;
    let build_dir = dirs.path().join("builds");
    std::fs::create_dir_all(&build_dir)?;
    let mut env = vec![
        ("SLIPWAY_REGISTRY", registry.addr().to_string()),
        ("SLIPWAY_BUILD_DIR", build_dir.display().to_string()),
        ("SLIPWAY_SECRET_KEY", "ab".repeat(32)),
        // No Caddy answers here: provisioning stops these deployments once
        // built, so a test build never lands on the host's own Caddy.
        ("SLIPWAY_CADDY_ADMIN", NO_CADDY.to_string()),
    ];
    if let Ok(conf) = std::env::var("CONTAINERS_CONF") {
        env.push(("CONTAINERS_CONF", conf));
    }
    let fleet = Fleet::start(Options {
        env,
        wrapper,
        ..Options::default()
    })
    .await?;
    Ok(BuildFleet {
        fleet,
        registry,
        _dirs: dirs,
    })
}

impl BuildFleet {
    async fn create_app(&self, body: Value) -> anyhow::Result<()> {
        let (status, answer) = self
            .fleet
            .call(Method::POST, "/v1/apps", Some(body))
            .await?;
        anyhow::ensure!(status == 201, "create app: {status} {answer}");
        Ok(())
    }

    async fn deploy(&self, app: &str, body: Value) -> anyhow::Result<Uuid> {
        let (status, answer) = self
            .fleet
            .call(
                Method::POST,
                &format!("/v1/apps/{app}/deployments"),
                Some(body),
            )
            .await?;
        anyhow::ensure!(status == 202, "deploy: {status} {answer}");
        Ok(answer["id"].as_str().context("id")?.parse()?)
    }

    /// Waits for the deployment to end; returns it with its log lines.
    async fn finished(&self, id: Uuid) -> anyhow::Result<(Value, Vec<String>)> {
        let deployment = self
            .fleet
            .wait_state(id, common::TERMINAL, BUILD_TIMEOUT)
            .await?;
        let (status, logs) = self
            .fleet
            .call(
                Method::GET,
                &format!("/v1/deployments/{id}/logs?limit=1000"),
                None,
            )
            .await?;
        anyhow::ensure!(status == 200, "logs: {status} {logs}");
        let lines = logs["lines"]
            .as_array()
            .context("lines")?
            .iter()
            .filter_map(|l| l["line"].as_str().map(str::to_owned))
            .collect();
        Ok((deployment, lines))
    }
}

fn went_through_built(deployment: &Value) -> bool {
    common::states(deployment).iter().any(|s| s == "built")
}

/// The build stage succeeded, then provisioning stopped the deployment
/// because the target lacks its Caddy, and said so.
fn assert_built(deployment: &Value, logs: &[String]) {
    assert!(
        went_through_built(deployment),
        "{deployment:#}\n{}",
        logs.join("\n")
    );
    assert_eq!(
        deployment["error_code"], "target_not_ready",
        "{deployment:#}"
    );
    let message = deployment["error_message"].as_str().unwrap_or_default();
    assert!(message.contains("Caddy admin API"), "{message}");
}

#[tokio::test]
async fn a_git_ref_is_built_pushed_and_recorded_and_the_same_commit_is_not_rebuilt(
) -> anyhow::Result<()> {
    let build = start().await?;
    let repos = tempfile::tempdir()?;
    let repo = seed_repo(repos.path(), "site", Some(&example("static-site")))?;
    let daemon = GitDaemon::start(repos.path())?;
    build
        .create_app(json!({"name": "site", "git_url": daemon.url("site"), "git_ref": "main"}))
        .await?;

    let first = build.deploy("site", json!({})).await?;
    let (deployment, logs) = build.finished(first).await?;
    assert_built(&deployment, &logs);
    assert_eq!(deployment["resolved_commit"], repo.main.as_str());
    let digest = deployment["image_digest"].as_str().unwrap_or_default();
    assert!(digest.starts_with("sha256:"), "{deployment:#}");
    let reference = deployment["image_ref"].as_str().unwrap_or_default();
    assert!(
        reference.starts_with(build.registry.addr()) && reference.ends_with(digest),
        "{reference}"
    );
    assert_eq!(
        deployment["build_plan"]["stack"], "static",
        "{deployment:#}"
    );
    let text = logs.join("\n");
    assert!(
        text.contains(&format!("resolved to commit {}", repo.main)),
        "{text}"
    );
    assert!(
        text.contains("STEP"),
        "the build's own output is in the logs:\n{text}"
    );

    let again = build.deploy("site", json!({})).await?;
    let (deployment, logs) = build.finished(again).await?;
    assert_built(&deployment, &logs);
    assert_eq!(deployment["image_digest"].as_str(), Some(digest));
    let text = logs.join("\n");
    assert!(text.contains("without building"), "{text}");
    assert!(!text.contains("STEP"), "nothing was built:\n{text}");

    // A new commit on the branch is a new build.
    let changed = repo.push_change("main", "index.html", "<h1>changed</h1>\n")?;
    let third = build.deploy("site", json!({})).await?;
    let (deployment, logs) = build.finished(third).await?;
    assert_built(&deployment, &logs);
    assert_eq!(deployment["resolved_commit"], changed.as_str());
    assert_ne!(deployment["image_digest"].as_str(), Some(digest));

    build.fleet.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_missing_ref_fails_permanently_naming_the_ref() -> anyhow::Result<()> {
    let build = start().await?;
    let repos = tempfile::tempdir()?;
    seed_repo(repos.path(), "site", Some(&example("static-site")))?;
    let daemon = GitDaemon::start(repos.path())?;
    build
        .create_app(json!({"name": "site", "git_url": daemon.url("site"), "git_ref": "main"}))
        .await?;

    let id = build
        .deploy("site", json!({"git_ref": "no-such-branch"}))
        .await?;
    let (deployment, logs) = build.finished(id).await?;
    assert_eq!(deployment["state"], "failed");
    assert_eq!(deployment["error_code"], "ref_not_found", "{deployment:#}");
    let message = deployment["error_message"].as_str().unwrap_or_default();
    assert!(message.contains("no-such-branch"), "{message}");
    assert!(!went_through_built(&deployment));
    // Permanent: one attempt, no retries.
    let attempts = deployment["attempts"].as_array().context("attempts")?;
    assert_eq!(attempts.len(), 1, "{deployment:#}\n{}", logs.join("\n"));

    build.fleet.stop().await;
    Ok(())
}

#[tokio::test]
async fn an_uploaded_version_is_built() -> anyhow::Result<()> {
    let build = start().await?;
    build.create_app(json!({"name": "upload"})).await?;
    let archive = tar_gz(&example("static-site"))?;
    let answer = build
        .fleet
        .client
        .post(format!("{}/v1/apps/upload/versions", build.fleet.api_url))
        .bearer_auth(&build.fleet.token)
        .header("content-type", "application/gzip")
        .body(archive)
        .send()
        .await?;
    anyhow::ensure!(
        answer.status().as_u16() == 201,
        "upload: {}",
        answer.status()
    );
    let version: Value = answer.json().await?;
    let version_id = version["id"].as_str().context("version id")?;

    let id = build
        .deploy("upload", json!({"version": version_id}))
        .await?;
    let (deployment, logs) = build.finished(id).await?;
    assert_built(&deployment, &logs);
    assert!(deployment["image_digest"]
        .as_str()
        .is_some_and(|d| d.starts_with("sha256:")));
    assert_eq!(deployment["resolved_commit"], Value::Null);

    build.fleet.stop().await;
    Ok(())
}

fn tar_gz(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let output = std::process::Command::new("tar")
        .args(["-czf", "-", "-C"])
        .arg(dir)
        .arg(".")
        .output()?;
    anyhow::ensure!(output.status.success(), "tar failed");
    Ok(output.stdout)
}

/// The outbound policy at connect time, with a DNS server of the test's
/// own whose answers the test changes (the fleet allows loopback, as a
/// single-host install does; 0.0.0.0 is never allowed, and a connection
/// to it reaches this host's loopback listeners).
#[tokio::test]
async fn a_name_is_checked_again_when_git_connects_and_git_connects_where_it_was_checked(
) -> anyhow::Result<()> {
    let dns = DnsServer::start().await?;
    let build = start_with(dns.wrapper()).await?;
    let repos = tempfile::tempdir()?;
    let repo = seed_repo(repos.path(), "site", Some(&example("static-site")))?;
    let daemon = GitDaemon::start(repos.path())?;
    let name = "repo.flip.test";
    dns.set(name, Ipv4Addr::LOCALHOST);
    let url = daemon.url("site").replace("127.0.0.1", name);
    build
        .create_app(json!({"name": "site", "git_url": url, "git_ref": "main"}))
        .await?;
    assert!(dns.queries(name) >= 1, "the API checked the name");

    // The name answers differently by the time the build connects: the
    // build worker checks again and refuses, without running git.
    dns.set(name, Ipv4Addr::UNSPECIFIED);
    let id = build.deploy("site", json!({})).await?;
    let (deployment, logs) = build.finished(id).await?;
    let text = logs.join("\n");
    assert_eq!(deployment["state"], "failed", "{deployment:#}\n{text}");
    assert_eq!(
        deployment["error_code"], "address_not_allowed",
        "{deployment:#}"
    );
    let message = deployment["error_message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("`{name}` resolves to 0.0.0.0"))
            && message.contains("unspecified"),
        "{message}"
    );
    assert!(text.contains("refused to connect"), "{text}");
    assert!(!text.contains("checked out"), "git never ran:\n{text}");

    // It answers an allowed address to the check and 0.0.0.0 after: git
    // connects to the checked address and never asks the name itself.
    let http = GitHttp::start(repos.path(), None)?;
    let http_url = http.url("site").replace("127.0.0.1", name);
    for (transport, url) in [("git", &url), ("http", &http_url)] {
        dns.set(name, Ipv4Addr::LOCALHOST);
        let (status, answer) = build
            .fleet
            .call(
                Method::PATCH,
                "/v1/apps/site",
                Some(json!({"git_url": url})),
            )
            .await?;
        anyhow::ensure!(status == 200, "patch: {status} {answer}");
        dns.flip_after_one(name, Ipv4Addr::LOCALHOST, Ipv4Addr::UNSPECIFIED);
        let asked = dns.queries(name);
        let id = build.deploy("site", json!({})).await?;
        let (deployment, logs) = build.finished(id).await?;
        let text = logs.join("\n");
        assert!(
            went_through_built(&deployment),
            "{transport}: {deployment:#}\n{text}"
        );
        assert_eq!(
            deployment["resolved_commit"],
            repo.main.as_str(),
            "{transport}"
        );
        assert!(
            text.contains(&format!("{name} resolves to 127.0.0.1:")),
            "{transport}: {text}"
        );
        assert_eq!(
            dns.queries(name) - asked,
            1,
            "{transport}: only the worker's check asked for the name"
        );
    }
    assert!(http.requests() > 0, "the http server served a fetch");
    build.fleet.stop().await;
    Ok(())
}

#[tokio::test]
async fn the_apps_commands_and_its_declared_version_decide_the_plan() -> anyhow::Result<()> {
    let build = start().await?;
    let repos = tempfile::tempdir()?;
    let repo = seed_repo(
        repos.path(),
        "hello",
        Some(&example("python-flask-noprocfile")),
    )?;
    let daemon = GitDaemon::start(repos.path())?;
    let start_command = "gunicorn --bind 0.0.0.0:$PORT --workers 1 app:app";
    build
        .create_app(json!({
            "name": "hello",
            "git_url": daemon.url("hello"),
            "git_ref": "main",
            "build": {"command": "python3 -m compileall -q .", "start_command": start_command},
        }))
        .await?;

    let id = build.deploy("hello", json!({})).await?;
    let (deployment, logs) = build.finished(id).await?;
    assert_built(&deployment, &logs);
    let plan = &deployment["build_plan"];
    assert_eq!(
        plan["build_command"], "python3 -m compileall -q .",
        "{plan:#}"
    );
    assert_eq!(plan["start"]["command"], start_command, "{plan:#}");
    assert_eq!(plan["start"]["source"], "app_settings", "{plan:#}");
    assert_eq!(plan["runtime"]["language"], "python", "{plan:#}");
    let containerfile = plan["containerfile"]["text"].as_str().unwrap_or_default();
    assert!(
        containerfile.contains("RUN python3 -m compileall -q .\n")
            && containerfile.contains("USER 1000:1000"),
        "{containerfile}"
    );

    // A version no image offers: refused before anything is built.
    repo.push_change("main", ".python-version", "3.14\n")?;
    let id = build.deploy("hello", json!({})).await?;
    let (deployment, logs) = build.finished(id).await?;
    assert_eq!(deployment["state"], "failed", "{deployment:#}");
    assert_eq!(
        deployment["error_code"], "unsupported_runtime_version",
        "{deployment:#}"
    );
    let message = deployment["error_message"].as_str().unwrap_or_default();
    assert!(
        message.contains("python 3.14 (from .python-version)") && message.contains("3.11."),
        "{message}"
    );
    assert!(!went_through_built(&deployment));
    assert!(
        !logs.iter().any(|l| l.contains("STEP")),
        "nothing was built:\n{}",
        logs.join("\n")
    );

    build.fleet.stop().await;
    Ok(())
}
