//! `ssh` targets: the `/v1/targets` API through the real API binary (auth,
//! isolation, validation that writes nothing, keys never shown, 409 on
//! delete-in-use, a check of an unreachable target naming the problem), and
//! a deploy from git to live on a "server" that is a network namespace of
//! the test's own, with its own sshd and Caddy, through the real fleet.
//! Server setup on test hosts with their own root is in `setup`; servers
//! bought from the provider fakes in `servers`, and made from a server
//! image in `server_images`.

#[path = "cli/run.rs"]
#[allow(dead_code)]
mod cli_run;
mod common;
#[path = "deploy_ssh/host_deploy.rs"]
mod host_deploy;
#[path = "deploy_ssh/installs.rs"]
mod installs;
#[path = "deploy_ssh/server_images.rs"]
mod server_images;
#[path = "deploy_ssh/servers.rs"]
mod servers;
#[path = "deploy_ssh/setup.rs"]
mod setup;

use anyhow::Context;
use common::ssh::{self, SshServer};
use common::{example, Fleet, GitApp, Options, ADMIN_TOKEN};
use reqwest::Method;
use serde_json::{json, Value};
use slipway_testkit::caddy::Caddy;
use slipway_testkit::git::{seed_repo, ssh_keygen, GitDaemon};
use slipway_testkit::netns::Netns;
use slipway_testkit::registry::Registry;
use std::time::Duration;
use uuid::Uuid;

const TIMEOUT: Duration = Duration::from_secs(300);

async fn count(fleet: &Fleet, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&fleet.db.pool)
        .await
        .unwrap()
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

async fn call_as(
    fleet: &Fleet,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<(u16, Value)> {
    let mut request = fleet
        .client
        .request(method, format!("{}{path}", fleet.api_url))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await?;
    Ok((response.status().as_u16(), response.json().await?))
}

async fn log_text(fleet: &Fleet, deployment: &Value) -> anyhow::Result<String> {
    let id = deployment["id"].as_str().context("id")?;
    let (_, logs) = fleet
        .call(
            Method::GET,
            &format!("/v1/deployments/{id}/logs?limit=1000"),
            None,
        )
        .await?;
    Ok(logs["lines"]
        .as_array()
        .map(|lines| {
            lines
                .iter()
                .filter_map(|l| l["line"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default())
}

#[tokio::test]
async fn targets_are_project_resources_whose_keys_never_come_back() -> anyhow::Result<()> {
    let fleet = Fleet::start(Options {
        build_workers: 0,
        provision_workers: 1,
        deploy_workers: 0,
        env: vec![("SLIPWAY_SECRET_KEY", "ab".repeat(32))],
        ..Options::default()
    })
    .await?;
    let keys = tempfile::tempdir()?;
    let key = ssh_keygen(keys.path(), "target_key")?;
    let port = slipway_testkit::free_port();
    let known_hosts = "[127.0.0.1]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ8w\n";
    let good = json!({"name": "edge", "kind": "ssh", "host": "127.0.0.1", "port": port,
                      "user": "root", "ssh_key": key.private_key, "known_hosts": known_hosts});

    // No token, no targets.
    let answer = fleet
        .client
        .get(format!("{}/v1/targets", fleet.api_url))
        .send()
        .await?;
    assert_eq!(answer.status(), 401);

    // Bad input: 4xx with a code, and nothing written.
    let with = |key: &str, value: Value| {
        let mut body = good.clone();
        body[key] = value;
        body
    };
    let without = |key: &str| {
        let mut body = good.clone();
        body.as_object_mut().unwrap().remove(key);
        body
    };
    for (bad, code) in [
        (without("known_hosts"), "invalid_target"),
        (without("ssh_key"), "invalid_target"),
        (without("host"), "invalid_target"),
        (
            with("known_hosts", json!("# nothing pinned\n")),
            "invalid_target",
        ),
        (with("ssh_key", json!("not a key")), "invalid_target"),
        (
            with("host", json!("-oProxyCommand=touch /tmp/x")),
            "validation_failed",
        ),
        (with("user", json!("Root;id")), "validation_failed"),
        (with("kind", json!("cloud")), "validation_failed"),
        (with("name", json!("Bad Name")), "validation_failed"),
        (with("caddy_admin", json!("127.0.0.1")), "validation_failed"),
        (with("data_dir", json!("/var/../etc")), "validation_failed"),
        (with("engine", json!("lxc")), "validation_failed"),
        (
            {
                let mut body = with("engine", json!("docker"));
                body["containers_conf"] = json!("/etc/containers/containers.conf");
                body
            },
            "invalid_target",
        ),
        (
            json!({"name": "l", "kind": "local", "host": "h"}),
            "invalid_target",
        ),
    ] {
        let (status, answer) = fleet
            .call(Method::POST, "/v1/targets", Some(bad.clone()))
            .await?;
        assert_eq!(
            (status, answer["code"].as_str()),
            (422, Some(code)),
            "{bad} -> {answer}"
        );
    }
    let (status, answer) = fleet
        .call(
            Method::POST,
            "/v1/targets",
            Some(with("password", json!("x"))),
        )
        .await?;
    assert!((400..500).contains(&status), "{status} {answer}");
    assert_eq!(count(&fleet, "SELECT count(*) FROM targets").await, 0);

    // Created: the key is sealed, shown only as its fingerprint.
    let (status, target) = fleet
        .call(Method::POST, "/v1/targets", Some(good.clone()))
        .await?;
    assert_eq!(status, 201, "{target}");
    let fingerprint = std::process::Command::new("ssh-keygen")
        .arg("-lf")
        .arg(keys.path().join("target_key.pub"))
        .output()?;
    let fingerprint = String::from_utf8_lossy(&fingerprint.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    assert_eq!(target["has_key"], true, "{target}");
    assert_eq!(target["key_fingerprint"], fingerprint, "{target}");
    assert_eq!(target["settings"]["caddy_admin"], "127.0.0.1:2019");
    let key_body: Vec<&str> = key
        .private_key
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let (_, listed) = fleet.call(Method::GET, "/v1/targets", None).await?;
    for shown in [target.to_string(), listed.to_string()] {
        assert!(
            key_body.iter().all(|line| !shown.contains(line)),
            "the key leaked: {shown}"
        );
    }
    let sealed: Vec<u8> = sqlx::query_scalar("SELECT key_sealed FROM targets")
        .fetch_one(&fleet.db.pool)
        .await?;
    let sealed_text = String::from_utf8_lossy(&sealed);
    assert!(key_body.iter().all(|line| !sealed_text.contains(line)));
    let (status, _) = fleet
        .call(Method::POST, "/v1/targets", Some(good.clone()))
        .await?;
    assert_eq!(status, 409);

    // Another project sees none of it.
    let other = other_token(&fleet).await?;
    let id = target["id"].as_str().context("id")?;
    for (method, path) in [
        (Method::GET, format!("/v1/targets/{id}")),
        (Method::GET, "/v1/targets/edge".to_owned()),
        (Method::DELETE, format!("/v1/targets/{id}")),
        (Method::POST, format!("/v1/targets/{id}/check")),
    ] {
        let (status, answer) = call_as(&fleet, &other, method.clone(), &path, None).await?;
        assert_eq!(status, 404, "{method} {path}: {answer}");
    }
    let (_, theirs) = call_as(&fleet, &other, Method::GET, "/v1/targets", None).await?;
    assert_eq!(theirs["items"], json!([]));
    let (status, _) = call_as(
        &fleet,
        &other,
        Method::POST,
        "/v1/apps",
        Some(json!({"name": "x", "target": id})),
    )
    .await?;
    assert_eq!(status, 404);

    // An app placed on it keeps it from being deleted.
    let (status, app) = fleet
        .call(
            Method::POST,
            "/v1/apps",
            Some(json!({"name": "web", "target": "edge"})),
        )
        .await?;
    assert_eq!((status, &app["target"]), (201, &json!("edge")), "{app}");
    let (status, answer) = fleet.call(Method::DELETE, "/v1/targets/edge", None).await?;
    assert_eq!(
        (status, answer["code"].as_str()),
        (409, Some("target_in_use"))
    );
    assert!(answer["message"]
        .as_str()
        .unwrap_or_default()
        .contains("web"));
    let (_, shown) = fleet
        .call(Method::GET, &format!("/v1/targets/{id}"), None)
        .await?;
    assert_eq!(shown["apps"], json!(["web"]));

    // A check of a server nobody answers for says so, at once.
    let checked = ssh::check(&fleet, "edge").await?;
    assert_eq!(checked["state"], "failed", "{checked:#}\n{}", fleet.logs());
    assert_eq!(checked["error_code"], "target_unreachable", "{checked:#}");
    assert_eq!(
        (&checked["kind"], &checked["target"]),
        (&json!("target_check"), &json!("edge"))
    );
    let message = checked["error_message"].as_str().unwrap_or_default();
    assert!(
        message.contains("Connection refused") && message.contains(&port.to_string()),
        "{message}"
    );
    let (_, shown) = fleet.call(Method::GET, "/v1/targets/edge", None).await?;
    assert_eq!(shown["last_check"]["state"], "failed", "{shown:#}");
    assert_eq!(shown["last_check"]["deployment"], checked["id"]);

    // Moved back to the local target, the app frees it.
    let (status, app) = fleet
        .call(Method::PATCH, "/v1/apps/web", Some(json!({"target": null})))
        .await?;
    assert_eq!((status, &app["target"]), (200, &Value::Null), "{app}");
    let (status, _) = fleet.call(Method::DELETE, "/v1/targets/edge", None).await?;
    assert_eq!(status, 204);
    let (status, _) = fleet.call(Method::GET, "/v1/targets/edge", None).await?;
    assert_eq!(status, 404);
    fleet.stop().await;
    Ok(())
}

async fn deploy(fleet: &Fleet) -> anyhow::Result<Value> {
    ssh::deploy(fleet, "site").await
}

/// `GET /` of the app through the namespace's Caddy, over the veth.
async fn through_namespace_caddy(server: &SshServer) -> anyhow::Result<(u16, String)> {
    server.page("site.p.localhost").await
}

/// The static site as app `site` on target `ns` (health at `/healthz`).
async fn site_app(fleet: &Fleet) -> anyhow::Result<GitApp> {
    GitApp::create(
        fleet,
        "site",
        &example("static-site"),
        json!({"target": "ns", "runtime": {"health_path": "/healthz"}}),
    )
    .await
}

#[tokio::test]
async fn an_app_is_deployed_over_ssh_to_a_server_in_a_network_namespace() -> anyhow::Result<()> {
    let server = SshServer::start()?;
    let registry = Registry::start().await?;
    // The local target's Caddy, for the app's stay there.
    let local_caddy = Caddy::start().await?;
    let dirs = tempfile::tempdir()?;
    // The monitor runs often, so that a check of this host's loopback
    // instead of the target's would show in the status.
    let (admin, http) = (local_caddy.admin_url(), local_caddy.http_addr().to_owned());
    let fleet = Fleet::start(server.fleet_options(
        &registry,
        dirs.path(),
        &[
            ("SLIPWAY_HEALTH_MONITOR_INTERVAL", "1s"),
            ("SLIPWAY_CADDY_ADMIN", &admin),
            ("SLIPWAY_CADDY_HTTP_ADDR", &http),
            ("SLIPWAY_CADDY_SERVER", "apps"),
            ("SLIPWAY_CADDY_HTTPS_ADDR", "off"),
        ],
    ))
    .await?;
    let (ns, private_key, known_hosts) = (&server.ns, &server.private_key, &server.known_hosts);
    let data_dir = &server.data_dir;
    let containers_conf = &server.containers_conf;
    let (status, target) = fleet
        .call(Method::POST, "/v1/targets", Some(server.target_body("ns")))
        .await?;
    anyhow::ensure!(status == 201, "create target: {status} {target}");

    // A server lacking what a deploy needs: each missing item is named.
    let (status, answer) = fleet
        .call(
            Method::POST,
            "/v1/targets",
            Some(
                json!({"name": "bare", "kind": "ssh", "host": ns.addr, "user": "root",
                        "ssh_key": private_key, "known_hosts": known_hosts,
                        "caddy_admin": "127.0.0.1:2999", "data_dir": "/proc/slipway",
                        "containers_conf": "/nonexistent/containers.conf"}),
            ),
        )
        .await?;
    anyhow::ensure!(status == 201, "create target: {status} {answer}");
    let bare = ssh::check(&fleet, "bare").await?;
    assert_eq!(bare["state"], "failed", "{bare:#}");
    assert_eq!(bare["error_code"], "target_not_ready", "{bare:#}");
    let message = bare["error_message"].as_str().unwrap_or_default();
    for missing in [
        "podman is installed but fails",
        "folder /proc/slipway (cannot be created",
        "Caddy admin API 127.0.0.1:2999 on the target (Caddy is installed but its admin API does not answer; not started",
    ] {
        assert!(message.contains(missing), "{missing} in {message}");
    }

    // An installed Caddy that does not run is started, once.
    let spare_dir = ns.dir().join("spare");
    let (status, answer) = fleet
        .call(
            Method::POST,
            "/v1/targets",
            Some(
                json!({"name": "spare", "kind": "ssh", "host": ns.addr, "user": "root",
                        "ssh_key": private_key, "known_hosts": known_hosts,
                        "caddy_admin": "127.0.0.1:2998", "data_dir": spare_dir,
                        "containers_conf": containers_conf}),
            ),
        )
        .await?;
    anyhow::ensure!(status == 201, "create target: {status} {answer}");
    let started = ssh::check(&fleet, "spare").await?;
    assert_eq!(started["state"], "live", "{started:#}\n{}", fleet.logs());
    let logs = log_text(&fleet, &started).await?;
    assert!(logs.contains("started Caddy (pid"), "{logs}");
    let again = ssh::check(&fleet, "spare").await?;
    assert_eq!(again["state"], "live", "{again:#}");
    let logs = log_text(&fleet, &again).await?;
    assert!(logs.contains("nothing to change"), "{logs}");

    // Provisioning prepares the host once; a second run changes nothing.
    let first = ssh::check(&fleet, "ns").await?;
    assert_eq!(first["state"], "live", "{first:#}\n{}", fleet.logs());
    let logs = log_text(&fleet, &first).await?;
    assert!(
        logs.contains(&format!("created {}", data_dir.display())),
        "{logs}"
    );
    assert!(logs.contains("podman"), "{logs}");
    assert!(data_dir.is_dir());
    let second = ssh::check(&fleet, "ns").await?;
    assert_eq!(second["state"], "live", "{second:#}");
    let logs = log_text(&fleet, &second).await?;
    assert!(logs.contains("nothing to change"), "{logs}");
    assert!(logs.contains("registry answers on the target"), "{logs}");

    let site = site_app(&fleet).await?;
    let (repo, app_id) = (&site.repo, site.id.clone());
    let mut leftovers = ssh::Leftovers {
        app_id: app_id.clone(),
        tags: Vec::new(),
    };

    let deployed = deploy(&fleet).await?;
    leftovers.built(&registry, "site", &deployed);
    assert_eq!(deployed["state"], "live", "{deployed:#}\n{}", fleet.logs());
    assert_eq!(deployed["url"], "http://site.p.localhost:8080/");
    let logs = log_text(&fleet, &deployed).await?;
    assert!(logs.contains("deploying to ssh target ns"), "{logs}");
    for line in logs
        .lines()
        .filter(|l| l.contains("pulled in") || l.contains("switch "))
    {
        println!("over ssh: {line}");
    }

    // The page, through the namespace's Caddy, over the veth.
    let (status, text) = through_namespace_caddy(&server).await?;
    assert_eq!(status, 200, "{text}\n{}", ns.log_tail("caddy", 20));
    assert!(text.contains("static-site"), "{text}");

    // The release runs in the namespace: its port answers on the
    // namespace's loopback, not on this host's.
    let running = common::app_containers(&app_id, false);
    assert_eq!(running.len(), 1, "{running:?}");
    let port = String::from_utf8(
        std::process::Command::new("podman")
            .args(["port", &running[0], "8080/tcp"])
            .output()?
            .stdout,
    )?;
    let port = port
        .trim()
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    let inside = ns
        .command("curl")
        .args([
            "-sf",
            "-o",
            "/dev/null",
            &format!("http://127.0.0.1:{port}/healthz"),
        ])
        .status()?;
    assert!(inside.success(), "the release answers inside the namespace");
    let here = reqwest::Client::builder()
        .no_proxy()
        .build()?
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(here.is_err(), "the release is not on this host's loopback");

    // A volume add-on: made on the target by the next deploy, mounted there.
    let (status, volume) = fleet
        .call(
            Method::POST,
            "/v1/apps/site/addons",
            Some(json!({"kind": "volume", "name": "data", "mount": "/data"})),
        )
        .await?;
    assert_eq!(status, 201, "{volume}");
    let volume_name = volume["volume"]["name"]
        .as_str()
        .context("volume name")?
        .to_owned();

    // A new commit: the new release replaces the old one on the target.
    repo.push_change("main", "index.html", "<h1>second release</h1>\n")?;
    let second = deploy(&fleet).await?;
    leftovers.built(&registry, "site", &second);
    assert_eq!(second["state"], "live", "{second:#}\n{}", fleet.logs());
    let (status, text) = through_namespace_caddy(&server).await?;
    assert_eq!(
        (status, text.contains("second release")),
        (200, true),
        "{text}"
    );
    let now_running = common::app_containers(&app_id, false);
    assert_eq!(now_running.len(), 1, "the old release was stopped");
    assert_ne!(now_running, running);
    let logs = log_text(&fleet, &second).await?;
    assert!(
        logs.contains(&format!("add-on data (volume {volume_name}): created")),
        "{logs}"
    );
    let mounts = std::process::Command::new("podman")
        .args([
            "inspect",
            "--format",
            "{{range .Mounts}}{{.Name}}:{{.Destination}} {{end}}",
        ])
        .arg(&now_running[0])
        .output()?;
    assert!(
        String::from_utf8_lossy(&mounts.stdout).contains(&format!("{volume_name}:/data")),
        "the release mounts the volume: {}",
        String::from_utf8_lossy(&mounts.stdout)
    );

    // A release that never becomes healthy (checked through the SSH
    // connection) is removed there; the second one keeps serving.
    let (status, answer) = fleet
        .call(
            Method::PATCH,
            "/v1/apps/site",
            Some(
                json!({"runtime": {"health_path": "/no-such-path", "health_attempts": 3,
                                    "health_interval_ms": 100}}),
            ),
        )
        .await?;
    anyhow::ensure!(status == 200, "patch: {status} {answer}");
    repo.push_change("main", "index.html", "<h1>third release</h1>\n")?;
    let third = deploy(&fleet).await?;
    leftovers.built(&registry, "site", &third);
    assert_eq!(third["state"], "failed", "{third:#}");
    assert_eq!(third["error_code"], "health_check_failed", "{third:#}");
    let (status, text) = through_namespace_caddy(&server).await?;
    assert_eq!(
        (status, text.contains("second release")),
        (200, true),
        "{text}"
    );
    assert_eq!(
        common::app_containers(&app_id, false),
        now_running,
        "the failed release was removed"
    );

    // Moved to the local target and back: each deploy removes the release
    // and the route the app left on the target it moved from.
    let (status, answer) = fleet
        .call(
            Method::PATCH,
            "/v1/apps/site",
            Some(json!({"target": null, "runtime": {"health_path": "/healthz"}})),
        )
        .await?;
    anyhow::ensure!(status == 200, "patch: {status} {answer}");
    let moved = deploy(&fleet).await?;
    leftovers.built(&registry, "site", &moved);
    assert_eq!(moved["state"], "live", "{moved:#}\n{}", fleet.logs());
    let logs = log_text(&fleet, &moved).await?;
    assert!(logs.contains("the app moved from ssh target ns"), "{logs}");
    let (status, text) = common::through_caddy(&local_caddy, "site.p.localhost").await?;
    assert_eq!(
        (status, text.contains("third release")),
        (200, true),
        "{text}"
    );
    let (status, _) = through_namespace_caddy(&server).await?;
    assert_eq!(
        status, 404,
        "the app's route is gone from the target it left"
    );
    let local_running = common::app_containers(&app_id, false);
    assert_eq!(local_running.len(), 1, "{local_running:?}");
    assert_ne!(local_running, now_running, "the release on ns was removed");
    let (status, answer) = fleet
        .call(
            Method::PATCH,
            "/v1/apps/site",
            Some(json!({"target": "ns"})),
        )
        .await?;
    anyhow::ensure!(status == 200, "patch: {status} {answer}");
    let back = deploy(&fleet).await?;
    leftovers.built(&registry, "site", &back);
    assert_eq!(back["state"], "live", "{back:#}\n{}", fleet.logs());
    let logs = log_text(&fleet, &back).await?;
    assert!(
        logs.contains("the app moved from the local target"),
        "{logs}"
    );
    let (status, _) = common::through_caddy(&local_caddy, "site.p.localhost").await?;
    assert_eq!(status, 404, "the app's local route is gone");
    let (status, text) = through_namespace_caddy(&server).await?;
    assert_eq!(
        (status, text.contains("third release")),
        (200, true),
        "{text}"
    );
    let back_running = common::app_containers(&app_id, false);
    assert_eq!(back_running.len(), 1, "{back_running:?}");
    assert_ne!(back_running, local_running, "the local release was removed");

    // The target serves an app: it cannot be deleted.
    let (status, _) = fleet.call(Method::DELETE, "/v1/targets/ns", None).await?;
    assert_eq!(status, 409);

    operations_on_the_target(&fleet, &server, &app_id).await?;
    // The app is gone: so can its target be.
    let (status, answer) = fleet.call(Method::DELETE, "/v1/targets/ns", None).await?;
    assert_eq!(status, 204, "{answer}");

    fleet.stop().await;
    drop(leftovers);
    drop(server);
    Ok(())
}

/// An operation of the app, waited for until it ends.
async fn operate(fleet: &Fleet, method: Method, path: &str, body: Value) -> anyhow::Result<Value> {
    let (status, answer) = fleet.call(method, path, Some(body)).await?;
    anyhow::ensure!(status == 202, "{path}: {status} {answer}");
    let id: Uuid = answer["id"].as_str().context("id")?.parse()?;
    let done = fleet.wait_state(id, common::TERMINAL, TIMEOUT).await?;
    anyhow::ensure!(
        done["state"] == "live",
        "{path}: {done:#}\n{}",
        fleet.logs()
    );
    Ok(done)
}

async fn app_status(fleet: &Fleet) -> anyhow::Result<Value> {
    let (status, app) = fleet.call(Method::GET, "/v1/apps/site", None).await?;
    anyhow::ensure!(status == 200, "{status} {app}");
    Ok(app["status"].clone())
}

/// Scale, stop, start and destroy of the app act on the ssh target: its
/// containers (podman over SSH) and the route on the target's Caddy.
async fn operations_on_the_target(
    fleet: &Fleet,
    server: &SshServer,
    app_id: &str,
) -> anyhow::Result<()> {
    let (status, answer) = fleet
        .call(
            Method::PATCH,
            "/v1/apps/site",
            Some(json!({"runtime": {"health_path": "/healthz"}})),
        )
        .await?;
    anyhow::ensure!(status == 200, "patch: {status} {answer}");
    let scale = operate(
        fleet,
        Method::POST,
        "/v1/apps/site/scale",
        json!({"replicas": 2}),
    )
    .await?;
    let logs = log_text(fleet, &scale).await?;
    assert!(logs.contains("restart on ssh target ns"), "{logs}");
    assert_eq!(
        common::app_containers(app_id, false).len(),
        2,
        "two replicas run"
    );
    for _ in 0..4 {
        let (status, text) = through_namespace_caddy(server).await?;
        assert_eq!(
            (status, text.contains("third release")),
            (200, true),
            "{text}"
        );
    }
    let status = app_status(fleet).await?;
    assert_eq!(status["state"], "running", "{status:#}");
    assert_eq!(
        status["https_url"],
        Value::Null,
        "no HTTPS on ssh targets yet"
    );
    // The monitor (every second here) checks both replicas on the target,
    // through a forward to their ports there (this host's loopback has
    // nothing on them).
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let health = app_status(fleet).await?["health"].clone();
        let detail = health["detail"].as_str().unwrap_or_default();
        if detail.contains("on 2 replica(s)") {
            assert_eq!(health["ok"], true, "{health:#}");
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the monitor did not check the ssh app: {health:#}\n{}",
            fleet.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let stop = operate(fleet, Method::POST, "/v1/apps/site/stop", json!({})).await?;
    assert!(log_text(fleet, &stop)
        .await?
        .contains("stop on ssh target ns"));
    let (status, _) = through_namespace_caddy(server).await?;
    assert_eq!(status, 503, "the target's Caddy answers 503 while stopped");
    assert!(
        common::app_containers(app_id, false).is_empty(),
        "both replicas stopped"
    );
    assert_eq!(app_status(fleet).await?["state"], "stopped");

    operate(fleet, Method::POST, "/v1/apps/site/start", json!({})).await?;
    let (status, text) = through_namespace_caddy(server).await?;
    assert_eq!(
        (status, text.contains("third release")),
        (200, true),
        "{text}"
    );
    assert_eq!(common::app_containers(app_id, false).len(), 2);

    let (status, answer) = fleet
        .call(Method::DELETE, "/v1/apps/site?purge=true", None)
        .await?;
    assert_eq!(status, 202, "{answer}");
    let id: Uuid = answer["id"].as_str().context("id")?.parse()?;
    let destroy = fleet.wait_state(id, common::TERMINAL, TIMEOUT).await?;
    assert_eq!(destroy["state"], "live", "{destroy:#}\n{}", fleet.logs());
    let all = std::process::Command::new("podman")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=io.slipway.app={app_id}"),
        ])
        .output()?;
    assert!(
        String::from_utf8_lossy(&all.stdout).trim().is_empty(),
        "every container of the app is removed on the target"
    );
    let route = format!(
        "http://127.0.0.1:2019/id/slipway-app-{}",
        app_id.replace('-', "")
    );
    let answer = server
        .ns
        .command("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &route])
        .output()?;
    assert_eq!(
        String::from_utf8_lossy(&answer.stdout),
        "404",
        "the route is gone from the target's Caddy"
    );
    let (status, _) = fleet.call(Method::GET, "/v1/apps/site", None).await?;
    assert_eq!(status, 404);
    let volumes = std::process::Command::new("podman")
        .args([
            "volume",
            "ls",
            "-q",
            "--filter",
            &format!("name=slipway-{}", app_id.replace('-', "")),
        ])
        .output()?;
    assert!(
        String::from_utf8_lossy(&volumes.stdout).trim().is_empty(),
        "the purge removed the app's volume on the target"
    );
    Ok(())
}

/// HTTPS on an ssh target with certificates from an ACME CA: the target's
/// Caddy gets them for the app's host and custom domain by answering the
/// CA's HTTP-01 challenges on its port 80; the page then answers over
/// HTTPS with a chain a client trusting only that CA accepts. The CA runs
/// in the namespace too, and only it resolves the app's names (to the
/// namespace's address).
#[tokio::test]
async fn an_ssh_target_serves_https_with_certificates_from_an_acme_ca() -> anyhow::Result<()> {
    const HOST: &str = "site.p.localhost";
    const DOMAIN: &str = "shop.example.test";
    let mut ns = Netns::create()?;
    let (private_key, known_hosts) = ns.start_sshd()?;
    ns.start_caddy()?;
    let ca = ns.start_acme_ca(&[HOST, DOMAIN])?;
    let registry = Registry::start().await?;
    let dirs = tempfile::tempdir()?;
    let mut env = vec![
        ("SLIPWAY_REGISTRY", registry.addr().to_string()),
        ("SLIPWAY_BUILD_DIR", dirs.path().display().to_string()),
        ("SLIPWAY_BASE_DOMAIN", "localhost".to_string()),
        ("SLIPWAY_SECRET_KEY", "ab".repeat(32)),
    ];
    let containers_conf = std::env::var("CONTAINERS_CONF").ok();
    if let Some(conf) = &containers_conf {
        env.push(("CONTAINERS_CONF", conf.clone()));
    }
    let fleet = Fleet::start(Options {
        env,
        ..Options::default()
    })
    .await?;

    let mut body = json!({"name": "secure", "kind": "ssh", "host": ns.addr, "user": "root",
                          "ssh_key": private_key, "known_hosts": known_hosts,
                          "apps_addr": format!("{}:80", ns.addr),
                          "https_addr": format!("{}:443", ns.addr),
                          "acme_ca": ca.directory, "acme_email": "ops@example.test",
                          "acme_ca_root": ca.root_pem, "data_dir": ns.dir().join("data")});
    if let Some(conf) = &containers_conf {
        body["containers_conf"] = json!(conf);
    }
    let (status, target) = fleet.call(Method::POST, "/v1/targets", Some(body)).await?;
    anyhow::ensure!(status == 201, "create target: {status} {target}");
    assert_eq!(target["settings"]["tls"]["issuer"], "acme", "{target:#}");
    // ACME without an HTTPS address, or with a CA that is not https://, is
    // refused before anything is stored.
    for (bad, field) in [
        (json!({"tls_issuer": "acme"}), "https_addr"),
        (
            json!({"https_addr": "0.0.0.0:443", "acme_ca": "http://ca/directory"}),
            "acme_ca",
        ),
    ] {
        let mut body = json!({"name": "bad", "kind": "ssh", "host": ns.addr, "user": "root",
                              "ssh_key": private_key, "known_hosts": known_hosts});
        if let (Some(body), Some(bad)) = (body.as_object_mut(), bad.as_object()) {
            body.extend(bad.clone());
        }
        let (status, answer) = fleet.call(Method::POST, "/v1/targets", Some(body)).await?;
        assert_eq!(status, 422, "{answer}");
        assert!(answer["message"].to_string().contains(field), "{answer}");
    }

    let repos = tempfile::tempdir()?;
    seed_repo(repos.path(), "site", Some(&example("static-site")))?;
    let daemon = GitDaemon::start(repos.path())?;
    let (status, app) = fleet
        .call(
            Method::POST,
            "/v1/apps",
            Some(
                json!({"name": "site", "git_url": daemon.url("site"), "git_ref": "main",
                        "target": "secure", "domains": [DOMAIN],
                        "runtime": {"health_path": "/healthz"}}),
            ),
        )
        .await?;
    anyhow::ensure!(status == 201, "create app: {status} {app}");
    let app_id = app["id"].as_str().context("app id")?.to_owned();
    let mut leftovers = ssh::Leftovers {
        app_id: app_id.clone(),
        tags: Vec::new(),
    };
    let deployed = deploy(&fleet).await?;
    leftovers.built(&registry, "site", &deployed);
    assert_eq!(deployed["state"], "live", "{deployed:#}\n{}", fleet.logs());
    assert_eq!(
        deployed["https_url"], "https://site.p.localhost/",
        "{deployed:#}"
    );
    let logs = log_text(&fleet, &deployed).await?;
    assert!(logs.contains("HTTPS certificates ready"), "{logs}");

    // A client that trusts the ACME CA alone gets the page for both names.
    let root = reqwest::Certificate::from_pem(&std::fs::read(&ca.root_pem)?)?;
    let https: std::net::SocketAddr = format!("{}:443", ns.addr).parse()?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(root)
        .resolve(HOST, https)
        .resolve(DOMAIN, https)
        .timeout(Duration::from_secs(10))
        .build()?;
    for name in [HOST, DOMAIN] {
        let page = client.get(format!("https://{name}/")).send().await?;
        assert_eq!(page.status(), 200, "{name}");
        assert!(page.text().await?.contains("static-site"), "{name}");
    }
    // Not the target Caddy's own internal CA: a client trusting only that
    // one refuses the chain.
    let internal = ns
        .command("curl")
        .args(["-sf", "http://127.0.0.1:2019/pki/ca/local"])
        .output()?;
    let internal: Value = serde_json::from_slice(&internal.stdout)?;
    let internal_root = internal["root_certificate"]
        .as_str()
        .context("the target Caddy's internal root")?;
    let wrong = reqwest::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(internal_root.as_bytes())?)
        .resolve(DOMAIN, https)
        .timeout(Duration::from_secs(10))
        .build()?;
    assert!(wrong
        .get(format!("https://{DOMAIN}/"))
        .send()
        .await
        .is_err());

    // A database on the platform's loopback Postgres cannot serve a
    // release on this server: the deploy says so, the release serves on.
    let (status, answer) = fleet
        .call(
            Method::POST,
            "/v1/apps/site/addons",
            Some(json!({"kind": "postgres", "name": "db"})),
        )
        .await?;
    assert_eq!(status, 201, "{answer}");
    let refused = deploy(&fleet).await?;
    assert_eq!(refused["state"], "failed", "{refused:#}");
    assert_eq!(
        refused["error_code"], "addon_server_unreachable_from_target",
        "{refused:#}"
    );
    let page = client.get(format!("https://{DOMAIN}/")).send().await?;
    assert_eq!(page.status(), 200);

    fleet.stop().await;
    drop(leftovers);
    drop(ns);
    Ok(())
}

/// The names of the app's containers under the server's Docker engine.
fn docker_containers(server: &SshServer, app_id: &str, running_only: bool) -> Vec<String> {
    let docker = server.docker.as_ref().expect("a Docker server");
    docker
        .containers(&format!("io.slipway.app={app_id}"), running_only)
        .unwrap_or_else(|e| panic!("{e}\n{}", docker.log_tail(10)))
}

/// A server with Docker and no podman for Slipway: the target asks for
/// Docker, provisioning checks its daemon, and every engine step of a
/// deploy, a redeploy, the reconciler's repair and a destroy runs
/// `docker` over SSH. Nothing lands in this host's podman.
#[tokio::test]
async fn an_app_is_deployed_over_ssh_to_a_docker_server() -> anyhow::Result<()> {
    let mut server = SshServer::start_docker()?;
    let registry = Registry::start().await?;
    let dirs = tempfile::tempdir()?;
    let fleet = Fleet::start(server.fleet_options(
        &registry,
        dirs.path(),
        &[
            ("SLIPWAY_RECONCILE_INTERVAL", "1s"),
            ("SLIPWAY_IMAGES_KEPT", "1"),
        ],
    ))
    .await?;
    let checked = server.add_target(&fleet, "ns").await?;
    let logs = log_text(&fleet, &checked).await?;
    assert!(logs.contains("container engine: docker 20.10"), "{logs}");
    assert!(logs.contains("recorded engine docker"), "{logs}");
    let (_, target) = fleet.call(Method::GET, "/v1/targets/ns", None).await?;
    assert_eq!(target["engine"], "docker", "{target:#}");
    assert_eq!(target["settings"]["engine"], "docker", "{target:#}");

    // A target that names no engine: this server has a working podman too,
    // which comes first. Once recorded, an engine stays: a check finding
    // Docker recorded keeps Docker though podman works as well.
    let mut auto = server.target_body("auto");
    auto.as_object_mut().context("body")?.remove("engine");
    if let Some(conf) = &server.containers_conf {
        auto["containers_conf"] = json!(conf);
    }
    let (status, answer) = fleet.call(Method::POST, "/v1/targets", Some(auto)).await?;
    anyhow::ensure!(status == 201, "create target: {status} {answer}");
    let found = ssh::check(&fleet, "auto").await?;
    assert_eq!(found["state"], "live", "{found:#}\n{}", fleet.logs());
    let logs = log_text(&fleet, &found).await?;
    assert!(logs.contains("container engine: podman"), "{logs}");
    let (_, target) = fleet.call(Method::GET, "/v1/targets/auto", None).await?;
    assert_eq!(target["engine"], "podman", "{target:#}");
    sqlx::query("UPDATE targets SET engine = 'docker' WHERE name = 'auto'")
        .execute(&fleet.db.pool)
        .await?;
    let kept = ssh::check(&fleet, "auto").await?;
    assert_eq!(kept["state"], "live", "{kept:#}");
    let logs = log_text(&fleet, &kept).await?;
    assert!(logs.contains("container engine: docker"), "{logs}");
    assert!(logs.contains("nothing to change"), "{logs}");
    let (status, _) = fleet.call(Method::DELETE, "/v1/targets/auto", None).await?;
    assert_eq!(status, 204);

    // No health path: the listening check reads the container's state
    // and its /proc over SSH through Docker's `inspect`.
    let site = GitApp::create(
        &fleet,
        "site",
        &example("static-site"),
        json!({"target": "ns"}),
    )
    .await?;
    let (repo, app_id) = (&site.repo, site.id.clone());
    let mut leftovers = ssh::Leftovers {
        app_id: app_id.clone(),
        tags: Vec::new(),
    };
    let (status, volume) = fleet
        .call(
            Method::POST,
            "/v1/apps/site/addons",
            Some(json!({"kind": "volume", "name": "data", "mount": "/data"})),
        )
        .await?;
    assert_eq!(status, 201, "{volume}");
    let volume_name = volume["volume"]["name"]
        .as_str()
        .context("volume name")?
        .to_owned();

    let deployed = deploy(&fleet).await?;
    leftovers.built(&registry, "site", &deployed);
    assert_eq!(deployed["state"], "live", "{deployed:#}\n{}", fleet.logs());
    let logs = log_text(&fleet, &deployed).await?;
    assert!(
        logs.contains(&format!("add-on data (volume {volume_name}): created")),
        "{logs}"
    );
    assert!(
        logs.contains("healthy: port 8080 listening inside the container"),
        "{logs}"
    );
    let (status, text) = through_namespace_caddy(&server).await?;
    assert_eq!(status, 200, "{text}\n{}", server.ns.log_tail("caddy", 20));
    assert!(text.contains("static-site"), "{text}");
    let first = docker_containers(&server, &app_id, true);
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(
        common::app_containers(&app_id, true).is_empty(),
        "nothing of the app in this host's podman"
    );
    let docker = server.docker.as_ref().context("docker")?;
    let mounts = docker.docker(&[
        "inspect",
        "--format",
        "{{range .Mounts}}{{.Name}}:{{.Destination}} {{end}}",
        &first[0],
    ])?;
    assert!(
        String::from_utf8_lossy(&mounts.stdout).contains(&format!("{volume_name}:/data")),
        "the release mounts the volume: {}",
        String::from_utf8_lossy(&mounts.stdout)
    );

    // A new commit: the new release replaces the old one.
    repo.push_change("main", "index.html", "<h1>second release</h1>\n")?;
    let second = deploy(&fleet).await?;
    leftovers.built(&registry, "site", &second);
    assert_eq!(second["state"], "live", "{second:#}\n{}", fleet.logs());
    let (status, text) = through_namespace_caddy(&server).await?;
    assert_eq!(
        (status, text.contains("second release")),
        (200, true),
        "{text}"
    );
    let now = docker_containers(&server, &app_id, false);
    assert_eq!(now.len(), 1, "the old release was removed: {now:?}");
    assert_ne!(now, first);
    // Its image too (one kept per app here); the new one stays.
    let logs = log_text(&fleet, &second).await?;
    assert!(logs.contains("pruned 1 old image(s) of the app"), "{logs}");
    let images = docker.docker(&[
        "images",
        "--digests",
        "--format",
        "{{.Repository}} {{.Digest}}",
    ])?;
    let images = String::from_utf8_lossy(&images.stdout);
    let digests: Vec<&str> = images
        .lines()
        .filter(|l| l.contains("/slipway/p-site "))
        .collect();
    assert_eq!(digests.len(), 1, "{images}");
    let image_ref = docker.docker(&["inspect", "--format", "{{.Config.Image}}", &now[0]])?;
    let image_ref = String::from_utf8_lossy(&image_ref.stdout);
    let kept_digest = digests[0].split_whitespace().nth(1).unwrap_or("none");
    assert!(
        image_ref.contains(kept_digest),
        "{image_ref} runs {kept_digest}"
    );

    // The reconciler finds the release gone (Docker's `ps` lines) and
    // starts it again.
    let removed = docker.docker(&["rm", "--force", &now[0]])?;
    assert!(removed.status.success(), "{removed:?}");
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let (status, text) = through_namespace_caddy(&server).await?;
        if status == 200 && text.contains("second release") {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the reconciler did not bring the release back: {status} {text}\n{}",
            fleet.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let back = docker_containers(&server, &app_id, true);
    assert_eq!(back.len(), 1);

    // A stopped container is started again; Docker publishes it on a new
    // port, which the route follows.
    let stopped = docker.docker(&["stop", "-t", "0", &back[0]])?;
    assert!(stopped.status.success(), "{stopped:?}");
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let (status, text) = through_namespace_caddy(&server).await?;
        let running = docker_containers(&server, &app_id, true);
        if status == 200 && text.contains("second release") && running == back {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the reconciler did not start the stopped release: {status} {text}\n{}",
            fleet.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Stop and start: `docker stop -t`, the route answering 503 meanwhile.
    operate(&fleet, Method::POST, "/v1/apps/site/stop", json!({})).await?;
    let (status, _) = through_namespace_caddy(&server).await?;
    assert_eq!(status, 503, "stopped");
    assert!(docker_containers(&server, &app_id, true).is_empty());
    operate(&fleet, Method::POST, "/v1/apps/site/start", json!({})).await?;
    let (status, text) = through_namespace_caddy(&server).await?;
    assert_eq!(
        (status, text.contains("second release")),
        (200, true),
        "{text}"
    );
    assert_eq!(docker_containers(&server, &app_id, true).len(), 1);

    // Destroyed with its volume: nothing of it stays on the server.
    let (status, answer) = fleet
        .call(Method::DELETE, "/v1/apps/site?purge=true", None)
        .await?;
    assert_eq!(status, 202, "{answer}");
    let id: Uuid = answer["id"].as_str().context("id")?.parse()?;
    let destroy = fleet.wait_state(id, common::TERMINAL, TIMEOUT).await?;
    assert_eq!(destroy["state"], "live", "{destroy:#}\n{}", fleet.logs());
    assert!(docker_containers(&server, &app_id, false).is_empty());
    let volumes = docker.docker(&["volume", "ls", "--quiet"])?;
    assert!(volumes.status.success(), "{volumes:?}");
    assert!(
        !String::from_utf8_lossy(&volumes.stdout).contains(&volume_name),
        "the purge removed the volume"
    );

    // A Docker whose daemon is gone: the check says so.
    server.docker = None;
    let gone = ssh::check(&fleet, "ns").await?;
    assert_eq!(gone["state"], "failed", "{gone:#}");
    assert_eq!(gone["error_code"], "target_not_ready", "{gone:#}");
    let message = gone["error_message"].as_str().unwrap_or_default();
    assert!(
        message.contains("docker is installed but its daemon does not answer"),
        "{message}"
    );

    fleet.stop().await;
    drop(leftovers);
    drop(server);
    Ok(())
}
