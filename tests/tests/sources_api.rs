//! Sources through the real API binary and Postgres: push webhooks of each
//! provider (signed by `openssl`, not by our own code), archive versions
//! (made by `tar`/`zip`, malicious ones by Python's tarfile/zipfile), and
//! private-repository credentials that never come back out. No worker runs,
//! so every deployment a request creates stays visible as a queued row.

mod common;

use anyhow::Context;
use common::{Fleet, Options, ADMIN_TOKEN};
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use slipway_shared::db::sources::{self, StoredGitCredential};
use std::io::Write;
use std::process::{Command, Stdio};
use uuid::Uuid;

async fn fleet(env: Vec<(&'static str, String)>) -> anyhow::Result<Fleet> {
    Fleet::start(Options {
        build_workers: 0,
        provision_workers: 0,
        deploy_workers: 0,
        env,
        ..Options::default()
    })
    .await
}

fn secret_box() -> slipway_shared::secrets::SecretBox {
    // The key `common::Fleet` gives the API.
    slipway_shared::secrets::SecretBox::from_hex(&"ab".repeat(32).into()).unwrap()
}

/// Hex HMAC-SHA256, computed by openssl.
fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", secret, "-r"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl");
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}

fn sha256sum(bytes: &[u8]) -> String {
    let dir = tempdir();
    std::fs::write(dir.join("f"), bytes).unwrap();
    let out = Command::new("sha256sum")
        .arg(dir.join("f"))
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("slipway-sources-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn count(fleet: &Fleet, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&fleet.db.pool)
        .await
        .unwrap()
}

async fn create_app(fleet: &Fleet, body: Value) -> anyhow::Result<Value> {
    let (status, app) = fleet.call(Method::POST, "/v1/apps", Some(body)).await?;
    anyhow::ensure!(status == 201, "create app: {status} {app}");
    Ok(app)
}

/// A project token of a second project.
async fn other_token(fleet: &Fleet) -> anyhow::Result<String> {
    let admin = |path: String, body: Value| {
        fleet
            .client
            .post(format!("{}{path}", fleet.api_url))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
    };
    let project: Value = admin("/v1/projects".into(), json!({"name": "other"}))
        .await?
        .json()
        .await?;
    let id = project["id"].as_str().context("project id")?;
    let token: Value = admin(
        format!("/v1/projects/{id}/tokens"),
        json!({"name": "t", "role": "owner"}),
    )
    .await?
    .json()
    .await?;
    Ok(token["token"].as_str().context("token")?.to_owned())
}

async fn hook(
    fleet: &Fleet,
    url: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> anyhow::Result<(u16, Value)> {
    let mut request = fleet
        .client
        .post(format!("{}{url}", fleet.api_url))
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

async fn deployments_of(fleet: &Fleet, app: &str) -> Vec<Value> {
    sqlx::query_scalar(
        "SELECT d.source FROM deployments d JOIN apps a ON a.id = d.app_id WHERE a.name = $1 ORDER BY d.id",
    )
    .bind(app)
    .fetch_all(&fleet.db.pool)
    .await
    .unwrap()
}

fn github_push(git_ref: &str, after: &str, clone_url: &str) -> Vec<u8> {
    json!({
        "ref": git_ref, "before": "0".repeat(40), "after": after, "created": false,
        "deleted": after.bytes().all(|b| b == b'0'), "forced": false,
        "repository": {"id": 1, "full_name": "acme/web", "clone_url": clone_url,
            "ssh_url": "git@github.com:acme/web.git", "html_url": "https://github.com/acme/web",
            "default_branch": "main"},
        "commits": [], "head_commit": null, "pusher": {"name": "dev"}
    })
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn push_webhooks_deploy_the_pushed_commit_and_refuse_the_rest() -> anyhow::Result<()> {
    let fleet = fleet(Vec::new()).await?;
    create_app(
        &fleet,
        json!({"name": "gh", "git_url": "https://github.com/acme/web.git", "git_ref": "main"}),
    )
    .await?;
    create_app(
        &fleet,
        json!({"name": "gl", "git_url": "git@gitlab.example:acme/api.git", "git_ref": "main"}),
    )
    .await?;
    // No git_ref: the app follows the repository's default branch.
    create_app(
        &fleet,
        json!({"name": "gt", "git_url": "http://127.0.0.1:3000/acme/site.git"}),
    )
    .await?;
    create_app(
        &fleet,
        json!({"name": "nosecret", "git_url": "https://github.com/acme/web.git"}),
    )
    .await?;
    let mut secrets = std::collections::HashMap::new();
    for app in ["gh", "gl", "gt"] {
        let (status, answer) = fleet
            .call(
                Method::POST,
                &format!("/v1/apps/{app}/webhook-secret"),
                None,
            )
            .await?;
        assert_eq!(status, 201, "{answer}");
        secrets.insert(app, answer);
    }
    let url =
        |app: &str, provider: &str| secrets[app]["urls"][provider].as_str().unwrap().to_owned();
    let secret = |app: &str| secrets[app]["secret"].as_str().unwrap().to_owned();
    let commit = "3f786850e387550fdab836ed7e6dc881de23001b";

    // GitHub: signed push to the app's branch, with another spelling of its URL.
    let body = github_push("refs/heads/main", commit, "https://github.com/Acme/Web");
    let signed = |s: &str, body: &[u8]| format!("sha256={}", hmac_hex(s, body));
    let delivery = Uuid::new_v4().to_string();
    let gh_headers = |sig: String, event: &str, delivery: &str| {
        vec![
            ("x-github-event", event.to_owned()),
            ("x-github-delivery", delivery.to_owned()),
            ("x-hub-signature-256", sig),
        ]
    };
    let (status, answer) = hook(
        &fleet,
        &url("gh", "github"),
        &gh_headers(signed(&secret("gh"), &body), "push", &delivery),
        &body,
    )
    .await?;
    assert_eq!(
        (status, &answer["deployed"]),
        (202, &json!(true)),
        "{answer}"
    );
    let id: Uuid = answer["id"].as_str().unwrap().parse()?;
    let sources = deployments_of(&fleet, "gh").await;
    assert_eq!(sources.len(), 1);
    assert_eq!(sources[0]["git_ref"], commit);
    assert_eq!(sources[0]["git_url"], "https://github.com/acme/web.git");
    assert_eq!(fleet.deployment(id).await?["state"], "queued");

    let before = (
        count(&fleet, "SELECT count(*) FROM deployments").await,
        count(&fleet, "SELECT count(*) FROM outbox").await,
    );
    // The same delivery again (a provider's retry) deploys nothing new.
    let (status, answer) = hook(
        &fleet,
        &url("gh", "github"),
        &gh_headers(signed(&secret("gh"), &body), "push", &delivery),
        &body,
    )
    .await?;
    assert_eq!(
        (status, &answer["deployed"]),
        (200, &json!(false)),
        "{answer}"
    );
    // Ping is answered.
    let ping = br#"{"zen":"Keep it logically awesome.","hook_id":1}"#;
    let (status, _) = hook(
        &fleet,
        &url("gh", "github"),
        &gh_headers(signed(&secret("gh"), ping), "ping", "p1"),
        ping,
    )
    .await?;
    assert_eq!(status, 200);
    // Refused: mis-signed (another secret, or a tampered body), unsigned.
    let (status, answer) = hook(
        &fleet,
        &url("gh", "github"),
        &gh_headers(signed("not-the-secret", &body), "push", "d2"),
        &body,
    )
    .await?;
    assert_eq!(
        (status, answer["code"].as_str()),
        (401, Some("webhook_bad_signature"))
    );
    let tampered = github_push(
        "refs/heads/main",
        &"a".repeat(40),
        "https://github.com/acme/web.git",
    );
    let (status, answer) = hook(
        &fleet,
        &url("gh", "github"),
        &gh_headers(signed(&secret("gh"), &body), "push", "d3"),
        &tampered,
    )
    .await?;
    assert_eq!(
        (status, answer["code"].as_str()),
        (401, Some("webhook_bad_signature"))
    );
    let (status, answer) = hook(
        &fleet,
        &url("gh", "github"),
        &[("x-github-event", "push".into())],
        &body,
    )
    .await?;
    assert_eq!(
        (status, answer["code"].as_str()),
        (401, Some("webhook_unsigned"))
    );
    // Signed but not for this app: another branch, a tag, a deletion, another repository.
    for (git_ref, after) in [
        ("refs/heads/dev", commit),
        ("refs/tags/v1.0.0", commit),
        ("refs/heads/main", &"0".repeat(40)[..]),
    ] {
        let body = github_push(git_ref, after, "https://github.com/acme/web.git");
        let (status, answer) = hook(
            &fleet,
            &url("gh", "github"),
            &gh_headers(
                signed(&secret("gh"), &body),
                "push",
                &Uuid::new_v4().to_string(),
            ),
            &body,
        )
        .await?;
        assert_eq!(
            (status, &answer["deployed"]),
            (200, &json!(false)),
            "{git_ref} {answer}"
        );
    }
    let elsewhere = github_push(
        "refs/heads/main",
        commit,
        "https://github.com/acme/other.git",
    );
    let elsewhere = String::from_utf8(elsewhere)?
        .replace(
            "git@github.com:acme/web.git",
            "git@github.com:acme/other.git",
        )
        .replace("github.com/acme/web\"", "github.com/acme/other\"");
    let (status, answer) = hook(
        &fleet,
        &url("gh", "github"),
        &gh_headers(signed(&secret("gh"), elsewhere.as_bytes()), "push", "d4"),
        elsewhere.as_bytes(),
    )
    .await?;
    assert_eq!(
        (status, answer["code"].as_str()),
        (422, Some("webhook_repo_mismatch")),
        "{answer}"
    );
    // Another app's secret does not open this app's hook; an app without a secret has none.
    let (status, _) = hook(
        &fleet,
        &url("gh", "github"),
        &gh_headers(signed(&secret("gl"), &body), "push", "d5"),
        &body,
    )
    .await?;
    assert_eq!(status, 401);
    let nosecret: Uuid = sqlx::query_scalar("SELECT id FROM apps WHERE name = 'nosecret'")
        .fetch_one(&fleet.db.pool)
        .await?;
    let (status, _) = hook(
        &fleet,
        &format!("/v1/hooks/github/{nosecret}"),
        &gh_headers(signed(&secret("gh"), &body), "push", "d6"),
        &body,
    )
    .await?;
    assert_eq!(status, 404);
    let huge = vec![b' '; 6 * 1024 * 1024];
    let (status, answer) = hook(
        &fleet,
        &url("gh", "github"),
        // The server stops reading: this connection must not be reused.
        &[
            gh_headers(signed(&secret("gh"), &huge), "push", "d7"),
            vec![("connection", "close".to_owned())],
        ]
        .concat(),
        &huge,
    )
    .await?;
    assert_eq!(
        (status, answer["code"].as_str()),
        (413, Some("body_too_large")),
        "{answer}"
    );
    let (status, _) = hook(
        &fleet,
        &format!("/v1/hooks/bitbucket/{nosecret}"),
        &[],
        &body,
    )
    .await?;
    assert_eq!(status, 404);
    assert_eq!(
        (
            count(&fleet, "SELECT count(*) FROM deployments").await,
            count(&fleet, "SELECT count(*) FROM outbox").await
        ),
        before,
        "refused and ignored deliveries wrote nothing"
    );
    assert_eq!(
        count(&fleet, "SELECT count(*) FROM webhook_deliveries").await,
        1
    );

    // GitLab: the secret token header; the project's SSH URL matches the app's.
    let gitlab = |git_ref: &str| {
        json!({
        "object_kind": "push", "event_name": "push", "before": "0".repeat(40), "after": commit,
        "ref": git_ref, "checkout_sha": commit, "user_username": "dev", "project_id": 15,
        "project": {"id": 15, "name": "api", "web_url": "http://gitlab.example/acme/api",
            "git_ssh_url": "git@gitlab.example:acme/api.git", "git_http_url": "http://gitlab.example/acme/api.git",
            "path_with_namespace": "acme/api", "default_branch": "main"},
        "commits": [], "total_commits_count": 0,
        "repository": {"name": "api", "url": "git@gitlab.example:acme/api.git", "homepage": "http://gitlab.example/acme/api"}
    }).to_string().into_bytes()
    };
    let gl_headers = |token: String| {
        vec![
            ("x-gitlab-event", "Push Hook".to_owned()),
            ("x-gitlab-event-uuid", Uuid::new_v4().to_string()),
            ("x-gitlab-token", token),
        ]
    };
    let (status, answer) = hook(
        &fleet,
        &url("gl", "gitlab"),
        &gl_headers(secret("gh")),
        &gitlab("refs/heads/main"),
    )
    .await?;
    assert_eq!(
        (status, answer["code"].as_str()),
        (401, Some("webhook_bad_signature"))
    );
    let (status, answer) = hook(
        &fleet,
        &url("gl", "gitlab"),
        &[("x-gitlab-event", "Push Hook".into())],
        &gitlab("refs/heads/main"),
    )
    .await?;
    assert_eq!(
        (status, answer["code"].as_str()),
        (401, Some("webhook_unsigned"))
    );
    let (status, answer) = hook(
        &fleet,
        &url("gl", "gitlab"),
        &gl_headers(secret("gl")),
        &gitlab("refs/heads/feature"),
    )
    .await?;
    assert_eq!((status, &answer["deployed"]), (200, &json!(false)));
    assert!(deployments_of(&fleet, "gl").await.is_empty());
    let (status, answer) = hook(
        &fleet,
        &url("gl", "gitlab"),
        &gl_headers(secret("gl")),
        &gitlab("refs/heads/main"),
    )
    .await?;
    assert_eq!(status, 202, "{answer}");
    let sources = deployments_of(&fleet, "gl").await;
    assert_eq!((sources.len(), &sources[0]["git_ref"]), (1, &json!(commit)));

    // Gitea: hex HMAC in X-Gitea-Signature; the app follows the default branch.
    let gitea = |git_ref: &str| {
        json!({
        "ref": git_ref, "before": "0".repeat(40), "after": commit, "compare_url": "",
        "commits": [], "total_commits": 0,
        "repository": {"id": 3, "full_name": "acme/site", "html_url": "http://127.0.0.1:3000/acme/site",
            "clone_url": "http://127.0.0.1:3000/acme/site.git", "ssh_url": "ssh://git@127.0.0.1:2222/acme/site.git",
            "default_branch": "trunk"},
        "pusher": {"login": "dev"}, "sender": {"login": "dev"}
    }).to_string().into_bytes()
    };
    let gt_headers = |sig: String| {
        vec![
            ("x-gitea-event", "push".to_owned()),
            ("x-gitea-delivery", Uuid::new_v4().to_string()),
            ("x-gitea-signature", sig),
        ]
    };
    let body = gitea("refs/heads/main");
    let (status, answer) = hook(
        &fleet,
        &url("gt", "gitea"),
        &gt_headers(hmac_hex(&secret("gt"), &body)),
        &body,
    )
    .await?;
    assert_eq!(
        (status, &answer["deployed"]),
        (200, &json!(false)),
        "main is not the default branch"
    );
    let body = gitea("refs/heads/trunk");
    let (status, answer) = hook(
        &fleet,
        &url("gt", "gitea"),
        &gt_headers(hmac_hex("wrong", &body)),
        &body,
    )
    .await?;
    assert_eq!(
        (status, answer["code"].as_str()),
        (401, Some("webhook_bad_signature"))
    );
    assert!(deployments_of(&fleet, "gt").await.is_empty());
    let (status, answer) = hook(
        &fleet,
        &url("gt", "gitea"),
        &gt_headers(hmac_hex(&secret("gt"), &body)),
        &body,
    )
    .await?;
    assert_eq!(status, 202, "{answer}");
    let sources = deployments_of(&fleet, "gt").await;
    assert_eq!(
        (sources.len(), &sources[0]["git_ref"], &sources[0]["branch"]),
        (1, &json!(commit), &json!("trunk"))
    );

    // The secret is never shown again, and is stored sealed.
    let (_, app) = fleet.call(Method::GET, "/v1/apps/gh", None).await?;
    assert_eq!(app["webhook"]["secret_set"], true);
    let (_, apps) = fleet.call(Method::GET, "/v1/apps", None).await?;
    for s in ["gh", "gl", "gt"] {
        assert!(!app.to_string().contains(&secret(s)) && !apps.to_string().contains(&secret(s)));
    }
    let sealed: Vec<Vec<u8>> = sqlx::query_scalar("SELECT sealed FROM app_webhook_secrets")
        .fetch_all(&fleet.db.pool)
        .await?;
    assert_eq!(sealed.len(), 3);
    for bytes in &sealed {
        for s in ["gh", "gl", "gt"] {
            assert!(!bytes
                .windows(secret(s).len())
                .any(|w| w == secret(s).as_bytes()));
        }
    }
    // Another project cannot make or remove this app's secret.
    let other = other_token(&fleet).await?;
    let status = fleet
        .client
        .post(format!("{}/v1/apps/gh/webhook-secret", fleet.api_url))
        .bearer_auth(&other)
        .send()
        .await?
        .status();
    assert_eq!(status.as_u16(), 404);
    // Removing the secret closes the hook.
    let (status, _) = fleet
        .call(Method::DELETE, "/v1/apps/gt/webhook-secret", None)
        .await?;
    assert_eq!(status, 204);
    let (status, _) = hook(
        &fleet,
        &url("gt", "gitea"),
        &gt_headers(hmac_hex(&secret("gt"), &body)),
        &body,
    )
    .await?;
    assert_eq!(status, 404);
    fleet.stop().await;
    Ok(())
}

/// Makes a source tree and archives it with the system's `tar` or `zip`.
fn archive_with_cli(kind: &str, marker: &str) -> Vec<u8> {
    let dir = tempdir();
    let src = dir.join("site");
    std::fs::create_dir_all(src.join("assets")).unwrap();
    std::fs::write(src.join("index.html"), format!("<h1>{marker}</h1>")).unwrap();
    std::fs::write(src.join("assets/app.js"), "console.log(1)").unwrap();
    std::os::unix::fs::symlink("index.html", src.join("home.html")).unwrap();
    let out = dir.join(format!("out.{kind}"));
    let status = match kind {
        "tar.gz" => Command::new("tar")
            .arg("czf")
            .arg(&out)
            .arg("-C")
            .arg(&dir)
            .arg("site")
            .status(),
        _ => Command::new("zip")
            .arg("-qry")
            .arg(&out)
            .arg("site")
            .current_dir(&dir)
            .status(),
    }
    .unwrap();
    assert!(status.success());
    let bytes = std::fs::read(&out).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    bytes
}

async fn upload(
    fleet: &Fleet,
    token: &str,
    app: &str,
    content_type: Option<&str>,
    bytes: Vec<u8>,
) -> anyhow::Result<(u16, Value)> {
    let mut request = fleet
        .client
        .post(format!("{}/v1/apps/{app}/versions", fleet.api_url))
        .bearer_auth(token)
        .body(bytes);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

#[tokio::test]
async fn archive_versions_round_trip_and_are_stored_once() -> anyhow::Result<()> {
    let fleet = fleet(vec![("SLIPWAY_MAX_ARCHIVE_SIZE", "256KiB".into())]).await?;
    create_app(&fleet, json!({"name": "site"})).await?;
    let token = fleet.token.clone();
    let tarball = archive_with_cli("tar.gz", "v1");
    let (status, first) = upload(
        &fleet,
        &token,
        "site",
        Some("application/gzip"),
        tarball.clone(),
    )
    .await?;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["sha256"], sha256sum(&tarball));
    assert_eq!(
        (first["format"].as_str(), first["size"].as_u64()),
        (Some("tar.gz"), Some(tarball.len() as u64))
    );
    assert_eq!(
        (first["files"].as_u64(), first["entries"].as_u64()),
        (Some(2), Some(5)),
        "{first}"
    );
    // The same bytes again: a second version, the same blob.
    let (status, second) = upload(
        &fleet,
        &token,
        "site",
        Some("application/x-gzip"),
        tarball.clone(),
    )
    .await?;
    assert_eq!(status, 201);
    assert_eq!(second["sha256"], first["sha256"]);
    assert_ne!(second["id"], first["id"]);
    assert_eq!(count(&fleet, "SELECT count(*) FROM source_blobs").await, 1);
    assert_eq!(count(&fleet, "SELECT count(*) FROM app_versions").await, 2);
    // A zip with no content type is recognised by its bytes.
    let zip = archive_with_cli("zip", "v2");
    let (status, third) = upload(&fleet, &token, "site", None, zip.clone()).await?;
    assert_eq!(
        (status, third["format"].as_str()),
        (201, Some("zip")),
        "{third}"
    );

    let (status, list) = fleet
        .call(Method::GET, "/v1/apps/site/versions?limit=2", None)
        .await?;
    assert_eq!(status, 200);
    assert_eq!(list["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(list["items"][0]["id"], third["id"], "newest first");
    let (_, rest) = fleet
        .call(
            Method::GET,
            &format!(
                "/v1/apps/site/versions?before={}",
                list["next"].as_str().unwrap()
            ),
            None,
        )
        .await?;
    assert_eq!(rest["items"][0]["id"], first["id"]);
    let first_id = first["id"].as_str().unwrap();
    let (status, read) = fleet
        .call(
            Method::GET,
            &format!("/v1/apps/site/versions/{first_id}"),
            None,
        )
        .await?;
    assert_eq!((status, &read["sha256"]), (200, &first["sha256"]));
    for (version, original, content_type) in [
        (first_id, &tarball, "application/gzip"),
        (third["id"].as_str().unwrap(), &zip, "application/zip"),
    ] {
        let response = fleet
            .client
            .get(format!(
                "{}/v1/apps/site/versions/{version}/archive",
                fleet.api_url
            ))
            .bearer_auth(&token)
            .send()
            .await?;
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(response.headers()["content-type"], content_type);
        assert_eq!(
            &response.bytes().await?.to_vec(),
            original,
            "identical bytes"
        );
    }

    // Deploy a version: its source names the version and its hash.
    let (status, answer) = fleet
        .call(
            Method::POST,
            "/v1/apps/site/deployments",
            Some(json!({"version": first_id})),
        )
        .await?;
    assert_eq!(status, 202, "{answer}");
    let deployment = fleet
        .deployment(answer["id"].as_str().unwrap().parse()?)
        .await?;
    assert_eq!(
        deployment["source"],
        json!({"version": first_id, "sha256": first["sha256"], "format": "tar.gz"})
    );
    let stored = sources::archive(&fleet.db.pool, first_id.parse()?)
        .await?
        .context("stored archive")?;
    assert_eq!(
        (stored.bytes, stored.sha256.as_str()),
        (tarball.clone(), first["sha256"].as_str().unwrap())
    );
    let (status, _) = fleet
        .call(
            Method::POST,
            "/v1/apps/site/deployments",
            Some(json!({"version": Uuid::now_v7()})),
        )
        .await?;
    assert_eq!(status, 404);
    let (status, _) = fleet
        .call(
            Method::POST,
            "/v1/apps/site/deployments",
            Some(json!({"version": first_id, "git_ref": "main"})),
        )
        .await?;
    assert_eq!(status, 422);

    // Another project sees none of it.
    let other = other_token(&fleet).await?;
    for path in [
        "/v1/apps/site/versions".to_owned(),
        format!("/v1/apps/site/versions/{first_id}"),
        format!("/v1/apps/site/versions/{first_id}/archive"),
    ] {
        let status = fleet
            .client
            .get(format!("{}{path}", fleet.api_url))
            .bearer_auth(&other)
            .send()
            .await?
            .status();
        assert_eq!(status.as_u16(), 404, "{path}");
    }
    let (status, _) = upload(
        &fleet,
        &other,
        "site",
        Some("application/gzip"),
        tarball.clone(),
    )
    .await?;
    assert_eq!(status, 404);

    // Refusals write nothing.
    let versions = count(&fleet, "SELECT count(*) FROM app_versions").await;
    let (status, answer) =
        upload(&fleet, &token, "site", Some("text/plain"), tarball.clone()).await?;
    assert_eq!(
        (status, answer["code"].as_str()),
        (415, Some("unsupported_media_type"))
    );
    let (status, answer) = upload(
        &fleet,
        &token,
        "site",
        Some("application/gzip"),
        b"\x1f\x8bnot really gzip".to_vec(),
    )
    .await?;
    assert_eq!(
        (status, answer["code"].as_str()),
        (422, Some("archive_invalid"))
    );
    let (status, answer) = upload(
        &fleet,
        &token,
        "site",
        Some("application/zip"),
        tarball.clone(),
    )
    .await?;
    assert_eq!(
        (status, answer["code"].as_str()),
        (422, Some("archive_invalid")),
        "content type and bytes disagree"
    );
    let mut noise = vec![0u8; 300 * 1024];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut noise)?;
    let big = {
        let dir = tempdir();
        std::fs::write(dir.join("noise.bin"), &noise)?;
        Command::new("tar")
            .arg("czf")
            .arg(dir.join("big.tgz"))
            .arg("-C")
            .arg(&dir)
            .arg("noise.bin")
            .status()?;
        std::fs::read(dir.join("big.tgz"))?
    };
    // Refused before it is read: this connection must not be reused.
    let response = fleet
        .client
        .post(format!("{}/v1/apps/site/versions", fleet.api_url))
        .bearer_auth(&token)
        .header("content-type", "application/gzip")
        .header("connection", "close")
        .body(big)
        .send()
        .await?;
    let status = response.status().as_u16();
    let answer: Value = response.json().await?;
    assert_eq!(
        (status, answer["code"].as_str()),
        (413, Some("archive_too_large")),
        "{answer}"
    );
    assert_eq!(
        count(&fleet, "SELECT count(*) FROM app_versions").await,
        versions
    );
    assert_eq!(count(&fleet, "SELECT count(*) FROM source_blobs").await, 2);

    // Deleting the app drops its blobs.
    let (status, _) = fleet
        .call(
            Method::POST,
            &format!("/v1/deployments/{}/cancel", answer_id(&deployment)),
            None,
        )
        .await?;
    assert_eq!(status, 200);
    let (status, answer) = fleet.call(Method::DELETE, "/v1/apps/site", None).await?;
    assert_eq!(status, 204, "{answer}");
    assert_eq!(count(&fleet, "SELECT count(*) FROM source_blobs").await, 0);
    fleet.stop().await;
    Ok(())
}

fn answer_id(deployment: &Value) -> String {
    deployment["id"].as_str().unwrap().to_owned()
}

/// Archives an attacker would make, by Python's tarfile and zipfile, which
/// write any name they are given.
fn crafted(kind: &str) -> Vec<u8> {
    let script = r#"
import io, sys, tarfile, zipfile
kind = sys.argv[1]
out = io.BytesIO()
def tar(add):
    with tarfile.open(fileobj=out, mode="w:gz") as t:
        ok = tarfile.TarInfo("app/index.html"); data = b"hi"; ok.size = len(data)
        t.addfile(ok, io.BytesIO(data))
        add(t)
def file(name):
    def add(t):
        i = tarfile.TarInfo(name); i.size = 4; t.addfile(i, io.BytesIO(b"evil"))
    return add
def link(name, target, type):
    def add(t):
        i = tarfile.TarInfo(name); i.type = type; i.linkname = target; t.addfile(i)
    return add
def special(name, type):
    def add(t):
        i = tarfile.TarInfo(name); i.type = type; t.addfile(i)
    return add
if kind == "tar-traversal": tar(file("app/../../evil.sh"))
elif kind == "tar-absolute": tar(file("/etc/cron.d/evil"))
elif kind == "tar-symlink-out": tar(link("app/passwd", "../../etc/passwd", tarfile.SYMTYPE))
elif kind == "tar-symlink-absolute": tar(link("app/root", "/", tarfile.SYMTYPE))
elif kind == "tar-hardlink-out": tar(link("app/shadow", "/etc/shadow", tarfile.LNKTYPE))
elif kind == "tar-fifo": tar(special("app/pipe", tarfile.FIFOTYPE))
elif kind.startswith("zip"):
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("app/index.html", "hi")
        if kind == "zip-traversal":
            z.writestr("../evil.txt", "evil")
        else:
            i = zipfile.ZipInfo("app/link"); i.external_attr = (0o120777 << 16)
            z.writestr(i, "../../../etc/passwd")
sys.stdout.buffer.write(out.getvalue())
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(kind)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[tokio::test]
async fn malicious_archives_are_refused_and_nothing_is_stored() -> anyhow::Result<()> {
    let fleet = fleet(Vec::new()).await?;
    create_app(&fleet, json!({"name": "site"})).await?;
    let token = fleet.token.clone();
    for (kind, entry) in [
        ("tar-traversal", "app/../../evil.sh"),
        ("tar-absolute", "/etc/cron.d/evil"),
        ("tar-symlink-out", "app/passwd"),
        ("tar-symlink-absolute", "app/root"),
        ("tar-hardlink-out", "app/shadow"),
        ("tar-fifo", "app/pipe"),
        ("zip-traversal", "../evil.txt"),
        ("zip-symlink-out", "app/link"),
    ] {
        let content_type = if kind.starts_with("zip") {
            "application/zip"
        } else {
            "application/gzip"
        };
        let (status, answer) =
            upload(&fleet, &token, "site", Some(content_type), crafted(kind)).await?;
        assert_eq!(
            (status, answer["code"].as_str()),
            (422, Some("archive_unsafe")),
            "{kind}: {answer}"
        );
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(&format!("`{entry}`")),
            "{kind}: the message names the entry: {message}"
        );
    }
    assert_eq!(count(&fleet, "SELECT count(*) FROM app_versions").await, 0);
    assert_eq!(count(&fleet, "SELECT count(*) FROM source_blobs").await, 0);
    fleet.stop().await;
    Ok(())
}

fn ssh_key(passphrase: &str) -> String {
    let dir = tempdir();
    let status = Command::new("ssh-keygen")
        .args([
            "-q", "-t", "ed25519", "-C", "deploy", "-N", passphrase, "-f",
        ])
        .arg(dir.join("key"))
        .status()
        .expect("ssh-keygen");
    assert!(status.success());
    let key = std::fs::read_to_string(dir.join("key")).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    key
}

#[tokio::test]
async fn git_credentials_are_sealed_and_never_shown() -> anyhow::Result<()> {
    let fleet = fleet(Vec::new()).await?;
    let token = "ghp_S3cretTokenValue0123456789abcdef";
    let app = create_app(
        &fleet,
        json!({"name": "private", "git_url": "https://github.com/acme/private.git", "git_ref": "main",
               "git_credential": {"token": token, "username": "deploy-bot"}}),
    )
    .await?;
    assert_eq!(app["git_credential"], json!({"kind": "token", "set": true}));
    assert!(!app.to_string().contains(token));
    let app_id: Uuid = app["id"].as_str().unwrap().parse()?;
    let (kind, sealed): (String, Vec<u8>) =
        sqlx::query_as("SELECT kind, sealed FROM app_git_credentials WHERE app_id = $1")
            .bind(app_id)
            .fetch_one(&fleet.db.pool)
            .await?;
    assert_eq!(kind, "token");
    assert!(
        !sealed.windows(token.len()).any(|w| w == token.as_bytes()),
        "stored sealed"
    );
    assert!(
        !sealed.windows(10).any(|w| w == b"deploy-bot"),
        "the username is sealed too"
    );
    match sources::git_credential(&fleet.db.pool, app_id, &secret_box()).await? {
        Some(StoredGitCredential::Token { username, token: t }) => {
            assert_eq!(
                (username.as_deref(), t.expose_secret()),
                (Some("deploy-bot"), token)
            );
        }
        other => panic!("expected the token back, got {other:?}"),
    }

    // Shape and fit are checked; a refused update changes nothing.
    let key = ssh_key("");
    for (body, code) in [
        (
            json!({"git_credential": {"token": ""}}),
            "invalid_git_credential",
        ),
        (
            json!({"git_credential": {"token": "a", "ssh_key": key}}),
            "invalid_git_credential",
        ),
        (
            json!({"git_credential": {"ssh_key": ssh_key("a passphrase")}}),
            "invalid_git_credential",
        ),
        (
            json!({"git_credential": {"ssh_key": "-----BEGIN NOTHING-----"}}),
            "invalid_git_credential",
        ),
        (
            json!({"git_credential": {"ssh_key": key}}),
            "git_credential_mismatch",
        ),
        (
            json!({"git_url": "git@github.com:acme/private.git"}),
            "git_credential_mismatch",
        ),
    ] {
        let (status, answer) = fleet
            .call(Method::PATCH, "/v1/apps/private", Some(body.clone()))
            .await?;
        assert_eq!(
            (status, answer["code"].as_str()),
            (422, Some(code)),
            "{body}: {answer}"
        );
    }
    let (_, app) = fleet.call(Method::GET, "/v1/apps/private", None).await?;
    assert_eq!(
        (
            app["git_credential"]["kind"].as_str(),
            app["git_url"].as_str()
        ),
        (Some("token"), Some("https://github.com/acme/private.git"))
    );

    // Switch to SSH with a deploy key and known hosts.
    let known_hosts = "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
    let (status, app) = fleet
        .call(
            Method::PATCH,
            "/v1/apps/private",
            Some(json!({"git_url": "git@github.com:acme/private.git",
            "git_credential": {"ssh_key": key, "known_hosts": known_hosts}})),
        )
        .await?;
    assert_eq!(status, 200, "{app}");
    assert_eq!(
        app["git_credential"],
        json!({"kind": "ssh_key", "set": true})
    );
    let (_, one) = fleet.call(Method::GET, "/v1/apps/private", None).await?;
    let (_, all) = fleet.call(Method::GET, "/v1/apps", None).await?;
    let secret_line = key.lines().nth(1).unwrap();
    for answer in [&app, &one, &all] {
        let text = answer.to_string();
        assert!(
            !text.contains(secret_line) && !text.contains(token) && !text.contains("PRIVATE KEY"),
            "{text}"
        );
    }
    match sources::git_credential(&fleet.db.pool, app_id, &secret_box()).await? {
        Some(StoredGitCredential::SshKey {
            private_key,
            known_hosts: hosts,
        }) => {
            assert_eq!(private_key.expose_secret(), &key);
            assert_eq!(hosts.as_deref(), Some(known_hosts));
        }
        other => panic!("expected the key back, got {other:?}"),
    }
    let sealed: Vec<u8> =
        sqlx::query_scalar("SELECT sealed FROM app_git_credentials WHERE app_id = $1")
            .bind(app_id)
            .fetch_one(&fleet.db.pool)
            .await?;
    assert!(!sealed
        .windows(secret_line.len())
        .any(|w| w == secret_line.as_bytes()));

    // A PATCH without the field keeps it; null removes it.
    let (status, app) = fleet
        .call(
            Method::PATCH,
            "/v1/apps/private",
            Some(json!({"git_ref": "release"})),
        )
        .await?;
    assert_eq!(
        (status, &app["git_credential"]["kind"]),
        (200, &json!("ssh_key"))
    );
    let (status, app) = fleet
        .call(
            Method::PATCH,
            "/v1/apps/private",
            Some(json!({"git_credential": null})),
        )
        .await?;
    assert_eq!((status, &app["git_credential"]), (200, &Value::Null));
    assert!(
        sources::git_credential(&fleet.db.pool, app_id, &secret_box())
            .await?
            .is_none()
    );
    assert!(
        !fleet.api.log_tail(10_000).contains(token),
        "the API log never holds the token"
    );
    fleet.stop().await;
    Ok(())
}
