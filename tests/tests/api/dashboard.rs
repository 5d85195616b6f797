//! What the dashboard reads: the app list (paged, each item the same as the
//! app's own read), deployment statistics computed from stored events, and
//! the multiplexed event stream.

use super::Api;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

/// A deployment of `app` in `state` whose events are `(to_state, seconds
/// after the first)`; returns its id.
async fn deployment_with_events(
    api: &Api,
    project: Uuid,
    app: Uuid,
    state: &str,
    events: &[(&str, f64)],
) -> anyhow::Result<Uuid> {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO deployments (id, project_id, app_id, kind, state, trace_id)
         VALUES ($1, $2, $3, 'app', $4, '')",
    )
    .bind(id)
    .bind(project)
    .bind(app)
    .bind(state)
    .execute(&api.db.pool)
    .await?;
    // One base time: each insert's own now() would add its run time.
    let base = chrono::Utc::now() - chrono::Duration::hours(1);
    for (to_state, after) in events {
        sqlx::query(
            "INSERT INTO deployment_events (deployment_id, to_state, at)
             VALUES ($1, $2, $3 + make_interval(secs => $4))",
        )
        .bind(id)
        .bind(to_state)
        .bind(base)
        .bind(after)
        .execute(&api.db.pool)
        .await?;
    }
    Ok(id)
}

async fn app_id(api: &Api, project: Uuid, name: &str) -> anyhow::Result<Uuid> {
    Ok(
        sqlx::query_scalar("SELECT id FROM apps WHERE project_id = $1 AND name = $2")
            .bind(project)
            .bind(name)
            .fetch_one(&api.db.pool)
            .await?,
    )
}

/// Pages in name order; every item is exactly what `GET /v1/apps/{app}`
/// answers (status, live release, env, masked secrets, domains, webhook).
#[tokio::test]
async fn the_app_list_pages_and_matches_each_apps_read() -> anyhow::Result<()> {
    let api = Api::start().await?;
    let (project, token) = api.project("alpha").await;
    let t = Some(token.as_str());
    for (i, name) in ["echo", "alpha", "delta", "bravo", "charlie"]
        .iter()
        .enumerate()
    {
        let body = json!({"name": name, "env": {"MODE": "prod", "N": i.to_string()},
                          "secrets": {"KEY": "sk-hidden-1", "OTHER": "sk-hidden-2"},
                          "domains": [format!("{name}.example.com"), format!("a-{name}.example.com")]});
        let (status, app) = api
            .call(Method::POST, "/v1/apps", t, Some(&body.to_string()))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{app}");
    }
    // One app with a live release that passed its health check.
    let bravo = app_id(&api, project, "bravo").await?;
    let deployment = deployment_with_events(&api, project, bravo, "live", &[]).await?;
    sqlx::query(
        "INSERT INTO releases (id, app_id, deployment_id, image_ref, container_name, state, url,
                               live_at, health_ok, health_detail, health_checked_at)
         VALUES ($1, $2, $3, 'reg/bravo@sha256:ab', 'bravo-1', 'live', 'http://bravo.test/',
                 now(), true, '200', now())",
    )
    .bind(Uuid::now_v7())
    .bind(bravo)
    .bind(deployment)
    .execute(&api.db.pool)
    .await?;
    let mut names = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(after) => format!("/v1/apps?limit=2&after={after}"),
            None => "/v1/apps?limit=2".to_owned(),
        };
        let (status, page) = api.call(Method::GET, &path, t, None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        for item in items {
            let name = item["name"].as_str().unwrap();
            let (_, single) = api
                .call(Method::GET, &format!("/v1/apps/{name}"), t, None)
                .await;
            assert_eq!(item, &single, "the list and the read of {name} differ");
            names.push(name.to_owned());
        }
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(names, ["alpha", "bravo", "charlie", "delta", "echo"]);
    let (_, all) = api.call(Method::GET, "/v1/apps", t, None).await;
    assert_eq!(all["next"], Value::Null);
    let bravo = &all["items"][1];
    assert_eq!(bravo["status"]["state"], "running");
    assert_eq!(bravo["status"]["health"]["ok"], true);
    assert_eq!(bravo["live"]["image_ref"], "reg/bravo@sha256:ab");
    assert_eq!(all["items"][0]["status"]["state"], "not_deployed");
    assert_eq!(all["items"][0]["live"], Value::Null);
    assert_eq!(
        all["items"][0]["secrets"],
        json!({"KEY": "********", "OTHER": "********"})
    );
    assert_eq!(all["items"][0]["env"], json!({"MODE": "prod", "N": "1"}));
    assert_eq!(
        all["items"][0]["domains"],
        json!(["a-alpha.example.com", "alpha.example.com"])
    );
    assert!(!all.to_string().contains("sk-hidden"));
    for bad in ["limit=0", "limit=201", "limit=x", "colour=red"] {
        let (status, answer) = api
            .call(Method::GET, &format!("/v1/apps?{bad}"), t, None)
            .await;
        assert!(status.is_client_error(), "{bad}: {status} {answer}");
        assert!(answer["code"].is_string(), "{bad}: {answer}");
    }
    api.stop().await;
    Ok(())
}

/// Deploys, failures and stage times come from the stored deployments and
/// their events; other projects' deployments do not count.
#[tokio::test]
async fn deployment_stats_are_computed_from_events() -> anyhow::Result<()> {
    let api = Api::start().await?;
    let (project, token) = api.project("alpha").await;
    let (other_project, other) = api.project("beta").await;
    let t = Some(token.as_str());
    for (t, project) in [(t, project), (Some(other.as_str()), other_project)] {
        let (status, _) = api
            .call(Method::POST, "/v1/apps", t, Some(r#"{"name": "web"}"#))
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let _ = project;
    }
    let web = app_id(&api, project, "web").await?;
    // Building 10 s and 30 s, provisioning 2 s, deploying 4 s.
    let ok = [
        ("queued", 0.0),
        ("building", 1.0),
        ("built", 11.0),
        ("provisioning", 11.0),
        ("provisioned", 13.0),
        ("deploying", 13.0),
        ("verifying", 17.0),
        ("live", 18.0),
    ];
    deployment_with_events(&api, project, web, "live", &ok).await?;
    let failed = [("queued", 0.0), ("building", 1.0), ("failed", 31.0)];
    deployment_with_events(&api, project, web, "failed", &failed).await?;
    deployment_with_events(&api, project, web, "building", &[("building", 0.0)]).await?;
    let beta_web = app_id(&api, other_project, "web").await?;
    deployment_with_events(&api, other_project, beta_web, "failed", &failed).await?;

    let (status, stats) = api
        .call(Method::GET, "/v1/deployments/stats", t, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    assert_eq!(stats["days"], 14);
    assert_eq!(
        (stats["deploys"].as_i64(), stats["failed"].as_i64()),
        (Some(3), Some(1))
    );
    assert_eq!(stats["failure_rate"].as_f64(), Some(0.5));
    let per_day = stats["per_day"].as_array().unwrap();
    assert_eq!(per_day.len(), 14);
    let total: i64 = per_day.iter().map(|d| d["deploys"].as_i64().unwrap()).sum();
    assert_eq!(total, 3);
    let building = &stats["stages"]["building"];
    assert_eq!(building["count"], 2, "{stats}");
    assert_eq!(building["p50_ms"].as_f64(), Some(20_000.0));
    assert_eq!(building["p95_ms"].as_f64(), Some(29_000.0));
    assert_eq!(
        stats["stages"]["provisioning"]["p50_ms"].as_f64(),
        Some(2_000.0)
    );
    assert_eq!(
        stats["stages"]["deploying"]["p95_ms"].as_f64(),
        Some(4_000.0)
    );

    let (_, one_day) = api
        .call(Method::GET, "/v1/deployments/stats?days=1", t, None)
        .await;
    assert_eq!(one_day["per_day"].as_array().map(Vec::len), Some(1));
    for bad in ["days=0", "days=91", "days=x", "since=1"] {
        let (status, answer) = api
            .call(
                Method::GET,
                &format!("/v1/deployments/stats?{bad}"),
                t,
                None,
            )
            .await;
        assert!(status.is_client_error(), "{bad}: {status} {answer}");
        assert!(answer["code"].is_string(), "{bad}: {answer}");
    }
    api.stop().await;
    Ok(())
}

/// An SSE client: `(event, id, data)` frames as they arrive.
struct Sse {
    response: reqwest::Response,
    buffer: String,
}

impl Sse {
    async fn open(api: &Api, token: &str, query: &str, last: Option<&str>) -> anyhow::Result<Sse> {
        let mut request = api
            .client
            .get(format!("{}/v1/events?{query}", api.url))
            .bearer_auth(token);
        if let Some(last) = last {
            request = request.header("Last-Event-ID", last);
        }
        let response = request.send().await?;
        anyhow::ensure!(response.status() == StatusCode::OK, "{}", response.status());
        Ok(Sse {
            response,
            buffer: String::new(),
        })
    }

    /// The next event, or `None` if none came within `wait`.
    async fn next(&mut self, wait: Duration) -> anyhow::Result<Option<(String, String, Value)>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    frame
                        .lines()
                        .find_map(|l| l.strip_prefix(name))
                        .map(str::to_owned)
                };
                // Keep-alive comments carry no event.
                let Some(event) = field("event: ") else {
                    continue;
                };
                let data: Value = serde_json::from_str(&field("data: ").unwrap_or_default())?;
                // A creation committed before the stream opened is sent when
                // another open transaction of the shared cluster held the
                // horizon below it: not what these tests look at.
                if event == "deployment" && data["from"].is_null() {
                    continue;
                }
                return Ok(Some((event, field("id: ").unwrap_or_default(), data)));
            }
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Err(_) => return Ok(None),
                Ok(chunk) => match chunk? {
                    Some(bytes) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                    None => return Ok(None),
                },
            }
        }
    }

    /// The next event, which must come within 20 s.
    async fn expect(&mut self) -> anyhow::Result<(String, String, Value)> {
        self.next(Duration::from_secs(20))
            .await?
            .ok_or_else(|| anyhow::anyhow!("no event within 20 s"))
    }
}

async fn set_state(conn: &mut sqlx::PgConnection, id: Uuid, state: &str) -> anyhow::Result<()> {
    sqlx::query("UPDATE deployments SET state = $2 WHERE id = $1")
        .bind(id)
        .bind(state)
        .execute(conn)
        .await?;
    Ok(())
}

/// A change whose transaction began first but commits last is still sent,
/// before the one that committed first (the stream waits for it), and a
/// reconnect with `Last-Event-ID` resumes after the last event it had.
#[tokio::test]
async fn the_event_stream_does_not_skip_a_late_commit() -> anyhow::Result<()> {
    let api = Api::start().await?;
    let (project, token) = api.project("alpha").await;
    let (_, other) = api.project("beta").await;
    let t = Some(token.as_str());
    let (status, _) = api
        .call(Method::POST, "/v1/apps", t, Some(r#"{"name": "web"}"#))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let web = app_id(&api, project, "web").await?;
    let first = deployment_with_events(&api, project, web, "queued", &[]).await?;
    let second = deployment_with_events(&api, project, web, "queued", &[]).await?;
    sqlx::query(
        "INSERT INTO deployment_logs (deployment_id, seq, at, stage, stream, attempt, line)
         VALUES ($1, 1, now(), 'build', 'stdout', 1, 'stored before the stream opened')",
    )
    .bind(first)
    .execute(&api.db.pool)
    .await?;
    let query = format!("deployments={first},{second}");
    let mut stream = Sse::open(&api, &token, &query, None).await?;
    // The first deployment's stored lines come first.
    let (event, _, data) = stream.expect().await?;
    assert_eq!(
        (event.as_str(), data["seq"].as_i64()),
        ("log", Some(1)),
        "{data}"
    );
    assert_eq!(data["line"], "stored before the stream opened");

    let mut late = api.db.pool.begin().await?;
    set_state(&mut late, first, "building").await?;
    let mut early = api.db.pool.begin().await?;
    set_state(&mut early, second, "building").await?;
    early.commit().await?;
    // The later transaction's change waits while the earlier one is open.
    let held = stream.next(Duration::from_millis(1000)).await?;
    assert!(
        held.is_none(),
        "sent before an earlier transaction ended: {held:?}"
    );
    late.commit().await?;
    let (event, late_id, data) = stream.expect().await?;
    assert_eq!(event, "deployment");
    assert_eq!(
        (
            data["deployment"].as_str(),
            data["state"].as_str(),
            data["from"].as_str()
        ),
        (
            Some(first.to_string().as_str()),
            Some("building"),
            Some("queued")
        ),
        "{data}"
    );
    assert_eq!(data["app"], "web");
    let (_, _, data) = stream.expect().await?;
    assert_eq!(data["deployment"], second.to_string());

    // New lines arrive on the same stream.
    sqlx::query(
        "INSERT INTO deployment_logs (deployment_id, seq, at, stage, stream, attempt, line)
         VALUES ($1, 1, now(), 'build', 'stderr', 1, 'second''s line')",
    )
    .bind(second)
    .execute(&api.db.pool)
    .await?;
    let (event, line_id, data) = stream.expect().await?;
    assert_eq!(
        (event.as_str(), data["line"].as_str()),
        ("log", Some("second's line"))
    );
    assert!(line_id.ends_with("~1~1"), "{line_id}");
    drop(stream);

    // Resuming after the late event sends what followed it, nothing before.
    let mut resumed = Sse::open(&api, &token, &query, Some(&late_id)).await?;
    let (event, _, data) = resumed.expect().await?;
    assert_eq!(
        (event.as_str(), data["deployment"].as_str()),
        ("deployment", Some(second.to_string().as_str()))
    );
    let (event, _, data) = resumed.expect().await?;
    assert_eq!(
        (event.as_str(), data["line"].as_str()),
        ("log", Some("second's line"))
    );
    drop(resumed);
    // Not following: what is stored after the cursor, then the end.
    let bounded = api
        .client
        .get(format!("{}/v1/events?{query}&follow=false", api.url))
        .bearer_auth(&token)
        .header("Last-Event-ID", &late_id)
        .send()
        .await?
        .text()
        .await?;
    let events: Vec<&str> = bounded
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(events, ["deployment", "log"], "{bounded}");

    // Another project's deployment, bad ids and foreign cursors are refused.
    let refused = [
        (other.as_str(), query.clone(), None, 404),
        (token.as_str(), "deployments=nope".to_owned(), None, 422),
        (token.as_str(), "apps=missing".to_owned(), None, 404),
        (token.as_str(), "colour=red".to_owned(), None, 400),
        (token.as_str(), "deployments=&apps=".to_owned(), None, 422),
        (token.as_str(), query.clone(), Some("12.3"), 422),
        (token.as_str(), query.clone(), Some("x"), 422),
    ];
    for (token, query, last, code) in refused {
        let mut request = api
            .client
            .get(format!("{}/v1/events?{query}", api.url))
            .bearer_auth(token);
        if let Some(last) = last {
            request = request.header("Last-Event-ID", last);
        }
        let response = request.send().await?;
        assert_eq!(response.status().as_u16(), code, "{query} {last:?}");
        let body: Value = response.json().await?;
        assert!(body["code"].is_string(), "{body}");
    }
    api.stop().await;
    Ok(())
}
