//! Server images through the real fleet and the provider fakes, whose
//! snapshots are real test hosts committed as they were (root and `/home`):
//! per driver, with an account that saves images, the first server is set
//! up and saved (the image labelled, priced, listed); the next server of
//! its kind is created from it, its setup finds everything done, and the
//! first server's key it carried is removed; the account cannot be deleted
//! while the image bills; deleting the image leaves nothing at the fake
//! and no saved host. An account that saves none creates from the
//! distribution image (every other server test).

use super::common::Fleet;
use super::log_text;
use super::servers::{
    create, full_fleet, hetzner_account, hetzner_with_hosts, openstack_account,
    openstack_with_hosts, operation, wait_server, LONG,
};
use anyhow::Context;
use reqwest::Method;
use serde_json::json;
use slipway_testkit::cloud_fake::hosts::FakeHosts;

/// A ready server's create logs.
async fn ready(fleet: &Fleet, hosts: &FakeHosts, id: &str) -> anyhow::Result<String> {
    let ready = wait_server(fleet, id, &["ready", "failed"], LONG).await?;
    let create_op = operation(fleet, &ready, 0).await?;
    let logs = log_text(fleet, &create_op).await?;
    assert_eq!(
        ready["state"],
        "ready",
        "{ready:#}\n{logs}\nboot failures: {:?}\n{}",
        hosts.failures.lock().unwrap(),
        fleet.logs()
    );
    Ok(logs)
}

async fn destroy(fleet: &Fleet, name: &str, id: &str) -> anyhow::Result<()> {
    let (status, body) = fleet
        .call(Method::DELETE, &format!("/v1/servers/{name}"), None)
        .await?;
    assert_eq!(status, 202, "{body}");
    let destroyed = wait_server(fleet, id, &["destroyed", "failed"], LONG).await?;
    assert_eq!(destroyed["state"], "destroyed", "{destroyed:#}");
    Ok(())
}

async fn saved_and_used(
    fleet: &Fleet,
    hosts: &FakeHosts,
    (account, region, size): (&str, &str, &str),
    images_held: impl Fn() -> usize,
) -> anyhow::Result<()> {
    let (status, changed) = fleet
        .call(
            Method::PATCH,
            &format!("/v1/cloud-accounts/{account}"),
            Some(json!({"server_images": true})),
        )
        .await?;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["server_images"], true);

    let first = create(fleet, account, region, size, "img-1").await?;
    let first_id = first["id"].as_str().context("id")?.to_owned();
    let logs = ready(fleet, hosts, &first_id).await?;
    assert!(logs.contains("changed: installed"), "{logs}");
    assert!(logs.contains("saving server image"), "{logs}");
    assert!(logs.contains("saved server image"), "{logs}");
    assert_eq!(images_held(), 1);
    assert_eq!(hosts.saved(), 1);
    let (_, listed) = fleet.call(Method::GET, "/v1/server-images", None).await?;
    let images = listed["items"].as_array().context("items")?;
    assert_eq!(images.len(), 1, "{listed:#}");
    let image = &images[0];
    assert_eq!(image["state"], "available", "{image:#}");
    assert_eq!(image["region"], region);
    assert_eq!(image["source_server_id"], first["id"]);
    assert!(
        image["size_gb"].as_f64().is_some_and(|gb| gb > 0.0),
        "{image}"
    );
    assert!(
        image["monthly_cost_eur"]
            .as_f64()
            .is_some_and(|eur| eur > 0.0),
        "{image}"
    );
    let image_id = image["id"].as_str().context("image id")?.to_owned();

    // The next server of that kind starts from it, set up.
    let second = create(fleet, account, region, size, "img-2").await?;
    let second_id = second["id"].as_str().context("id")?.to_owned();
    let logs = ready(fleet, hosts, &second_id).await?;
    assert!(logs.contains("from server image"), "{logs}");
    let (_, shown) = fleet
        .call(Method::GET, &format!("/v1/servers/{second_id}"), None)
        .await?;
    assert_eq!(shown["server_image"], image["id"], "{shown:#}");
    assert!(logs.contains("installed already"), "{logs}");
    assert!(!logs.contains("changed: installed"), "{logs}");
    assert!(
        logs.contains(
            "removed the image's source server key from /home/slipway/.ssh/authorized_keys"
        ),
        "{logs}"
    );
    assert!(
        !logs.contains("saving server image"),
        "one image per kind: {logs}"
    );
    assert_eq!(images_held(), 1);

    // It bills: the account stays while it is kept.
    let (status, refused) = fleet
        .call(
            Method::DELETE,
            &format!("/v1/cloud-accounts/{account}"),
            None,
        )
        .await?;
    assert_eq!(status, 409, "{refused}");
    destroy(fleet, "img-1", &first_id).await?;
    destroy(fleet, "img-2", &second_id).await?;
    let (status, refused) = fleet
        .call(
            Method::DELETE,
            &format!("/v1/cloud-accounts/{account}"),
            None,
        )
        .await?;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["code"], "account_in_use", "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap_or_default()
            .contains(&image_id),
        "{refused}"
    );

    let (status, body) = fleet
        .call(
            Method::DELETE,
            &format!("/v1/server-images/{image_id}"),
            None,
        )
        .await?;
    assert_eq!(status, 204, "{body}");
    assert_eq!(images_held(), 0, "the fake holds no image");
    assert_eq!(hosts.saved(), 0, "no saved host is left");
    assert_eq!(hosts.running(), 0);
    let (_, listed) = fleet.call(Method::GET, "/v1/server-images", None).await?;
    assert_eq!(listed["items"], json!([]), "{listed:#}");
    let (status, body) = fleet
        .call(
            Method::DELETE,
            &format!("/v1/cloud-accounts/{account}"),
            None,
        )
        .await?;
    assert_eq!(status, 204, "{body}");
    Ok(())
}

#[tokio::test]
async fn a_hetzner_server_image_is_saved_used_and_deleted() -> anyhow::Result<()> {
    let (hosts, fake) = hetzner_with_hosts().await?;
    fake.on_images(hosts.image_hooks());
    let (fleet, _registry, _caddy, _dirs) = full_fleet(&[], 0).await?;
    hetzner_account(&fleet, &fake).await?;
    saved_and_used(&fleet, &hosts, ("main", "fsn1", "cx22"), || fake.images()).await?;
    fleet.stop().await;
    Ok(())
}

#[tokio::test]
async fn an_openstack_server_image_is_saved_used_and_deleted() -> anyhow::Result<()> {
    let (hosts, fake) = openstack_with_hosts().await?;
    fake.on_images(hosts.image_hooks());
    let (fleet, _registry, _caddy, _dirs) = full_fleet(&[], 0).await?;
    openstack_account(&fleet, &fake).await?;
    saved_and_used(&fleet, &hosts, ("ovh", "GRA11", "d2-2"), || fake.images()).await?;
    fleet.stop().await;
    Ok(())
}
