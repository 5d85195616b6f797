//! The API in-process against a real database and broker: auth, project
//! isolation, validation errors that write nothing, pagination, the SSE log
//! stream's resume, and the operational endpoints; and schemathesis
//! fuzzing the API from its OpenAPI document (`api/fuzz.rs`).

#[path = "api/access.rs"]
mod access;
#[path = "api/cloud.rs"]
mod cloud;
mod common;
#[path = "api/dashboard.rs"]
mod dashboard;
#[path = "api/fuzz.rs"]
mod fuzz;
#[path = "api/installs.rs"]
mod installs;
#[path = "api/servers.rs"]
mod servers;

use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use slipway_shared::config::ApiSettings;
use slipway_shared::egress::{parse_authority, OutboundPolicy, PlatformService};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const ADMIN: &str = "api-test-admin-token-0123456789abcdef0123";

struct Api {
    url: String,
    client: Client,
    db: slipway_testkit::TestDb,
    shutdown: CancellationToken,
    settings: ApiSettings,
}

impl Api {
    async fn start() -> anyhow::Result<Api> {
        Self::start_with(OutboundPolicy::public_only()).await
    }

    async fn start_with(outbound: OutboundPolicy) -> anyhow::Result<Api> {
        Self::start_configured(outbound, Default::default()).await
    }

    /// With these settings of people and sessions (first admin, limits).
    async fn start_with_accounts(
        accounts: slipway_shared::config::AccountSettings,
    ) -> anyhow::Result<Api> {
        Self::start_configured(OutboundPolicy::public_only(), accounts).await
    }

    async fn start_configured(
        outbound: OutboundPolicy,
        accounts: slipway_shared::config::AccountSettings,
    ) -> anyhow::Result<Api> {
        let db = slipway_testkit::fresh_database().await?;
        let settings = ApiSettings {
            common: slipway_shared::config::CommonSettings {
                database_url: db.url.clone().into(),
                amqp_url: slipway_testkit::rabbit_url().into(),
                queue_prefix: format!("{}.", slipway_testkit::unique_prefix()),
                log_retention: Duration::from_secs(3600),
                log_json: false,
            },
            api_addr: "127.0.0.1:0".parse()?,
            admin_token: ADMIN.to_owned().into(),
            secret_key: "cd".repeat(32).into(),
            outbound,
            accounts,
            web: Default::default(),
        };
        let shutdown = CancellationToken::new();
        let app = slipway_api::Application::build(settings.clone(), shutdown.clone()).await?;
        let url = format!("http://{}", app.local_addr()?);
        tokio::spawn(app.run());
        Ok(Api {
            url,
            client: Client::new(),
            db,
            shutdown,
            settings,
        })
    }

    /// Another API process on the same database and settings: its URL.
    async fn second_process(&self) -> anyhow::Result<String> {
        let app =
            slipway_api::Application::build(self.settings.clone(), self.shutdown.clone()).await?;
        let url = format!("http://{}", app.local_addr()?);
        tokio::spawn(app.run());
        Ok(url)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let text = response.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// A project and a token for it.
    async fn project(&self, name: &str) -> (Uuid, String) {
        let (status, project) = self
            .call(
                Method::POST,
                "/v1/projects",
                Some(ADMIN),
                Some(&json!({"name": name}).to_string()),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{project}");
        let id: Uuid = project["id"].as_str().unwrap().parse().unwrap();
        let (status, token) = self
            .call(
                Method::POST,
                &format!("/v1/projects/{id}/tokens"),
                Some(ADMIN),
                Some(r#"{"name":"t","role":"owner"}"#),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        (id, token["token"].as_str().unwrap().to_owned())
    }

    async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&self.db.pool)
            .await
            .unwrap()
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.db.drop_database().await;
    }
}

#[tokio::test]
async fn tokens_are_required_and_scoped() -> anyhow::Result<()> {
    let api = Api::start().await?;
    let (_, token) = api.project("alpha").await;
    let (status, body) = api.call(Method::GET, "/v1/apps", None, None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    let (status, _) = api
        .call(Method::GET, "/v1/apps", Some("slw_0000"), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A token sees its own project only, and may not make projects.
    let (status, body) = api
        .call(Method::GET, "/v1/projects", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(body["items"][0]["role"], "owner");
    let (status, body) = api
        .call(
            Method::POST,
            "/v1/projects",
            Some(&token),
            Some(r#"{"name":"x"}"#),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    // The admin token names the project it acts in.
    let (status, body) = api.call(Method::GET, "/v1/apps", Some(ADMIN), None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("project_required"))
    );
    let (status, _) = api.call(Method::GET, "/v1/apps", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK);
    // Tokens are stored hashed, never in the clear.
    let stored: Vec<u8> = sqlx::query_scalar("SELECT token_sha256 FROM api_tokens")
        .fetch_one(&api.db.pool)
        .await?;
    assert_eq!(stored.len(), 32);
    assert!(!String::from_utf8_lossy(&stored).contains(&token[4..]));
    api.stop().await;
    Ok(())
}

#[tokio::test]
async fn another_projects_resources_answer_404() -> anyhow::Result<()> {
    let api = Api::start().await?;
    let (_, alpha) = api.project("alpha").await;
    let (_, beta) = api.project("beta").await;
    let app = json!({"name": "web", "git_url": "https://example.invalid/web.git"}).to_string();
    assert_eq!(
        api.call(Method::POST, "/v1/apps", Some(&alpha), Some(&app))
            .await
            .0,
        StatusCode::CREATED
    );
    let (status, created) = api
        .call(
            Method::POST,
            "/v1/apps/web/deployments",
            Some(&alpha),
            Some("{}"),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let id = created["id"].as_str().unwrap();
    for (method, path) in [
        (Method::GET, "/v1/apps/web".to_owned()),
        (Method::PATCH, "/v1/apps/web".to_owned()),
        (Method::DELETE, "/v1/apps/web".to_owned()),
        (Method::POST, "/v1/apps/web/deployments".to_owned()),
        (Method::GET, "/v1/apps/web/deployments".to_owned()),
        (Method::GET, format!("/v1/deployments/{id}")),
        (Method::POST, format!("/v1/deployments/{id}/cancel")),
        (Method::GET, format!("/v1/deployments/{id}/logs")),
        (Method::GET, format!("/v1/deployments/{id}/logs/stream")),
    ] {
        let body = (method == Method::PATCH || method == Method::POST).then_some("{}");
        let (status, answer) = api.call(method.clone(), &path, Some(&beta), body).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found")),
            "{method} {path}"
        );
    }
    let (_, listed) = api.call(Method::GET, "/v1/apps", Some(&beta), None).await;
    assert_eq!(listed["items"], json!([]));
    let (status, deployment) = api
        .call(
            Method::GET,
            &format!("/v1/deployments/{id}"),
            Some(&alpha),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(deployment["state"], "queued");
    api.stop().await;
    Ok(())
}

#[tokio::test]
async fn invalid_input_gets_a_clear_4xx_and_writes_nothing() -> anyhow::Result<()> {
    let api = Api::start().await?;
    let (_, token) = api.project("alpha").await;
    let t = Some(token.as_str());
    let cases: &[(Method, &str, &str, u16, &str)] = &[
        (Method::POST, "/v1/apps", "{not json", 400, "malformed_json"),
        (
            Method::POST,
            "/v1/apps",
            r#"{"name": "Bad Name"}"#,
            422,
            "validation_failed",
        ),
        (
            Method::POST,
            "/v1/apps",
            r#"{"name": "web", "surprise": 1}"#,
            422,
            "validation_failed",
        ),
        (
            Method::POST,
            "/v1/apps",
            r#"{"name": "web", "git_url": "ftp://x"}"#,
            422,
            "validation_failed",
        ),
        (
            Method::POST,
            "/v1/apps",
            r#"{"name": "web", "git_ref": "a..b"}"#,
            422,
            "validation_failed",
        ),
        (
            Method::POST,
            "/v1/apps",
            r#"{"name": "web", "env": {"bad-key": "x"}}"#,
            422,
            "validation_failed",
        ),
        (
            Method::POST,
            "/v1/apps",
            r#"{"name": 7}"#,
            422,
            "validation_failed",
        ),
        (
            Method::POST,
            "/v1/apps",
            r#"{"name": "web", "runtime": {"replicas": 0}}"#,
            422,
            "invalid_runtime_settings",
        ),
        (
            Method::POST,
            "/v1/apps",
            r#"{"name": "web", "runtime": {"drain_ms": "soon"}}"#,
            422,
            "invalid_runtime_settings",
        ),
        (
            Method::POST,
            "/v1/apps",
            r#"{"name": "web", "runtime": {"helth_path": "/up"}}"#,
            422,
            "invalid_runtime_settings",
        ),
        (
            Method::POST,
            "/v1/apps",
            r#"{"name": "web", "runtime": {"port": 80}}"#,
            422,
            "invalid_runtime_settings",
        ),
        (
            Method::POST,
            "/v1/apps",
            r#"{"name": "web", "build": {"dockerfle": "Dockerfile"}}"#,
            422,
            "invalid_build_settings",
        ),
        (
            Method::POST,
            "/v1/apps",
            r#"{"name": "web", "build": {"start_command": ["node", "x.js"]}}"#,
            422,
            "invalid_build_settings",
        ),
        (
            Method::POST,
            "/v1/probes",
            r#"{"duration_ms": -1}"#,
            422,
            "validation_failed",
        ),
        (
            Method::POST,
            "/v1/probes",
            r#"{"duration_ms": 99999999}"#,
            422,
            "validation_failed",
        ),
        (
            Method::POST,
            "/v1/probes",
            r#"{"fail_stage": "launch"}"#,
            422,
            "validation_failed",
        ),
        (
            Method::GET,
            "/v1/deployments/not-a-uuid",
            "",
            400,
            "bad_path",
        ),
        (
            Method::POST,
            "/v1/dead-jobs/not-a-uuid/redrive",
            "",
            400,
            "bad_path",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let body = (!body.is_empty()).then_some(*body);
        let (got, answer) = api.call(method.clone(), path, t, body).await;
        assert_eq!(
            (got.as_u16(), answer["code"].as_str()),
            (*status, Some(*code)),
            "{method} {path} {body:?}: {answer}"
        );
        assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    assert_eq!(api.count("apps").await, 0);
    assert_eq!(api.count("deployments").await, 0);
    // An app without a source cannot be deployed, and nothing is written.
    assert_eq!(
        api.call(Method::POST, "/v1/apps", t, Some(r#"{"name": "web"}"#))
            .await
            .0,
        StatusCode::CREATED
    );
    let (status, answer) = api
        .call(Method::POST, "/v1/apps/web/deployments", t, None)
        .await;
    assert_eq!(
        (status.as_u16(), answer["code"].as_str()),
        (422, Some("no_source"))
    );
    // A typo in an update is named, not silently stored.
    let (status, answer) = api
        .call(
            Method::PATCH,
            "/v1/apps/web",
            t,
            Some(r#"{"build": {"build_command": "make"}}"#),
        )
        .await;
    assert_eq!(
        (status.as_u16(), answer["code"].as_str()),
        (422, Some("invalid_build_settings"))
    );
    assert!(
        answer["message"]
            .as_str()
            .is_some_and(|m| m.contains("build.build_command")),
        "{answer}"
    );
    let (status, answer) = api
        .call(
            Method::PATCH,
            "/v1/apps/web",
            t,
            Some(r#"{"runtime": {"port": 443}}"#),
        )
        .await;
    assert_eq!(status.as_u16(), 422, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .is_some_and(|m| m.contains("unprivileged") && m.contains("8080")),
        "{answer}"
    );
    let (status, answer) = api
        .call(
            Method::PATCH,
            "/v1/apps/web",
            t,
            Some(r#"{"build": {"install_command": "npm ci", "start_command": "node x.js"}}"#),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, answer) = api
        .call(Method::POST, "/v1/apps", t, Some(r#"{"name": "web"}"#))
        .await;
    assert_eq!(
        (status.as_u16(), answer["code"].as_str()),
        (409, Some("conflict"))
    );
    let (status, _) = api
        .call(Method::GET, "/v1/apps/web/deployments?limit=0", t, None)
        .await;
    assert_eq!(status.as_u16(), 422);
    let (status, _) = api
        .call(
            Method::GET,
            "/v1/deployments/00000000-0000-0000-0000-000000000000/logs?after=x",
            t,
            None,
        )
        .await;
    assert_eq!(status.as_u16(), 400);
    assert_eq!(api.count("deployments").await, 0);
    assert_eq!(api.count("outbox").await, 0);
    let huge = format!(
        r#"{{"name": "big", "env": {{"A": "{}"}}}}"#,
        "x".repeat(2 * 1024 * 1024)
    );
    let (status, _) = api.call(Method::POST, "/v1/apps", t, Some(&huge)).await;
    assert_eq!(status.as_u16(), 413);
    assert_eq!(api.count("apps").await, 1);
    api.stop().await;
    Ok(())
}

#[tokio::test]
async fn git_urls_to_internal_addresses_are_refused_and_name_the_address() -> anyhow::Result<()> {
    let caddy_admin = PlatformService {
        name: "Caddy's admin API",
        endpoint: parse_authority("127.0.0.1:2019", 0).map_err(anyhow::Error::msg)?,
    };
    let strict = OutboundPolicy::new(Default::default(), vec![caddy_admin.clone()]);
    let api = Api::start_with(strict).await?;
    let (_, token) = api.project("alpha").await;
    let t = Some(token.as_str());
    let refused: &[(&str, &str)] = &[
        ("git://127.0.0.1/r", "`127.0.0.1` is a loopback address"),
        ("git://2130706433/r", "`127.0.0.1` is a loopback address"),
        ("https://0x7f.1/r", "`127.0.0.1` is a loopback address"),
        ("ssh://git@[::1]/r", "`[::1]` is a loopback address"),
        ("git@localhost:r.git", "`localhost` resolves to"),
        ("https://10.1.2.3/r", "`10.1.2.3` is a private address"),
        ("https://192.168.0.10/r", "is a private address"),
        ("http://[fd00::1]/r", "is a private address"),
        ("http://169.254.169.254/r", "is a link-local address"),
        (
            "http://[::ffff:169.254.169.254]/r",
            "is a link-local address",
        ),
        ("http://[fe80::1]/r", "is a link-local address"),
        ("https://100.64.0.1/r", "is a cgnat address"),
        ("git://0.0.0.0/r", "is an unspecified address"),
        ("git://224.0.0.1/r", "is a multicast address"),
        ("git://255.255.255.255/r", "is a broadcast address"),
        ("https://192.0.2.1/r", "is a documentation address"),
        ("https://198.18.0.1/r", "is a benchmarking address"),
        ("https://240.0.0.1/r", "is a reserved address"),
        ("http://[64:ff9b::7f00:1]/r", "is a loopback address"),
    ];
    for (url, says) in refused {
        let body = json!({"name": "web", "git_url": url}).to_string();
        let (status, answer) = api.call(Method::POST, "/v1/apps", t, Some(&body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {answer}");
        assert_eq!(answer["code"], "address_not_allowed", "{url}: {answer}");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{url}: {message}");
    }
    // Hosts URL parsers could read differently are not guessed at.
    let body = json!({"name": "web", "git_url": "https://example.com?@127.0.0.1/r"}).to_string();
    let (status, answer) = api.call(Method::POST, "/v1/apps", t, Some(&body)).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed")),
        "{answer}"
    );
    assert_eq!(api.count("apps").await, 0);
    // A public address, a name that does not resolve here (the build
    // worker decides when it connects) and file:// (its own flag) pass.
    for (name, url) in [
        ("public", "https://93.184.216.34/r.git"),
        ("unresolved", "https://example.invalid/r.git"),
        ("local", "file:///srv/r"),
    ] {
        let body = json!({"name": name, "git_url": url}).to_string();
        let (status, answer) = api.call(Method::POST, "/v1/apps", t, Some(&body)).await;
        assert_eq!(status, StatusCode::CREATED, "{url}: {answer}");
    }
    let (status, answer) = api
        .call(
            Method::PATCH,
            "/v1/apps/public",
            t,
            Some(r#"{"git_url": "git://127.0.0.1:9418/r"}"#),
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("address_not_allowed")
        ),
        "{answer}"
    );
    let (_, app) = api.call(Method::GET, "/v1/apps/public", t, None).await;
    assert_eq!(app["git_url"], "https://93.184.216.34/r.git", "unchanged");
    api.stop().await;

    // With loopback allowed (a single-host install), loopback passes but
    // the platform's own services on it do not.
    let allowed = OutboundPolicy::parse_allow("loopback").map_err(anyhow::Error::msg)?;
    let api = Api::start_with(OutboundPolicy::new(allowed, vec![caddy_admin])).await?;
    let (_, token) = api.project("alpha").await;
    let t = Some(token.as_str());
    let body = json!({"name": "web", "git_url": "git://127.0.0.1:9418/r"}).to_string();
    let (status, answer) = api.call(Method::POST, "/v1/apps", t, Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    for url in [
        "http://127.0.0.1:2019/load",
        "http://localhost:2019/r",
        "git://[::1]:2019/r",
        "https://10.0.0.1/r",
    ] {
        let body = json!({"git_url": url}).to_string();
        let (status, answer) = api
            .call(Method::PATCH, "/v1/apps/web", t, Some(&body))
            .await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Some("address_not_allowed")
            ),
            "{url}: {answer}"
        );
    }
    let body = json!({"git_url": "http://127.0.0.1:2019/load"}).to_string();
    let (_, answer) = api
        .call(Method::PATCH, "/v1/apps/web", t, Some(&body))
        .await;
    assert!(
        answer["message"]
            .as_str()
            .unwrap_or_default()
            .contains("reaches Caddy's admin API"),
        "{answer}"
    );
    api.stop().await;
    Ok(())
}

#[tokio::test]
async fn deployments_are_accepted_listed_by_page_and_cancellable() -> anyhow::Result<()> {
    let api = Api::start().await?;
    let (_, token) = api.project("alpha").await;
    let t = Some(token.as_str());
    let app = json!({"name": "web", "git_url": "https://example.invalid/web.git", "git_ref": "main", "env": {"MODE": "prod"}});
    let (status, created) = api
        .call(Method::POST, "/v1/apps", t, Some(&app.to_string()))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(created["env"]["MODE"], "prod");
    let response = api
        .client
        .post(format!("{}/v1/apps/web/deployments", api.url))
        .bearer_auth(&token)
        .json(&json!({"git_ref": "v2"}))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers()["location"].to_str()?.to_owned();
    let first: Value = response.json().await?;
    assert_eq!(
        location,
        format!("/v1/deployments/{}", first["id"].as_str().unwrap())
    );
    let (_, deployment) = api.call(Method::GET, &location, t, None).await;
    assert_eq!(
        deployment["source"],
        json!({"git_url": "https://example.invalid/web.git", "git_ref": "v2"})
    );
    // Two more: the second is held behind the first, the third supersedes it.
    api.call(Method::POST, "/v1/apps/web/deployments", t, None)
        .await;
    api.call(Method::POST, "/v1/apps/web/deployments", t, None)
        .await;
    let (_, page) = api
        .call(Method::GET, "/v1/apps/web/deployments?limit=2", t, None)
        .await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[1]["state"], "superseded");
    let (_, rest) = api
        .call(
            Method::GET,
            &format!(
                "/v1/apps/web/deployments?limit=2&before={}",
                page["next"].as_str().unwrap()
            ),
            t,
            None,
        )
        .await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert_eq!(rest["items"][0]["id"], first["id"]);
    assert_eq!(rest["next"], Value::Null);
    // Deleting a busy app is refused; cancelling the running one frees the lane.
    let (status, answer) = api.call(Method::DELETE, "/v1/apps/web", t, None).await;
    assert_eq!(
        (status.as_u16(), answer["code"].as_str()),
        (409, Some("app_busy"))
    );
    let (status, _) = api
        .call(Method::POST, &format!("{location}/cancel"), t, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let newest = items[0]["id"].as_str().unwrap();
    let (_, newest) = api
        .call(Method::GET, &format!("/v1/deployments/{newest}"), t, None)
        .await;
    assert_eq!(newest["state"], "queued");
    let dispatched: bool = sqlx::query_scalar("SELECT dispatched FROM deployments WHERE id = $1")
        .bind(newest["id"].as_str().unwrap().parse::<Uuid>()?)
        .fetch_one(&api.db.pool)
        .await?;
    assert!(
        dispatched,
        "the held deployment took the lane when the running one was cancelled"
    );
    api.stop().await;
    Ok(())
}

#[tokio::test]
async fn the_log_stream_resumes_after_last_event_id_and_ends_with_the_deployment(
) -> anyhow::Result<()> {
    let api = Api::start().await?;
    let (project, token) = api.project("alpha").await;
    let names = slipway_shared::queue::topology::QueueNames::new("unused.");
    let mut tx = api.db.pool.begin().await?;
    let created = slipway_shared::db::deployments::create(
        &mut tx,
        &names,
        slipway_shared::db::deployments::NewDeployment {
            project_id: project,
            app_id: None,
            kind: "probe",
            source: json!({}),
            probe: None,
        },
    )
    .await?;
    tx.commit().await?;
    let stop = CancellationToken::new();
    let (sink, task) = slipway_shared::logsink::LogSink::start(
        api.db.pool.clone(),
        Duration::from_millis(20),
        stop.clone(),
    );
    sink.register_secrets(created.id, vec!["hunter2-secret".into()]);
    let logs = sink.handle(created.id, "build", 1);
    for n in 1..=5 {
        logs.line("stdout", format!("line {n} token=hunter2-secret"))
            .await;
    }
    logs.flush().await;
    let mut tx = api.db.pool.begin().await?;
    slipway_shared::db::deployments::cancel(&mut tx, &names, project, created.id).await?;
    tx.commit().await?;

    let body = api
        .client
        .get(format!(
            "{}/v1/deployments/{}/logs/stream",
            api.url, created.id
        ))
        .bearer_auth(&token)
        .header("Last-Event-ID", "2")
        .send()
        .await?
        .text()
        .await?;
    let ids: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .collect();
    assert_eq!(ids, ["3", "4", "5"], "{body}");
    assert!(body.contains("event: end"), "{body}");
    assert!(
        !body.contains("hunter2-secret") && body.contains("[REDACTED]"),
        "secrets are redacted before storage"
    );
    let (_, polled) = api
        .call(
            Method::GET,
            &format!("/v1/deployments/{}/logs?after=4", created.id),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(polled["lines"].as_array().unwrap().len(), 1);
    assert_eq!(polled["next"], 5);
    stop.cancel();
    task.await?;
    api.stop().await;
    Ok(())
}

#[tokio::test]
async fn secret_env_vars_are_encrypted_at_rest_and_never_shown() -> anyhow::Result<()> {
    let api = Api::start().await?;
    let (_, token) = api.project("alpha").await;
    let t = Some(token.as_str());
    let body =
        json!({"name": "web", "env": {"MODE": "prod"}, "secrets": {"API_KEY": "sk-live-4242"}})
            .to_string();
    let (status, app) = api.call(Method::POST, "/v1/apps", t, Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    assert_eq!(app["secrets"], json!({"API_KEY": "********"}));
    assert!(!app.to_string().contains("sk-live-4242"));
    let sealed: Vec<u8> =
        sqlx::query_scalar("SELECT value_sealed FROM app_env_vars WHERE key = 'API_KEY'")
            .fetch_one(&api.db.pool)
            .await?;
    assert!(!String::from_utf8_lossy(&sealed).contains("sk-live-4242"));
    let opened =
        slipway_shared::secrets::SecretBox::from_hex(&"cd".repeat(32).into())?.open(&sealed)?;
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(&opened),
        "sk-live-4242"
    );
    // Turning a plain var into a secret moves it; reading never shows the value.
    let (status, app) = api
        .call(
            Method::PATCH,
            "/v1/apps/web",
            t,
            Some(r#"{"secrets": {"MODE": "hidden"}}"#),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{app}");
    assert_eq!(app["env"], json!({}));
    assert_eq!(
        app["secrets"],
        json!({"API_KEY": "********", "MODE": "********"})
    );
    let (_, listed) = api.call(Method::GET, "/v1/apps", t, None).await;
    assert!(!listed.to_string().contains("hidden") && !listed.to_string().contains("sk-live"));
    let (status, answer) = api
        .call(
            Method::PATCH,
            "/v1/apps/web",
            t,
            Some(r#"{"env": {"X": "1"}, "secrets": {"X": "2"}}"#),
        )
        .await;
    assert_eq!(
        (status.as_u16(), answer["code"].as_str()),
        (422, Some("validation_failed"))
    );
    api.stop().await;
    Ok(())
}

/// PATCH merges per key: what a call does not name is kept, `null` deletes.
#[tokio::test]
async fn a_patch_keeps_what_it_does_not_name() -> anyhow::Result<()> {
    let api = Api::start().await?;
    let (_, token) = api.project("alpha").await;
    let t = Some(token.as_str());
    let created = json!({
        "name": "web",
        "env": {"A": "1", "B": "2"},
        "secrets": {"S": "s1", "T": "t1"},
        "runtime": {"port": 3000, "replicas": 2},
        "build": {"build_env": {"NODE_ENV": "production"}},
        "git_credential": {"token": "ghp-kept"},
        "git_url": "https://example.com/o/r.git"
    });
    let (status, app) = api
        .call(Method::POST, "/v1/apps", t, Some(&created.to_string()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    let patch = |body: Value| {
        let api = &api;
        async move {
            let (status, app) = api
                .call(Method::PATCH, "/v1/apps/web", t, Some(&body.to_string()))
                .await;
            assert_eq!(status, StatusCode::OK, "{body} -> {app}");
            app
        }
    };
    let pool = api.db.pool.clone();
    let secret = |key: &'static str| sealed_value(pool.clone(), key);

    // env alone: secrets, runtime, build and the credential are untouched.
    let app = patch(json!({"env": {"A": "9"}})).await;
    assert_eq!(app["env"], json!({"A": "9", "B": "2"}));
    assert_eq!(app["secrets"], json!({"S": "********", "T": "********"}));
    assert_eq!(app["runtime"], json!({"port": 3000, "replicas": 2}));
    assert_eq!(
        app["build"],
        json!({"build_env": {"NODE_ENV": "production"}})
    );
    assert_eq!(app["git_credential"]["set"], json!(true), "{app}");
    assert_eq!(secret("S").await, Some("s1".into()));

    // secrets alone: a new value replaces one key, the env is untouched.
    let app = patch(json!({"secrets": {"S": "s2"}})).await;
    assert_eq!(app["env"], json!({"A": "9", "B": "2"}));
    assert_eq!(secret("S").await, Some("s2".into()));
    assert_eq!(secret("T").await, Some("t1".into()));

    // null deletes on the side that names it only.
    let app = patch(json!({"env": {"B": null}, "secrets": {"T": null}})).await;
    assert_eq!(app["env"], json!({"A": "9"}));
    assert_eq!(app["secrets"], json!({"S": "********"}));
    let app = patch(json!({"env": {"S": null}})).await;
    assert_eq!(
        app["secrets"],
        json!({"S": "********"}),
        "a secret is not an env var"
    );

    // Moves: a secret set as a plain value, a plain value made secret.
    let app = patch(json!({"env": {"S": "visible"}})).await;
    assert_eq!(app["env"], json!({"A": "9", "S": "visible"}));
    assert_eq!(app["secrets"], json!({}));
    let app = patch(json!({"env": {"A": null}, "secrets": {"A": "hidden"}})).await;
    assert_eq!(app["env"], json!({"S": "visible"}));
    assert_eq!(app["secrets"], json!({"A": "********"}));
    assert_eq!(secret("A").await, Some("hidden".into()));

    // runtime and build merge per key.
    let app = patch(json!({"runtime": {"port": 8080}})).await;
    assert_eq!(app["runtime"], json!({"port": 8080, "replicas": 2}));
    let app =
        patch(json!({"runtime": {"replicas": null}, "build": {"dockerfile": "Dockerfile"}})).await;
    assert_eq!(app["runtime"], json!({"port": 8080}));
    assert_eq!(
        app["build"],
        json!({"build_env": {"NODE_ENV": "production"}, "dockerfile": "Dockerfile"})
    );

    // A merge that makes the settings invalid is refused and writes nothing.
    let (status, answer) = api
        .call(
            Method::PATCH,
            "/v1/apps/web",
            t,
            Some(&json!({"runtime": {"replicas": 99}, "env": {"NEW": "x"}}).to_string()),
        )
        .await;
    assert_eq!(status.as_u16(), 422, "{answer}");
    let (_, app) = api.call(Method::GET, "/v1/apps/web", t, None).await;
    assert_eq!(app["runtime"], json!({"port": 8080}));
    assert_eq!(app["env"], json!({"S": "visible"}));
    api.stop().await;
    Ok(())
}

/// The opened value of a secret env var, `None` when there is none.
async fn sealed_value(pool: sqlx::PgPool, key: &str) -> Option<String> {
    let sealed: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT value_sealed FROM app_env_vars WHERE key = $1 AND secret")
            .bind(key)
            .fetch_optional(&pool)
            .await
            .unwrap();
    let opened = slipway_shared::secrets::SecretBox::from_hex(&"cd".repeat(32).into())
        .unwrap()
        .open(&sealed?)
        .unwrap();
    Some(secrecy::ExposeSecret::expose_secret(&opened).to_string())
}

#[tokio::test]
async fn operational_endpoints_answer() -> anyhow::Result<()> {
    let api = Api::start().await?;
    assert_eq!(
        api.call(Method::GET, "/healthz", None, None).await.0,
        StatusCode::OK
    );
    let (status, ready) = api.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(ready, json!({"postgres": true, "rabbitmq": true}));
    let (status, doc) = api.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let (status, metrics) = api.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let text = metrics.as_str().unwrap_or_default();
    assert!(
        text.contains(
            "slipway_http_requests_total{method=\"GET\",route=\"/openapi.json\",status=\"200\"}"
        ),
        "{text}"
    );
    let (status, body) = api.call(Method::GET, "/v1/nope", None, None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    // Any other path is the dashboard's (a client route); this API has no
    // build of it, and says so.
    let (status, page) = api.call(Method::GET, "/nope", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{page}");
    assert!(
        page.as_str()
            .is_some_and(|p| p.contains("The Slipway dashboard is not built")),
        "{page}"
    );
    api.stop().await;
    Ok(())
}

/// What schemathesis found, each a 500 before: a NUL in text or jsonb, a
/// setting near f64::MAX read back from jsonb; and what its valid data
/// needed: `5.0` is an integer, a `null` body is no body, a log stream can
/// be read without following, a bad `Last-Event-ID` is refused.
#[tokio::test]
async fn fuzzer_findings_answer_4xx_or_succeed() -> anyhow::Result<()> {
    let api = Api::start().await?;
    let (_, bearer) = api.project("fuzzed").await;
    let token = Some(bearer.as_str());
    let refused = |(status, body): (StatusCode, Value)| (status.as_u16(), body["code"].clone());

    let nul_setting = r#"{"name": "nul", "build": {"build_env": {"K": "a\u0000b"}}}"#;
    let answer = api
        .call(Method::POST, "/v1/apps", token, Some(nul_setting))
        .await;
    assert_eq!(refused(answer), (422, json!("validation_failed")));
    let answer = api.call(Method::GET, "/v1/apps/a%00b", token, None).await;
    assert_eq!(refused(answer), (422, json!("validation_failed")));

    let huge = r#"{"name": "huge", "build": {"build_env": {"N": -1.7976931348623157e308}}}"#;
    let (status, app) = api.call(Method::POST, "/v1/apps", token, Some(huge)).await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    let (status, listed) = api.call(Method::GET, "/v1/apps", token, None).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(
        listed["items"][0]["build"]["build_env"]["N"],
        json!(-f64::MAX)
    );

    // The number parsed: the answer is about the app having no release.
    let answer = api
        .call(
            Method::POST,
            "/v1/apps/huge/scale",
            token,
            Some(r#"{"replicas": 2.0}"#),
        )
        .await;
    assert_eq!(refused(answer), (409, json!("not_deployed")));

    let (status, probe) = api
        .call(Method::POST, "/v1/probes", token, Some("null"))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{probe}");
    let stream = format!(
        "{}/v1/deployments/{}/logs/stream",
        api.url,
        probe["id"].as_str().unwrap_or_default()
    );
    let bad_resume = api
        .client
        .get(&stream)
        .bearer_auth(&bearer)
        .header("last-event-id", "yesterday")
        .send()
        .await?;
    assert_eq!(bad_resume.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // Not following, a stream of a queued deployment closes at once. (The
    // bound only keeps a regression from hanging the suite.)
    for url in [stream, format!("{}/v1/apps/huge/logs/stream", api.url)] {
        let response = api
            .client
            .get(format!("{url}?follow=false"))
            .bearer_auth(&bearer)
            .send()
            .await?;
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        let body = tokio::time::timeout(Duration::from_secs(60), response.text()).await;
        assert!(body.is_ok(), "{url}?follow=false did not close");
    }
    api.stop().await;
    Ok(())
}
