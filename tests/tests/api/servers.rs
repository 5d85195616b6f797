//! `/v1/servers` through the in-process API, no workers: bad input (an
//! unknown account, region or size, a size not sold in the region, a region
//! the account does not serve, a bad name, caps) answers 4xx with stable
//! codes and buys nothing — the fake is never asked to create anything and
//! no server row is written; a good request records the server `pending`
//! with its create queued and its monthly cost; names are the project's;
//! the account is held while servers use it; a destroy needs `force` while
//! an app is placed on the server's target and is queued once; and
//! the orphans of an account are what Slipway labelled that no server owns.

use super::Api;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use slipway_shared::egress::OutboundPolicy;
use slipway_testkit::cloud_fake::hetzner::FakeHetzner;
use slipway_testkit::cloud_fake::openstack::FakeOpenStack;

pub(super) async fn post(api: &Api, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
    api.call(Method::POST, path, Some(token), Some(&body.to_string()))
        .await
}

/// Two cloud accounts of the project: `main` at a Hetzner fake, `ovh` at
/// an OpenStack fake (region GRA11).
pub(super) async fn accounts(
    api: &Api,
    token: &str,
) -> anyhow::Result<(FakeHetzner, FakeOpenStack)> {
    let hetzner = FakeHetzner::start("hz-token").await?;
    let (status, made) = post(api, token, "/v1/cloud-accounts", json!({
        "provider": "hetzner", "name": "main", "endpoint": hetzner.url(), "credentials": {"token": "hz-token"}})).await;
    anyhow::ensure!(status == StatusCode::CREATED, "{made}");
    let openstack = FakeOpenStack::start("GRA11", None).await?;
    let (id, secret) = FakeOpenStack::APP_CREDENTIAL;
    let (status, made) = post(api, token, "/v1/cloud-accounts", json!({
        "provider": "openstack", "name": "ovh", "endpoint": openstack.auth_url(),
        "credentials": {"region": "GRA11", "application_credential_id": id, "application_credential_secret": secret}})).await;
    anyhow::ensure!(status == StatusCode::CREATED, "{made}");
    Ok((hetzner, openstack))
}

/// Sets the project's caps (`PUT /v1/cloud-caps` with `caps`).
pub(super) async fn set_caps(api: &Api, token: &str, caps: &str) {
    let (status, answer) = api
        .call(Method::PUT, "/v1/cloud-caps", Some(token), Some(caps))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

async fn servers_made(api: &Api) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM servers")
        .fetch_one(&api.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn bad_server_requests_buy_nothing() -> anyhow::Result<()> {
    let api = Api::start_with(OutboundPolicy::new(
        OutboundPolicy::parse_allow("loopback").map_err(anyhow::Error::msg)?,
        vec![],
    ))
    .await?;
    let (_, token) = api.project("servers").await;
    let (hetzner, _openstack) = accounts(&api, &token).await?;

    let server = |account: &str, region: &str, size: &str, name: &str| json!({"account": account, "region": region, "size": size, "name": name});
    for (body, status, code) in [
        (server("nope", "fsn1", "cx22", "web"), 404, "not_found"),
        (server("main", "xx9", "cx22", "web"), 422, "unknown_region"),
        (server("main", "fsn1", "huge", "web"), 422, "unknown_size"),
        (
            server("main", "hel1", "cax11", "web"),
            422,
            "size_not_in_region",
        ),
        (
            server("ovh", "SBG5", "d2-2", "web"),
            422,
            "region_not_in_account",
        ),
        (
            server("main", "fsn1", "cx22", "Web_1"),
            422,
            "validation_failed",
        ),
        (
            server("main", "fsn1", "cx22", "-web"),
            422,
            "validation_failed",
        ),
        (
            json!({"account": "main", "region": "fsn1", "size": "cx22", "name": "web", "image": "x'; reboot"}),
            422,
            "validation_failed",
        ),
        (
            json!({"account": "main", "region": "fsn1", "size": "cx22"}),
            422,
            "validation_failed",
        ),
    ] {
        let (got, answer) = post(&api, &token, "/v1/servers", body.clone()).await;
        assert_eq!(
            (got.as_u16(), answer["code"].as_str()),
            (status, Some(code)),
            "{body}: {answer}"
        );
    }
    // Caps: none may be bought.
    set_caps(&api, &token, r#"{"max_servers":0,"max_monthly_eur":null}"#).await;
    let (status, capped) = post(
        &api,
        &token,
        "/v1/servers",
        server("main", "fsn1", "cx22", "web"),
    )
    .await;
    assert_eq!(
        (status, capped["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("cap_exceeded")),
        "{capped}"
    );
    assert_eq!(servers_made(&api).await, 0);
    let creates = |requests: Vec<String>| requests.iter().filter(|r| r.starts_with("POST")).count();
    assert_eq!(creates(hetzner.requests()), 0, "{:?}", hetzner.requests());

    // Within the caps: recorded, pending, priced, its create queued.
    set_caps(&api, &token, r#"{"max_servers":1,"max_monthly_eur":20}"#).await;
    let (status, made) = post(&api, &token, "/v1/servers",
        json!({"account": "main", "region": "fsn1", "size": "cx22", "name": "web", "environment": "production"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{made}");
    assert_eq!(made["state"], "pending");
    assert_eq!(made["image"], "debian-12");
    assert_eq!(made["environment"], "production");
    // The fake's cx22 costs 3.79 EUR net a month, and an IPv4 0.50.
    assert_eq!(made["monthly_cost_eur"], 4.29, "{made}");
    assert_eq!(made["operations"][0]["kind"], "server_create");
    assert_eq!(made["operations"][0]["state"], "built");
    assert_eq!(
        creates(hetzner.requests()),
        0,
        "nothing bought by the API itself"
    );
    let (status, again) = post(
        &api,
        &token,
        "/v1/servers",
        server("main", "nbg1", "cx22", "web"),
    )
    .await;
    assert_eq!(
        (status, again["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("cap_exceeded")),
        "{again}"
    );
    set_caps(&api, &token, r#"{"max_servers":5,"max_monthly_eur":null}"#).await;
    let (status, again) = post(
        &api,
        &token,
        "/v1/servers",
        server("main", "nbg1", "cx22", "web"),
    )
    .await;
    assert_eq!(
        (status, again["code"].as_str()),
        (StatusCode::CONFLICT, Some("conflict")),
        "{again}"
    );
    let (status, listed) = api
        .call(Method::GET, "/v1/servers", Some(&token), None)
        .await;
    assert_eq!(
        (status, listed["items"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(1))
    );
    let (_, elsewhere) = api.project("elsewhere").await;
    let (status, other) = api
        .call(Method::GET, "/v1/servers/web", Some(&elsewhere), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{other}");

    // The account is held while the server is not destroyed.
    let (status, in_use) = api
        .call(
            Method::DELETE,
            "/v1/cloud-accounts/main",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        (status, in_use["code"].as_str()),
        (StatusCode::CONFLICT, Some("account_in_use")),
        "{in_use}"
    );

    // Orphans: a server labelled by Slipway for a server nobody has is
    // one; one labelled for an existing server is not; one not labelled
    // is none of Slipway's business.
    let web_id = made["id"].as_str().unwrap();
    hetzner.seed_server(
        "lost",
        json!({"managed-by": "slipway", "slipway-server": "0190a5d0-0000-7000-8000-000000000009"}),
    );
    hetzner.seed_server(
        "web",
        json!({"managed-by": "slipway", "slipway-server": web_id}),
    );
    hetzner.seed_server("theirs", json!({"team": "ops"}));
    let (status, orphans) = api
        .call(
            Method::GET,
            "/v1/cloud-accounts/main/orphans",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{orphans}");
    let names: Vec<&str> = orphans["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["lost"], "{orphans}");

    // While an app is placed on its target, a destroy needs `force`.
    let target: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO targets (id, project_id, name, kind, host, port, ssh_user, key_sealed, known_hosts)
         SELECT gen_random_uuid(), project_id, 'web', 'ssh', '127.0.0.1', 22, 'root', '\\x00', 'x'
         FROM servers WHERE name = 'web' RETURNING id",
    )
    .fetch_one(&api.db.pool)
    .await?;
    sqlx::query("UPDATE servers SET target_id = $1 WHERE name = 'web'")
        .bind(target)
        .execute(&api.db.pool)
        .await?;
    let app =
        json!({"name": "site", "git_url": "https://example.invalid/site.git", "target": "web"});
    let (status, made_app) = post(&api, &token, "/v1/apps", app).await;
    assert_eq!(status, StatusCode::CREATED, "{made_app}");
    let (status, in_use) = api
        .call(Method::DELETE, "/v1/servers/web", Some(&token), None)
        .await;
    assert_eq!(
        (status, in_use["code"].as_str()),
        (StatusCode::CONFLICT, Some("server_in_use")),
        "{in_use}"
    );
    assert!(in_use["message"].as_str().unwrap().contains("site"));

    // A destroy is queued once; asking again answers the same.
    let (status, destroying) = api
        .call(
            Method::DELETE,
            "/v1/servers/web?force=true",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{destroying}");
    assert_eq!(destroying["state"], "destroying");
    let (_, again) = api
        .call(Method::DELETE, "/v1/servers/web", Some(&token), None)
        .await;
    assert_eq!(
        again["operations"].as_array().map(Vec::len),
        Some(2),
        "{again}"
    );
    let (status, bad) = api
        .call(
            Method::DELETE,
            "/v1/servers/web?force=maybe",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        (status, bad["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_query")),
        "{bad}"
    );
    api.stop().await;
    Ok(())
}
