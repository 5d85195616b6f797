//! Server images through the real fleet and the provider fakes, whose
//! snapshots are real test hosts committed as they were (root and `/home`):
//! per driver, with an account that saves images, the first server is set
//! up and saved (the image labelled, priced, listed); the next server of
//! its kind is created from it, its setup finds everything done, and the
//! first server's key it carried is removed; the account cannot be deleted
//! while the image bills; deleting the image leaves nothing at the fake
//! and no saved host. An install's server is saved with the layers of its
//! app's base image, and the next install's server holds them. An account
//! that saves none creates from the distribution image (every other server
//! test).

use super::common::{example, Fleet, GitSource};
use super::installs::{step_logs, wait};
use super::log_text;
use super::servers::{
    create, full_fleet, hetzner_account, hetzner_with_hosts, openstack_account,
    openstack_with_hosts, operation, read_until, wait_server, LONG, TOKEN,
};
use anyhow::Context;
use reqwest::Method;
use serde_json::{json, Value};
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

    // As a create that died while saving would leave it: `saving`, with
    // no create open. It can be deleted all the same.
    sqlx::query("UPDATE server_images SET state = 'saving' WHERE id::text = $1")
        .bind(&image_id)
        .execute(&fleet.db.pool)
        .await?;
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

/// Installs with an account that saves server images: the first install's
/// server is saved once set up, with the layers of the base image its
/// app's build used (the build mirrors it to the registry; held in the
/// provider's create until that build has ended, so the project has a
/// build to name it); the next install's server is made from the image and
/// holds that base image before its deploy pulls anything.
#[tokio::test]
async fn an_install_from_a_server_image_holds_its_base_layers() -> anyhow::Result<()> {
    let (hosts, fake) = hetzner_with_hosts().await?;
    fake.on_images(hosts.image_hooks());
    let (fleet, _registry, _caddy, _dirs) = full_fleet(&[], 1).await?;
    let (status, made) = fleet
        .call(
            Method::POST,
            "/v1/cloud-accounts",
            Some(json!({
            "provider": "hetzner", "name": "main", "endpoint": fake.url(),
            "credentials": {"token": TOKEN}, "server_images": true})),
        )
        .await?;
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["server_images"], true, "{made}");
    let source = GitSource::serve("site", &example("static-site"))?;
    let body = json!({"provider": "hetzner", "account": "main", "region": "fsn1", "size": "cx22",
                      "app": {"name": "site", "git_url": source.url, "git_ref": "main"}});

    fake.faults(|f| f.stuck_creating = true);
    let built = |first: &Value| {
        let deploy = first["steps"][2]["operation"].as_str().unwrap_or_default();
        let path = format!("/v1/deployments/{deploy}");
        let fleet = &fleet;
        let fake = &fake;
        async move {
            read_until(fleet, &path, LONG, |d| d["state"] == "built").await?;
            fake.faults(|f| f.stuck_creating = false);
            Ok(())
        }
    };
    let (first_id, create) = completed_install(&fleet, &body, Some(built)).await?;
    assert!(
        create.contains("the image holds the layers of base image localhost/slipway/static"),
        "{create}"
    );
    assert!(create.contains("saved server image"), "{create}");
    destroy_install(&fleet, &first_id).await?;

    let (second_id, create) = completed_install(
        &fleet,
        &body,
        None::<fn(&Value) -> std::future::Ready<anyhow::Result<()>>>,
    )
    .await?;
    assert!(create.contains("from server image"), "{create}");
    let container = hosts.containers().into_iter().next().context("its host")?;
    let out = std::process::Command::new("podman")
        .args([
            "exec",
            &container,
            "su",
            "-",
            "slipway",
            "-c",
            "XDG_RUNTIME_DIR=/run/user/$(id -u) podman images --format '{{.Repository}}'",
        ])
        .output()?;
    let images = String::from_utf8_lossy(&out.stdout);
    assert!(images.contains("/slipway-base/slipway/static"), "{images}");
    destroy_install(&fleet, &second_id).await?;

    let (_, listed) = fleet.call(Method::GET, "/v1/server-images", None).await?;
    for image in listed["items"].as_array().into_iter().flatten() {
        let id = image["id"].as_str().context("image id")?;
        let (status, body) = fleet
            .call(Method::DELETE, &format!("/v1/server-images/{id}"), None)
            .await?;
        assert_eq!(status, 204, "{body}");
    }
    assert_eq!(
        (fake.holdings(), fake.images(), hosts.saved()),
        ((0, 0, 0), 0, 0)
    );
    fleet.stop().await;
    Ok(())
}

/// Posts the install, runs `meanwhile` with its answer, waits for it to
/// complete: its id and its server create's logs.
async fn completed_install<F, Fut>(
    fleet: &Fleet,
    body: &Value,
    meanwhile: Option<F>,
) -> anyhow::Result<(String, String)>
where
    F: Fn(&Value) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let (status, made) = fleet
        .call(Method::POST, "/v1/installs", Some(body.clone()))
        .await?;
    assert_eq!(status, 202, "{made}");
    if let Some(meanwhile) = meanwhile {
        meanwhile(&made).await?;
    }
    let id = made["id"].as_str().context("id")?.to_owned();
    let completed = wait(fleet, &id, &["completed", "failed"]).await?;
    assert_eq!(
        completed["status"],
        "completed",
        "{completed:#}\n{}",
        fleet.logs()
    );
    Ok((id, step_logs(fleet, &completed, 0).await?))
}

async fn destroy_install(fleet: &Fleet, id: &str) -> anyhow::Result<()> {
    let (status, destroying) = fleet
        .call(Method::DELETE, &format!("/v1/installs/{id}"), None)
        .await?;
    assert_eq!(status, 202, "{destroying}");
    let destroyed = wait(fleet, id, &["destroyed", "failed"]).await?;
    assert_eq!(destroyed["status"], "destroyed", "{destroyed:#}");
    Ok(())
}
