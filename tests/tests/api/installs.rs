//! `/v1/installs` through the in-process API, no workers: bad input (an
//! unknown region, a size not in the region, a provider that is not the
//! account's, an app name taken, `app.target` given, no `app.git_url`, a
//! bad domain, caps) answers 4xx with the servers' and apps' codes and
//! writes nothing — no server, app or install row, nothing asked of the
//! fake; a good request records all three in one go, the server `pending`
//! with its create queued; the install's app refuses deploys and starts
//! with 409 `server_not_ready` while the server is not ready; a DELETE
//! before anything reached the server removes the app at once, queues the
//! server's destroy, and answers the same when asked again.

use super::servers::{accounts, post, set_caps};
use super::Api;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use slipway_shared::egress::OutboundPolicy;

/// A repository the API may accept (loopback is allowed here; nothing
/// fetches it without workers).
const GIT_URL: &str = "http://127.0.0.1:9/shop.git";

/// (servers, apps, installs) rows.
async fn rows(api: &Api) -> (i64, i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM servers), (SELECT count(*) FROM apps),
                (SELECT count(*) FROM installs)",
    )
    .fetch_one(&api.db.pool)
    .await
    .unwrap()
}

fn install(provider: &str, account: &str, region: &str, size: &str, app: Value) -> Value {
    json!({"provider": provider, "account": account, "region": region, "size": size, "app": app})
}

fn shop() -> Value {
    json!({"name": "shop", "git_url": GIT_URL})
}

#[tokio::test]
async fn bad_install_requests_write_nothing() -> anyhow::Result<()> {
    let api = Api::start_with(OutboundPolicy::new(
        OutboundPolicy::parse_allow("loopback").map_err(anyhow::Error::msg)?,
        vec![],
    ))
    .await?;
    let (_, token) = api.project("installs").await;
    let (hetzner, _openstack) = accounts(&api, &token).await?;
    let (status, taken) = post(&api, &token, "/v1/apps", json!({"name": "taken"})).await;
    assert_eq!(status, StatusCode::CREATED, "{taken}");
    let before = rows(&api).await;

    let mut with_domain = install("hetzner", "main", "fsn1", "cx22", shop());
    with_domain["domain"] = json!("Not A Host");
    let mut unknown_field = install("hetzner", "main", "fsn1", "cx22", shop());
    unknown_field["colour"] = json!("blue");
    for (body, status, code) in [
        (
            install("hetzner", "nope", "fsn1", "cx22", shop()),
            404,
            "not_found",
        ),
        (
            install("hetzner", "main", "xx9", "cx22", shop()),
            422,
            "unknown_region",
        ),
        (
            install("hetzner", "main", "fsn1", "huge", shop()),
            422,
            "unknown_size",
        ),
        (
            install("hetzner", "main", "hel1", "cax11", shop()),
            422,
            "size_not_in_region",
        ),
        (
            install("openstack", "main", "fsn1", "cx22", shop()),
            422,
            "provider_mismatch",
        ),
        (
            install("openstack", "ovh", "SBG5", "d2-2", shop()),
            422,
            "region_not_in_account",
        ),
        (
            install(
                "hetzner",
                "main",
                "fsn1",
                "cx22",
                json!({"name": "taken", "git_url": GIT_URL}),
            ),
            409,
            "conflict",
        ),
        (
            install(
                "hetzner",
                "main",
                "fsn1",
                "cx22",
                json!({"name": "shop", "git_url": GIT_URL, "target": "local"}),
            ),
            422,
            "validation_failed",
        ),
        (
            install("hetzner", "main", "fsn1", "cx22", json!({"name": "shop"})),
            422,
            "validation_failed",
        ),
        (
            install(
                "hetzner",
                "main",
                "fsn1",
                "cx22",
                json!({"name": "Shop!", "git_url": GIT_URL}),
            ),
            422,
            "validation_failed",
        ),
        (with_domain, 422, "validation_failed"),
        (unknown_field, 422, "validation_failed"),
    ] {
        let (got, answer) = post(&api, &token, "/v1/installs", body.clone()).await;
        assert_eq!(
            (got.as_u16(), answer["code"].as_str()),
            (status, Some(code)),
            "{body}: {answer}"
        );
        assert_eq!(rows(&api).await, before, "nothing written for {body}");
    }
    set_caps(&api, &token, r#"{"max_servers":0,"max_monthly_eur":null}"#).await;
    let (status, capped) = post(
        &api,
        &token,
        "/v1/installs",
        install("hetzner", "main", "fsn1", "cx22", shop()),
    )
    .await;
    assert_eq!(
        (status, capped["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("cap_exceeded")),
        "{capped}"
    );
    assert_eq!(rows(&api).await, before, "nothing written over the cap");
    let creates = hetzner
        .requests()
        .iter()
        .filter(|r| r.starts_with("POST"))
        .count();
    assert_eq!(creates, 0, "nothing bought: {:?}", hetzner.requests());
    Ok(())
}

#[tokio::test]
async fn an_install_is_recorded_whole_and_its_app_waits_for_its_server() -> anyhow::Result<()> {
    let api = Api::start_with(OutboundPolicy::new(
        OutboundPolicy::parse_allow("loopback").map_err(anyhow::Error::msg)?,
        vec![],
    ))
    .await?;
    let (_, token) = api.project("installs").await;
    let (_hetzner, _openstack) = accounts(&api, &token).await?;
    let before = rows(&api).await;
    let answer = api
        .client
        .post(format!("{}/v1/installs", api.url))
        .bearer_auth(&token)
        .json(&install("hetzner", "main", "fsn1", "cx22", shop()))
        .send()
        .await?;
    let status = answer.status();
    let location = answer.headers().get("location").cloned();
    let made: Value = answer.json().await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{made}");
    let id = made["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        location.as_ref().and_then(|l| l.to_str().ok()),
        Some(format!("/v1/installs/{id}").as_str())
    );
    assert_eq!(made["status"], "pending", "{made}");
    assert_eq!(made["environment"], "production");
    assert_eq!(made["estimated_cost_eur"], "4.29", "{made}");
    assert_eq!(made["server"]["name"], "shop");
    assert_eq!(made["server"]["state"], "pending");
    assert_eq!(made["app"]["name"], "shop");
    assert!(made["dns"].is_null() && made["app_url"].is_null(), "{made}");
    let steps: Vec<(&str, &str)> = made["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or_default(),
                s["state"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("provision", "pending"),
            ("configure", "pending"),
            // The app builds while its server is made.
            ("deploy", "running"),
            ("verify", "pending")
        ]
    );
    assert!(made["steps"][0]["operation"].is_string(), "{made}");
    assert!(made["steps"][2]["operation"].is_string(), "{made}");
    assert_eq!(
        rows(&api).await,
        (before.0 + 1, before.1 + 1, before.2 + 1),
        "a server, an app and an install"
    );
    let (status, server) = api
        .call(Method::GET, "/v1/servers/shop", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(server["operations"][0]["kind"], "server_create");
    assert_eq!(server["environment"], "production");

    // Its app cannot be deployed or started before its server is ready.
    for path in ["/v1/apps/shop/deployments", "/v1/apps/shop/start"] {
        let (status, refused) = api.call(Method::POST, path, Some(&token), None).await;
        assert_eq!(
            (status, refused["code"].as_str()),
            (StatusCode::CONFLICT, Some("server_not_ready")),
            "{path}: {refused}"
        );
    }

    // With a domain: the record to create, its value once the server has one.
    let mut named = install(
        "hetzner",
        "main",
        "fsn1",
        "cx22",
        json!({"name": "blog", "git_url": GIT_URL}),
    );
    named["domain"] = json!("blog.example.com");
    named["server_name"] = json!("blog-1");
    named["environment"] = json!("staging");
    let (status, blog) = post(&api, &token, "/v1/installs", named).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{blog}");
    assert_eq!(blog["server"]["name"], "blog-1");
    assert_eq!(blog["environment"], "staging");
    assert_eq!(blog["dns"]["type"], "A");
    assert_eq!(blog["dns"]["name"], "blog.example.com");
    assert!(blog["dns"]["value"].is_null(), "{blog}");
    let (status, app) = api
        .call(Method::GET, "/v1/apps/blog", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app["domains"], json!(["blog.example.com"]), "{app}");

    let (status, listed) = api
        .call(Method::GET, "/v1/installs", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = listed["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["id"].as_str())
        .collect();
    assert_eq!(ids, [blog["id"].as_str().unwrap_or_default(), id.as_str()]);
    let (status, missing) = api
        .call(
            Method::GET,
            "/v1/installs/0190a5d0-0000-7000-8000-000000000000",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        (status, missing["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );

    // Followed: the install at once, as an `install` event.
    let mut stream = api
        .client
        .get(format!("{}/v1/installs/{id}", api.url))
        .bearer_auth(&token)
        .header("accept", "text/event-stream")
        .send()
        .await?;
    assert_eq!(stream.status(), StatusCode::OK);
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), stream.chunk())
        .await??
        .unwrap_or_default();
    let first = String::from_utf8_lossy(&first);
    assert!(
        first.contains("event: install") && first.contains(&id) && first.contains("pending"),
        "{first}"
    );
    drop(stream);

    // Nothing reached the server yet: the app goes at once, the server's
    // destroy is queued (it waits for the create).
    let path = format!("/v1/installs/{id}");
    let (status, destroying) = api.call(Method::DELETE, &path, Some(&token), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{destroying}");
    assert_eq!(destroying["status"], "destroying", "{destroying}");
    assert_eq!(destroying["server"]["state"], "destroying");
    let (status, _) = api
        .call(Method::GET, "/v1/apps/shop", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the app is gone");
    let (status, again) = api.call(Method::DELETE, &path, Some(&token), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{again}");
    assert_eq!(again["status"], "destroying");
    let destroys: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM deployments d JOIN installs i ON i.server_id = d.server_id
         WHERE i.id = $1::uuid AND d.kind = 'server_destroy'",
    )
    .bind(&id)
    .fetch_one(&api.db.pool)
    .await?;
    assert_eq!(destroys, 1, "one destroy queued");
    Ok(())
}
