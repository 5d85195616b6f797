//! Providers, prices, estimates, cloud accounts and caps through the API,
//! with the provider fakes of `slipway_testkit::cloud_fake` as the
//! accounts' endpoints.

use super::Api;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use slipway_shared::egress::OutboundPolicy;
use slipway_testkit::cloud_fake::hetzner::FakeHetzner;
use slipway_testkit::cloud_fake::openstack::FakeOpenStack;

async fn loopback_api() -> anyhow::Result<Api> {
    Api::start_with(OutboundPolicy::new(
        OutboundPolicy::parse_allow("loopback").map_err(anyhow::Error::msg)?,
        vec![],
    ))
    .await
}

async fn post(api: &Api, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
    api.call(Method::POST, path, Some(token), Some(&body.to_string()))
        .await
}

#[tokio::test]
async fn providers_and_estimates_come_from_dated_tables() -> anyhow::Result<()> {
    let api = Api::start().await?;
    let (_, token) = api.project("prices").await;
    let (status, listed) = api
        .call(Method::GET, "/v1/providers", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["provider"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "hetzner",
            "scaleway",
            "openstack",
            "exoscale",
            "contabo",
            "lightsail"
        ]
    );
    for provider in listed["items"].as_array().unwrap() {
        assert_eq!(provider["origin"], "table");
        assert!(provider["source"].as_str().unwrap().starts_with("https://"));
        assert!(provider["as_of"].is_string() && provider["vat"].is_string());
        assert!(!provider["sizes"][0]["prices"]
            .as_array()
            .unwrap()
            .is_empty());
    }
    let (status, lightsail) = api
        .call(Method::GET, "/v1/providers/lightsail", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(lightsail["exchange"]["from"], "USD");
    assert_eq!(lightsail["exchange"]["rate"], 0.8532);

    let (status, estimate) = post(
        &api,
        &token,
        "/v1/estimates",
        json!({"provider": "hetzner", "region": "fsn1", "size": "cx22", "backups": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{estimate}");
    let items: Vec<(&str, f64)> = estimate["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["item"].as_str().unwrap(),
                i["monthly_eur"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(items, [("server", 3.79), ("ipv4", 0.5), ("backups", 0.758)]);
    assert_eq!(estimate["monthly_total_eur"], 5.048);
    assert_eq!(estimate["vat"], "net");

    for (body, code) in [
        (
            json!({"provider": "digitalocean", "region": "x", "size": "y"}),
            "unknown_provider",
        ),
        (
            json!({"provider": "hetzner", "region": "mars1", "size": "cx22"}),
            "unknown_region",
        ),
        (
            json!({"provider": "hetzner", "region": "fsn1", "size": "cx999"}),
            "unknown_size",
        ),
        (
            json!({"provider": "scaleway", "region": "pl-waw-1", "size": "DEV1-XL"}),
            "size_not_in_region",
        ),
        (
            json!({"provider": "contabo", "region": "EU", "size": "V91", "backups": true}),
            "backups_not_offered",
        ),
    ] {
        let (status, answer) = post(&api, &token, "/v1/estimates", body.clone()).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(code)),
            "{body}: {answer}"
        );
    }
    let (status, answer) = api
        .call(
            Method::GET,
            "/v1/providers/digitalocean",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(answer["code"], "unknown_provider", "{status}");
    api.stop().await;
    Ok(())
}

#[tokio::test]
async fn accounts_are_checked_sealed_and_never_shown() -> anyhow::Result<()> {
    let api = loopback_api().await?;
    let (_, token) = api.project("cloud").await;
    let hetzner = FakeHetzner::start("hz-secret-token-123").await?;
    let account = |name: &str, secret: &str| {
        json!({"provider": "hetzner", "name": name, "endpoint": hetzner.url(),
               "credentials": {"token": secret}})
    };
    // A refused token: the provider's words, nothing written.
    let (status, refused) =
        post(&api, &token, "/v1/cloud-accounts", account("main", "wrong")).await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("invalid_credentials")
        ),
        "{refused}"
    );
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("unable to authenticate"),
        "{refused}"
    );
    assert_eq!(api.count("cloud_accounts").await, 0);

    let (status, made) = post(
        &api,
        &token,
        "/v1/cloud-accounts",
        account("main", "hz-secret-token-123"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!(made["credentials"], json!({"kind": "token", "set": true}));
    assert!(!made.to_string().contains("hz-secret-token-123"));
    let sealed: Vec<u8> = sqlx::query_scalar("SELECT credentials_sealed FROM cloud_accounts")
        .fetch_one(&api.db.pool)
        .await?;
    assert!(!String::from_utf8_lossy(&sealed).contains("hz-secret-token-123"));
    let (status, twice) = post(
        &api,
        &token,
        "/v1/cloud-accounts",
        account("main", "hz-secret-token-123"),
    )
    .await;
    assert_eq!(
        (status, twice["code"].as_str()),
        (StatusCode::CONFLICT, Some("conflict"))
    );

    // Live prices through the account, read from the provider's API.
    let (status, live) = api
        .call(
            Method::GET,
            "/v1/providers/hetzner?account=main",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{live}");
    assert_eq!(live["origin"], "live");
    let (status, estimate) = post(
        &api,
        &token,
        "/v1/estimates",
        json!({"provider": "hetzner", "account": "main", "region": "fsn1", "size": "cpx11"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{estimate}");
    assert_eq!(estimate["monthly_total_eur"], 4.85);
    let (_, arm) = post(
        &api,
        &token,
        "/v1/estimates",
        json!({"provider": "hetzner", "account": "main", "region": "hel1", "size": "cax11"}),
    )
    .await;
    assert_eq!(arm["code"], "size_not_in_region", "{arm}");

    // OpenStack with an application credential, then a wrong password.
    let openstack = FakeOpenStack::start("GRA11", None).await?;
    let (id, secret) = FakeOpenStack::APP_CREDENTIAL;
    let (status, made) = post(&api, &token, "/v1/cloud-accounts", json!({
        "provider": "openstack", "name": "ovh", "endpoint": openstack.auth_url(),
        "credentials": {"region": "GRA11", "application_credential_id": id, "application_credential_secret": secret}})).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!(
        (
            made["region"].as_str(),
            made["credentials"]["kind"].as_str()
        ),
        (Some("GRA11"), Some("application_credential"))
    );
    let (user, _, project) = FakeOpenStack::PASSWORD;
    let (status, refused) = post(&api, &token, "/v1/cloud-accounts", json!({
        "provider": "openstack", "name": "ovh2", "endpoint": openstack.auth_url(),
        "credentials": {"region": "GRA11", "username": user, "password": "nope", "project_id": project}})).await;
    assert_eq!(refused["code"], "invalid_credentials", "{status} {refused}");
    assert!(refused["message"]
        .as_str()
        .unwrap()
        .contains("requires authentication"));

    for (body, code) in [
        (
            json!({"provider": "scaleway", "name": "s", "credentials": {"token": "x"}}),
            "provider_not_supported",
        ),
        (
            json!({"provider": "nimbus", "name": "s", "credentials": {}}),
            "unknown_provider",
        ),
        (
            json!({"provider": "hetzner", "name": "s", "credentials": {"key": "x"}}),
            "invalid_credentials_shape",
        ),
        (
            json!({"provider": "hetzner", "name": "s", "endpoint": "ftp://x/", "credentials": {"token": "x"}}),
            "invalid_endpoint",
        ),
        (
            json!({"provider": "hetzner", "name": "s", "endpoint": "http://10.0.0.1/v1", "credentials": {"token": "x"}}),
            "address_not_allowed",
        ),
        // Nothing listens there: the account cannot be checked.
        (
            json!({"provider": "hetzner", "name": "s", "endpoint": "http://127.0.0.1:9/v1", "credentials": {"token": "x"}}),
            "provider_unreachable",
        ),
    ] {
        let (status, answer) = post(&api, &token, "/v1/cloud-accounts", body.clone()).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(code)),
            "{body}: {answer}"
        );
    }

    let (_, listed) = api
        .call(Method::GET, "/v1/cloud-accounts", Some(&token), None)
        .await;
    let names: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["main", "ovh"]);
    let (_, other) = api.project("other").await;
    let (status, _) = api
        .call(Method::GET, "/v1/cloud-accounts/main", Some(&other), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // While a server made with it is not destroyed, the account stays.
    let account_id: uuid::Uuid = made_id(&api, "ovh").await;
    sqlx::query(
        "INSERT INTO servers (id, project_id, account_id, name, provider, region, size, image, state, monthly_cost_eur_e4)
         SELECT gen_random_uuid(), project_id, id, 'web-1', 'openstack', 'GRA11', 'd2-2', 'Debian 12', 'ready', 38800
         FROM cloud_accounts WHERE id = $1",
    )
    .bind(account_id)
        .execute(&api.db.pool)
        .await?;
    let (status, in_use) = api
        .call(Method::DELETE, "/v1/cloud-accounts/ovh", Some(&token), None)
        .await;
    assert_eq!(
        (status, in_use["code"].as_str()),
        (StatusCode::CONFLICT, Some("account_in_use")),
        "{in_use}"
    );
    assert!(in_use["message"].as_str().unwrap().contains("web-1"));
    sqlx::query("UPDATE servers SET state = 'destroyed'")
        .execute(&api.db.pool)
        .await?;
    let (status, _) = api
        .call(Method::DELETE, "/v1/cloud-accounts/ovh", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api
        .call(Method::GET, "/v1/cloud-accounts/ovh", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    api.stop().await;
    Ok(())
}

async fn made_id(api: &Api, name: &str) -> uuid::Uuid {
    sqlx::query_scalar("SELECT id FROM cloud_accounts WHERE name = $1")
        .bind(name)
        .fetch_one(&api.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn caps_have_defaults_and_can_be_set() -> anyhow::Result<()> {
    let api = Api::start().await?;
    let (_, token) = api.project("caps").await;
    let (status, caps) = api
        .call(Method::GET, "/v1/cloud-caps", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(caps, json!({"max_servers": 3, "max_monthly_eur": 50.0}));
    let set = json!({"max_servers": 1, "max_monthly_eur": 20.5}).to_string();
    let (status, caps) = api
        .call(Method::PUT, "/v1/cloud-caps", Some(&token), Some(&set))
        .await;
    assert_eq!(
        (status, caps),
        (
            StatusCode::OK,
            json!({"max_servers": 1, "max_monthly_eur": 20.5})
        )
    );
    for bad in [
        json!({"max_servers": -1}),
        json!({"max_monthly_eur": 1e12}),
        json!({"max_servers": 20000}),
        json!({"cap": 1}),
        json!({"max_servers": 2.5}),
        json!([null, null]),
    ] {
        let (status, answer) = api
            .call(
                Method::PUT,
                "/v1/cloud-caps",
                Some(&token),
                Some(&bad.to_string()),
            )
            .await;
        assert_eq!(
            answer["code"], "validation_failed",
            "{bad}: {status} {answer}"
        );
    }
    let (_, caps) = api
        .call(Method::GET, "/v1/cloud-caps", Some(&token), None)
        .await;
    assert_eq!(caps["max_servers"], 1, "a refused update changed nothing");
    api.stop().await;
    Ok(())
}
