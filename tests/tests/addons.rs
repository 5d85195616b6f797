//! Add-ons through the real fleet on the local target: a postgres add-on is
//! created on a real Postgres server by the provision stage and reached by
//! the app through `DATABASE_URL`; a volume is mounted into the release;
//! both keep their data across a redeploy, a restart and a container the
//! reconciler re-creates, and are dropped only when purged (one by one, or
//! all of them with a destroy that says `purge`).
//! Plus the API's validation, masking and project isolation.

mod common;

use anyhow::Context;
use common::{Fleet, Options, ADMIN_TOKEN};
use reqwest::Method;
use serde_json::{json, Value};
use slipway_testkit::caddy::Caddy;
use slipway_testkit::git::{seed_repo, GitDaemon};
use slipway_testkit::registry::Registry;
use slipway_testkit::PgCluster;
use sqlx::{Connection, PgConnection};
use std::path::Path;
use std::time::Duration;

const DEPLOY_TIMEOUT: Duration = Duration::from_secs(300);

/// Removes the app's containers and volumes when the test ends, passed or
/// not (a purge removes the volume in a passing run already; the databases
/// go with the test's own Postgres cluster).
struct Leftovers {
    app_id: String,
    volumes: Vec<String>,
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        let podman = |args: &[&str]| std::process::Command::new("podman").args(args).output();
        let filter = format!("label=io.slipway.app={}", self.app_id);
        if let Ok(listed) = podman(&["ps", "-aq", "--filter", &filter]) {
            for id in String::from_utf8_lossy(&listed.stdout).split_whitespace() {
                let _ = podman(&["rm", "-f", "-t", "0", id]);
            }
        }
        for volume in &self.volumes {
            let _ = podman(&["volume", "rm", "-f", volume]);
        }
    }
}

async fn deploy(fleet: &Fleet, app: &str) -> anyhow::Result<Value> {
    run(fleet, &format!("/v1/apps/{app}/deployments")).await
}

/// POSTs a deployment or an operation and waits for its end.
async fn run(fleet: &Fleet, path: &str) -> anyhow::Result<Value> {
    let (status, answer) = fleet.call(Method::POST, path, Some(json!({}))).await?;
    anyhow::ensure!(status == 202, "deploy: {status} {answer}");
    let id = answer["id"].as_str().context("id")?.parse()?;
    fleet.wait_state(id, common::TERMINAL, DEPLOY_TIMEOUT).await
}

/// GET `path` of the app through Caddy.
async fn app_get(caddy: &Caddy, host: &str, path: &str) -> anyhow::Result<(u16, Value)> {
    let answer = reqwest::Client::new()
        .get(format!("http://{}{path}", caddy.http_addr()))
        .header("host", host)
        .timeout(Duration::from_secs(20))
        .send()
        .await?;
    let status = answer.status().as_u16();
    let text = answer.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

async fn database_exists(server: &PgCluster, name: &str) -> anyhow::Result<bool> {
    let mut conn = PgConnection::connect(&server.admin_url()).await?;
    let exists = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(name)
        .fetch_one(&mut conn)
        .await?;
    Ok(exists)
}

/// A test-owned Postgres server that checks passwords (SCRAM) for every
/// role but its `postgres` admin, so the app's connection proves the
/// password it was given is the role's.
async fn password_checking_cluster() -> anyhow::Result<PgCluster> {
    let cluster = PgCluster::start().await?;
    std::fs::write(
        cluster.data_dir().join("pg_hba.conf"),
        "local all all trust\nhost all postgres 127.0.0.1/32 trust\n\
         host all all 127.0.0.1/32 scram-sha-256\n",
    )?;
    let mut conn = PgConnection::connect(&cluster.admin_url()).await?;
    sqlx::query("SELECT pg_reload_conf()")
        .execute(&mut conn)
        .await?;
    Ok(cluster)
}

/// Whether `role` may log in to `db` on the cluster with `password`.
async fn can_log_in(server: &PgCluster, role: &str, password: &str, db: &str) -> bool {
    let url = format!(
        "postgres://{role}:{password}@127.0.0.1:{}/{db}",
        server.port()
    );
    PgConnection::connect(&url).await.is_ok()
}

fn volume_exists(name: &str) -> bool {
    std::process::Command::new("podman")
        .args(["volume", "exists", name])
        .status()
        .is_ok_and(|s| s.success())
}

/// How long each stage's attempts took, for the test's output (figures,
/// not assertions).
fn stage_times(deployment: &Value) -> String {
    let at = |a: &Value, key: &str| {
        a[key]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    };
    let attempts = deployment["attempts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    attempts
        .iter()
        .filter_map(|a| {
            let took = at(a, "finished_at")? - at(a, "claimed_at")?;
            Some(format!(
                "{} {} ms",
                a["stage"].as_str()?,
                took.num_milliseconds()
            ))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

async fn deployment_logs(fleet: &Fleet, id: &Value) -> anyhow::Result<String> {
    let id = id.as_str().unwrap_or_default();
    let path = format!("/v1/deployments/{id}/logs?limit=1000");
    let (_, logs) = fleet.call(Method::GET, &path, None).await?;
    Ok(logs.to_string())
}

#[tokio::test]
async fn a_database_and_a_volume_reach_the_app_and_survive_redeploys() -> anyhow::Result<()> {
    let registry = Registry::start().await?;
    let caddy = Caddy::start().await?;
    let server = password_checking_cluster().await?;
    let dirs = tempfile::tempdir()?;
    let mut env = vec![
        ("SLIPWAY_REGISTRY", registry.addr().to_string()),
        ("SLIPWAY_BUILD_DIR", dirs.path().display().to_string()),
        ("SLIPWAY_CADDY_ADMIN", caddy.admin_url().to_string()),
        ("SLIPWAY_CADDY_HTTP_ADDR", caddy.http_addr().to_string()),
        ("SLIPWAY_CADDY_SERVER", "apps".to_string()),
        ("SLIPWAY_CADDY_HTTPS_ADDR", "off".to_string()),
        ("SLIPWAY_RECONCILE_INTERVAL", "1s".to_string()),
        ("SLIPWAY_SECRET_KEY", "ab".repeat(32)),
        ("SLIPWAY_ADDON_POSTGRES_URL", server.admin_url()),
    ];
    if let Ok(conf) = std::env::var("CONTAINERS_CONF") {
        env.push(("CONTAINERS_CONF", conf));
    }
    let fleet = Fleet::start(Options {
        env,
        ..Options::default()
    })
    .await?;
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/addon-app");
    let repos = tempfile::tempdir()?;
    let repo = seed_repo(repos.path(), "notes", Some(&source))?;
    let daemon = GitDaemon::start(repos.path())?;
    let (status, app) = fleet
        .call(
            Method::POST,
            "/v1/apps",
            Some(json!({"name": "notes", "git_url": daemon.url("notes"), "git_ref": "main"})),
        )
        .await?;
    anyhow::ensure!(status == 201, "create app: {status} {app}");
    let mut leftovers = Leftovers {
        app_id: app["id"].as_str().context("app id")?.to_owned(),
        volumes: Vec::new(),
    };
    let addons = "/v1/apps/notes/addons";
    let (status, db) = fleet
        .call(
            Method::POST,
            addons,
            Some(json!({"kind": "postgres", "name": "db"})),
        )
        .await?;
    assert_eq!(status, 201, "{db}");
    assert_eq!(
        (db["state"].as_str(), db["postgres"]["password"].as_str()),
        (Some("pending"), Some("********"))
    );
    let db_name = db["postgres"]["database"]
        .as_str()
        .context("database")?
        .to_owned();
    let (status, volume) = fleet
        .call(
            Method::POST,
            addons,
            Some(json!({"kind": "volume", "name": "data", "mount": "/data"})),
        )
        .await?;
    assert_eq!(status, 201, "{volume}");
    let volume_name = volume["volume"]["name"]
        .as_str()
        .context("volume")?
        .to_owned();
    leftovers.volumes.push(volume_name.clone());

    let host = "notes.p.localhost";
    let first = deploy(&fleet, "notes").await?;
    assert_eq!(first["state"], "live", "{first:#}\n{}", fleet.logs());
    eprintln!("first deployment: {}", stage_times(&first));
    assert!(
        database_exists(&server, &db_name).await?,
        "the provision stage created {db_name}"
    );
    assert!(volume_exists(&volume_name));
    let (status, answer) = app_get(&caddy, host, "/db/write/first").await?;
    assert_eq!(status, 200, "the app writes to its database: {answer}");
    let (status, answer) = app_get(&caddy, host, "/file/write/first").await?;
    assert_eq!(status, 200, "the app writes to its volume: {answer}");
    let (_, env_seen) = app_get(&caddy, host, "/env").await?;
    let password = env_seen["password"]
        .as_str()
        .context("password in the app")?
        .to_owned();
    assert!(password.len() >= 32, "{env_seen}");
    assert!(can_log_in(&server, &db_name, &password, &db_name).await);
    assert!(!can_log_in(&server, &db_name, "wrong", &db_name).await);
    let mut admin = PgConnection::connect(&server.admin_url()).await?;
    sqlx::query("CREATE ROLE stranger LOGIN PASSWORD 'stranger'")
        .execute(&mut admin)
        .await?;
    assert!(can_log_in(&server, "stranger", "stranger", "postgres").await);
    assert!(
        !can_log_in(&server, "stranger", "stranger", &db_name).await,
        "another role may not connect to the add-on's database"
    );
    let logs = deployment_logs(&fleet, &first["id"]).await?;
    assert!(
        logs.contains(":***@10.0.2.2"),
        "the URL is logged redacted: {logs}"
    );
    assert!(
        !logs.contains(&password),
        "the password never reaches the logs"
    );
    let (_, listed) = fleet.call(Method::GET, addons, None).await?;
    assert!(!listed.to_string().contains(&password), "{listed}");
    // The app prints its DATABASE_URL on start: the runtime logs hold the
    // line with the password redacted.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let runtime = loop {
        let (status, logs) = fleet.call(Method::GET, "/v1/apps/notes/logs", None).await?;
        assert_eq!(status, 200, "{logs}");
        let text = logs["lines"].to_string();
        if text.contains("starting with DATABASE_URL=") {
            break text;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "no start line in the runtime logs: {logs}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(!runtime.contains(&password), "{runtime}");
    assert!(runtime.contains("[REDACTED]@10.0.2.2"), "{runtime}");
    let states: Vec<&str> = listed["items"]
        .as_array()
        .context("items")?
        .iter()
        .filter_map(|a| a["state"].as_str())
        .collect();
    assert_eq!(states, ["ready", "ready"], "{listed:#}");

    // A new commit: a new release, the same database and volume.
    repo.push_change("main", "VERSION", "2\n")?;
    let second = deploy(&fleet, "notes").await?;
    assert_eq!(second["state"], "live", "{second:#}\n{}", fleet.logs());
    assert_ne!(second["image_digest"], first["image_digest"]);
    let (status, notes) = app_get(&caddy, host, "/db/read").await?;
    assert_eq!(
        (status, &notes["notes"]),
        (200, &json!(["first"])),
        "{notes}"
    );
    let (status, lines) = app_get(&caddy, host, "/file/read").await?;
    assert_eq!(
        (status, &lines["lines"]),
        (200, &json!(["first"])),
        "{lines}"
    );
    let logs = deployment_logs(&fleet, &second["id"]).await?;
    assert!(logs.contains("exists; nothing to change"), "{logs}");
    eprintln!("second deployment: {}", stage_times(&second));
    // A restart (an operation, not a build) links them the same way.
    let restart = run(&fleet, "/v1/apps/notes/restart").await?;
    assert_eq!(restart["state"], "live", "{restart:#}\n{}", fleet.logs());
    let (status, notes) = app_get(&caddy, host, "/db/read").await?;
    assert_eq!(
        (status, &notes["notes"]),
        (200, &json!(["first"])),
        "{notes}"
    );
    let (status, lines) = app_get(&caddy, host, "/file/read").await?;
    assert_eq!(
        (status, &lines["lines"]),
        (200, &json!(["first"])),
        "{lines}"
    );

    // A container that disappears is re-created by the reconciler with
    // its add-ons.
    let running = common::app_containers(&leftovers.app_id, false);
    assert_eq!(running.len(), 1, "{running:?}");
    std::process::Command::new("podman")
        .args(["rm", "-f", "-t", "0", &running[0]])
        .output()?;
    let mut answer = (0, Value::Null);
    for _ in 0..120 {
        answer = app_get(&caddy, host, "/db/read")
            .await
            .unwrap_or((0, Value::Null));
        if answer.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        (answer.0, &answer.1["notes"]),
        (200, &json!(["first"])),
        "{answer:?}\n{}",
        fleet.logs()
    );
    let (status, lines) = app_get(&caddy, host, "/file/read").await?;
    assert_eq!(
        (status, &lines["lines"]),
        (200, &json!(["first"])),
        "{lines}"
    );

    // Purged: the database goes at the next deployment, which no longer
    // links either add-on; the volume goes once no release uses it.
    for name in ["db", "data"] {
        let path = format!("{addons}/{name}?purge=true");
        let (status, answer) = fleet.call(Method::DELETE, &path, None).await?;
        assert_eq!(
            (status, answer["state"].as_str()),
            (202, Some("purging")),
            "{answer}"
        );
    }
    let third = deploy(&fleet, "notes").await?;
    assert_eq!(third["state"], "live", "{third:#}\n{}", fleet.logs());
    assert!(
        !database_exists(&server, &db_name).await?,
        "{db_name} was dropped"
    );
    let (_, env_seen) = app_get(&caddy, host, "/env").await?;
    assert_eq!(env_seen["database_url"], Value::Null, "{env_seen}");
    let fourth = deploy(&fleet, "notes").await?;
    assert_eq!(fourth["state"], "live", "{fourth:#}\n{}", fleet.logs());
    assert!(!volume_exists(&volume_name), "the volume was removed");
    let (_, listed) = fleet.call(Method::GET, addons, None).await?;
    assert_eq!(listed["items"], json!([]), "{listed:#}");

    // Destroyed with purge: containers first, then the data of every
    // add-on, then the app.
    let mut kept = Vec::new();
    for addon in [
        json!({"kind": "postgres", "name": "db2"}),
        json!({"kind": "volume", "name": "data2", "mount": "/data"}),
    ] {
        let (status, created) = fleet.call(Method::POST, addons, Some(addon)).await?;
        assert_eq!(status, 201, "{created}");
        kept.push(created);
    }
    let db2 = kept[0]["postgres"]["database"]
        .as_str()
        .context("database")?
        .to_owned();
    let volume2 = kept[1]["volume"]["name"]
        .as_str()
        .context("volume")?
        .to_owned();
    leftovers.volumes.push(volume2.clone());
    let fifth = deploy(&fleet, "notes").await?;
    assert_eq!(fifth["state"], "live", "{fifth:#}\n{}", fleet.logs());
    let (status, answer) = app_get(&caddy, host, "/file/write/fifth").await?;
    assert_eq!(status, 200, "{answer}");
    assert!(database_exists(&server, &db2).await? && volume_exists(&volume2));
    // A runtime-log stream resumed after the second-to-last stored line
    // gets the last one first, then ends when the app is destroyed.
    let (_, polled) = fleet.call(Method::GET, "/v1/apps/notes/logs", None).await?;
    let last = polled["next"].as_i64().context("next")?;
    anyhow::ensure!(last >= 2, "the app printed lines: {polled}");
    let stream = fleet
        .client
        .get(format!("{}/v1/apps/notes/logs/stream", fleet.api_url))
        .bearer_auth(&fleet.token)
        .header("Last-Event-ID", (last - 1).to_string())
        .send()
        .await?;
    assert_eq!(stream.status(), 200);
    let streamed = tokio::spawn(stream.text());
    let (status, answer) = fleet
        .call(Method::DELETE, "/v1/apps/notes?purge=true", None)
        .await?;
    assert_eq!(status, 202, "{answer}");
    let id = answer["id"].as_str().context("id")?.parse()?;
    let destroyed = fleet
        .wait_state(id, common::TERMINAL, DEPLOY_TIMEOUT)
        .await?;
    assert_eq!(
        destroyed["state"],
        "live",
        "{destroyed:#}\n{}",
        fleet.logs()
    );
    assert!(
        !database_exists(&server, &db2).await?,
        "the destroy dropped {db2}"
    );
    assert!(!volume_exists(&volume2), "the destroy removed {volume2}");
    assert!(common::app_containers(&leftovers.app_id, true).is_empty());
    let logs = deployment_logs(&fleet, &destroyed["id"]).await?;
    assert!(
        logs.contains("volume") && logs.contains("removed"),
        "{logs}"
    );
    let (status, _) = fleet.call(Method::GET, "/v1/apps/notes", None).await?;
    assert_eq!(status, 404, "the app is gone");
    let body = tokio::time::timeout(Duration::from_secs(30), streamed)
        .await
        .context("the stream ends once the app is gone")???;
    let ids: Vec<i64> = body
        .lines()
        .filter_map(|l| l.strip_prefix("id: ")?.parse().ok())
        .collect();
    assert_eq!(ids.first(), Some(&last), "{body}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{body}");
    assert!(body.contains("event: end"), "{body}");

    fleet.stop().await;
    drop(leftovers);
    Ok(())
}

#[tokio::test]
async fn the_addon_api_validates_masks_and_isolates() -> anyhow::Result<()> {
    let fleet = Fleet::start(Options {
        build_workers: 0,
        provision_workers: 0,
        deploy_workers: 0,
        ..Options::default()
    })
    .await?;
    let (status, app) = fleet
        .call(
            Method::POST,
            "/v1/apps",
            Some(json!({"name": "web", "git_url": "https://example.invalid/x.git"})),
        )
        .await?;
    anyhow::ensure!(status == 201, "create app: {status} {app}");
    let addons = "/v1/apps/web/addons";
    let post = |body: Value| fleet.call(Method::POST, addons, Some(body));
    for (body, code) in [
        (json!({"kind": "mysql", "name": "db"}), "invalid_addon"),
        (
            json!({"kind": "postgres", "name": "Bad_Name"}),
            "invalid_addon",
        ),
        (
            json!({"kind": "postgres", "name": "db", "mount": "/x"}),
            "invalid_addon",
        ),
        (json!({"kind": "volume", "name": "data"}), "invalid_addon"),
        (
            json!({"kind": "volume", "name": "data", "mount": "relative"}),
            "invalid_addon",
        ),
        (
            json!({"kind": "volume", "name": "data", "mount": "/a/../etc"}),
            "invalid_addon",
        ),
        (
            json!({"kind": "volume", "name": "data", "mount": "/a:/b"}),
            "invalid_addon",
        ),
    ] {
        let (status, answer) = post(body.clone()).await?;
        assert_eq!(
            (status, answer["code"].as_str()),
            (422, Some(code)),
            "{body} -> {answer}"
        );
    }
    let (status, answer) = post(json!({"kind": "postgres", "name": "db", "size": 1})).await?;
    assert!(
        (400..500).contains(&status),
        "unknown field: {status} {answer}"
    );
    assert!(answer["code"].is_string(), "{answer}");

    let (status, db) = post(json!({"kind": "postgres", "name": "db"})).await?;
    assert_eq!(status, 201, "{db}");
    assert_eq!(db["postgres"]["password"], "********");
    assert_eq!(db["postgres"]["env"], "DATABASE_URL");
    let (status, answer) = post(json!({"kind": "postgres", "name": "db"})).await?;
    assert_eq!(
        (status, answer["code"].as_str()),
        (409, Some("addon_exists")),
        "{answer}"
    );
    let (status, answer) = post(json!({"kind": "postgres", "name": "db2"})).await?;
    assert_eq!(
        (status, answer["code"].as_str()),
        (409, Some("addon_exists")),
        "{answer}"
    );
    let (status, _) = post(json!({"kind": "volume", "name": "data", "mount": "/data"})).await?;
    assert_eq!(status, 201);
    let (status, answer) =
        post(json!({"kind": "volume", "name": "more", "mount": "/data"})).await?;
    assert_eq!(
        (status, answer["code"].as_str()),
        (409, Some("mount_taken")),
        "{answer}"
    );

    // Nothing secret in the listing: no sealed bytes, the password masked.
    let (status, listed) = fleet.call(Method::GET, addons, None).await?;
    assert_eq!(status, 200);
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(2),
        "{listed:#}"
    );
    let text = listed.to_string();
    assert!(
        !text.contains("sealed") && text.contains("********"),
        "{text}"
    );

    // Another project sees none of it.
    let client = reqwest::Client::new();
    let project: Value = client
        .post(format!("{}/v1/projects", fleet.api_url))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"name": "other"}))
        .send()
        .await?
        .json()
        .await?;
    let token: Value = client
        .post(format!(
            "{}/v1/projects/{}/tokens",
            fleet.api_url,
            project["id"].as_str().unwrap_or_default()
        ))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"name": "t", "role": "owner"}))
        .send()
        .await?
        .json()
        .await?;
    let other = token["token"].as_str().context("token")?;
    for (method, path) in [
        (Method::GET, addons.to_owned()),
        (Method::POST, addons.to_owned()),
        (Method::DELETE, format!("{addons}/db")),
    ] {
        let answer = client
            .request(method.clone(), format!("{}{path}", fleet.api_url))
            .bearer_auth(other)
            .json(&json!({"kind": "postgres", "name": "x"}))
            .send()
            .await?;
        assert_eq!(answer.status().as_u16(), 404, "{method} {path}");
    }

    // An app on an ssh target gets no add-ons (not built there yet).
    let keys = tempfile::tempdir()?;
    let key_path = keys.path().join("key");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key_path)
        .status()?;
    anyhow::ensure!(made.success(), "ssh-keygen failed");
    let target = json!({"name": "edge", "kind": "ssh", "host": "127.0.0.1", "user": "root",
        "ssh_key": std::fs::read_to_string(&key_path)?,
        "known_hosts": "127.0.0.1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ8w\n"});
    let (status, answer) = fleet
        .call(Method::POST, "/v1/targets", Some(target))
        .await?;
    anyhow::ensure!(status == 201, "target: {status} {answer}");
    let remote = json!({"name": "remote", "git_url": "https://example.invalid/x.git",
                        "target": "edge"});
    let (status, answer) = fleet.call(Method::POST, "/v1/apps", Some(remote)).await?;
    anyhow::ensure!(status == 201, "remote app: {status} {answer}");
    let (status, answer) = fleet
        .call(
            Method::POST,
            "/v1/apps/remote/addons",
            Some(json!({"kind": "volume", "name": "data", "mount": "/data"})),
        )
        .await?;
    // Volumes live on the app's target, over SSH for this one.
    assert_eq!(
        (status, answer["state"].as_str()),
        (201, Some("pending")),
        "{answer}"
    );

    // Detaching keeps the data and names it; an unknown add-on is 404.
    let (status, answer) = fleet
        .call(Method::DELETE, &format!("{addons}/nope"), None)
        .await?;
    assert_eq!(status, 404, "{answer}");
    let (status, answer) = fleet
        .call(Method::DELETE, &format!("{addons}/db?purge=maybe"), None)
        .await?;
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = fleet
        .call(Method::DELETE, &format!("{addons}/db"), None)
        .await?;
    assert_eq!(
        (status, answer["state"].as_str()),
        (200, Some("detached")),
        "{answer}"
    );
    assert!(answer["postgres"]["database"].is_string(), "{answer}");
    let (_, listed) = fleet.call(Method::GET, addons, None).await?;
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(1),
        "{listed:#}"
    );

    fleet.stop().await;
    Ok(())
}
