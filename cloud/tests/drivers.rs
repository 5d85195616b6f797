//! The drivers against the provider fakes of `slipway_testkit::cloud_fake`:
//! a server's whole life (key, firewall, create, asynchronous progress,
//! get, list by label, delete), pages followed to the end, 429 answered by
//! waiting what `Retry-After` says, the providers' own words in every
//! refusal and failure, and a server saved as an image and created from.

use secrecy::SecretString;
use serde_json::json;
use slipway_cloud::driver::{
    CloudDriver, ImageStatus, InboundTcp, Labels, Polling, ServerRequest, ServerStatus,
};
use slipway_cloud::hetzner::Hetzner;
use slipway_cloud::http::RetryPolicy;
use slipway_cloud::openstack::{Credentials, OpenStack};
use slipway_cloud::CloudError;
use slipway_testkit::cloud_fake::hetzner::FakeHetzner;
use slipway_testkit::cloud_fake::openstack::FakeOpenStack;
use slipway_testkit::cloud_fake::{AddressHook, CreatedServer};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOKEN: &str = "hcloud-test-token";
const LIMIT: Duration = Duration::from_secs(10);
const PUBLIC_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeFakeFakeFakeFakeFakeFakeFakeFakeFake slipway";

fn quick() -> (RetryPolicy, Polling) {
    let retry = RetryPolicy {
        retries: 3,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        max_wait: Duration::from_secs(5),
    };
    (
        retry,
        Polling {
            interval: Duration::from_millis(10),
        },
    )
}

fn hetzner(fake: &FakeHetzner, token: &str) -> Hetzner {
    let (retry, polling) = quick();
    Hetzner::new(
        Some(&fake.url()),
        SecretString::from(token.to_owned()),
        retry,
        polling,
    )
    .unwrap()
}

fn openstack(fake: &FakeOpenStack, credentials: Credentials) -> OpenStack {
    let (retry, polling) = quick();
    OpenStack::new(&fake.auth_url(), credentials, "GRA11", retry, polling).unwrap()
}

fn password(secret: &str) -> Credentials {
    let (user, _, project) = FakeOpenStack::PASSWORD;
    Credentials::Password {
        username: user.into(),
        password: secret.to_owned().into(),
        user_domain: "Default".into(),
        project_id: project.into(),
    }
}

fn app_credential() -> Credentials {
    let (id, secret) = FakeOpenStack::APP_CREDENTIAL;
    Credentials::ApplicationCredential {
        id: id.into(),
        secret: secret.to_owned().into(),
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A hook that records what it was told and answers 198.51.100.7.
fn recording_hook() -> (AddressHook, Arc<Mutex<Vec<CreatedServer>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let hook: AddressHook = Arc::new(move |created| {
        record.lock().unwrap().push(created);
        Box::pin(async { Ipv4Addr::new(198, 51, 100, 7) })
    });
    (hook, seen)
}

/// Key, firewall, server, wait, get, list, delete: the same for every driver.
async fn whole_life(
    driver: &dyn CloudDriver,
    size: &str,
    region: &str,
    image: &str,
) -> Result<(), CloudError> {
    let mine = labels(&[("slipway", "test"), ("server", "s1")]);
    let key = driver.create_key("slipway-s1", PUBLIC_KEY, &mine).await?;
    let firewall = driver
        .create_firewall("slipway-s1", &[InboundTcp(22), InboundTcp(443)], &mine)
        .await?;
    let request = ServerRequest {
        name: "slipway-s1".into(),
        region: region.into(),
        size: size.into(),
        image: image.into(),
        ssh_key: key.id.clone(),
        user_data: "#cloud-config\nhostname: s1\n".into(),
        firewall: Some(firewall.id.clone()),
        labels: mine.clone(),
    };
    let created = driver.create_server(&request).await?;
    assert_eq!(created.status, ServerStatus::Creating, "{created:?}");
    let running = driver.wait_running(&created.id, LIMIT).await?;
    assert_eq!(running.status, ServerStatus::Running);
    assert_eq!(running.ipv4, Some(Ipv4Addr::new(198, 51, 100, 7)));
    let got = driver
        .get_server(&created.id)
        .await?
        .expect("the server is there");
    assert_eq!(
        (got.id.as_str(), got.labels.clone()),
        (created.id.as_str(), mine.clone())
    );
    let listed = driver.list_servers(&labels(&[("server", "s1")])).await?;
    assert_eq!(
        listed.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        [created.id.as_str()]
    );
    assert!(driver
        .list_servers(&labels(&[("server", "other")]))
        .await?
        .is_empty());
    driver.delete_server(&created.id, LIMIT).await?;
    assert_eq!(driver.get_server(&created.id).await?, None);
    // Deleting again is done already.
    driver.delete_server(&created.id, LIMIT).await?;
    driver.delete_firewall(&firewall.id).await?;
    driver.delete_key(&key.id).await?;
    driver.delete_key(&key.id).await?;
    Ok(())
}

#[tokio::test]
async fn hetzner_server_lives_and_dies() -> anyhow::Result<()> {
    let (hook, seen) = recording_hook();
    let fake = FakeHetzner::start_with(TOKEN, hook).await?;
    let driver = hetzner(&fake, TOKEN);
    driver.check_credentials().await?;
    whole_life(&driver, "cx22", "fsn1", "debian-12").await?;
    assert_eq!(fake.holdings(), (0, 0, 0));
    let told = seen.lock().unwrap().clone();
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].ssh_keys, [PUBLIC_KEY]);
    assert!(told[0].user_data.contains("hostname: s1"));
    // The create action was polled to its end, not just the server.
    assert!(
        fake.requests()
            .iter()
            .filter(|r| r.starts_with("GET /v1/actions/"))
            .count()
            >= FakeHetzner::STEPS as usize
    );
    Ok(())
}

#[tokio::test]
async fn openstack_server_lives_and_dies_with_either_login() -> anyhow::Result<()> {
    let (hook, seen) = recording_hook();
    let fake = FakeOpenStack::start("GRA11", Some(hook)).await?;
    for credentials in [password(FakeOpenStack::PASSWORD.1), app_credential()] {
        let driver = openstack(&fake, credentials);
        driver.check_credentials().await?;
        whole_life(&driver, "d2-2", "GRA11", "Debian 12").await?;
        assert_eq!(fake.holdings(), (0, 0, 0));
    }
    let told = seen.lock().unwrap().clone();
    assert_eq!(told[0].ssh_keys, [PUBLIC_KEY]);
    assert!(
        told[0].user_data.contains("hostname: s1"),
        "user data arrives decoded: {:?}",
        told[0].user_data
    );
    Ok(())
}

#[tokio::test]
async fn lists_follow_every_page() -> anyhow::Result<()> {
    let hetzner_fake = FakeHetzner::start(TOKEN).await?;
    for i in 0..120 {
        let role = if i % 3 == 0 { "a" } else { "b" };
        hetzner_fake.seed_server(&format!("s{i}"), json!({"slipway": "1", "role": role}));
    }
    let driver = hetzner(&hetzner_fake, TOKEN);
    assert_eq!(
        driver
            .list_servers(&labels(&[("slipway", "1")]))
            .await?
            .len(),
        120
    );
    assert_eq!(
        driver.list_servers(&labels(&[("role", "a")])).await?.len(),
        40
    );
    let os_fake = FakeOpenStack::start("GRA11", None).await?;
    for i in 0..250 {
        os_fake.seed_server(&format!("s{i}"), json!({"slipway": "1"}));
    }
    os_fake.seed_server("other", json!({}));
    let driver = openstack(&os_fake, app_credential());
    assert_eq!(
        driver
            .list_servers(&labels(&[("slipway", "1")]))
            .await?
            .len(),
        250
    );
    assert_eq!(driver.list_servers(&Labels::new()).await?.len(), 251);
    Ok(())
}

#[tokio::test]
async fn a_rate_limit_is_waited_out_as_the_provider_asks() -> anyhow::Result<()> {
    let fake = FakeHetzner::start(TOKEN).await?;
    let driver = hetzner(&fake, TOKEN);
    fake.faults(|f| {
        f.rate_limited = 2;
        f.retry_after_secs = 1;
    });
    let started = Instant::now();
    driver.check_credentials().await?;
    // The backoff alone would wait about 30 ms; Retry-After asks 1 s twice.
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // More refusals than retries: the provider's 429 and words come back.
    fake.faults(|f| {
        f.rate_limited = 10;
        f.retry_after_secs = 0;
    });
    let refused = driver.check_credentials().await.unwrap_err();
    assert_eq!(refused.status(), Some(429));
    assert!(
        refused.to_string().contains("rate_limit_exceeded"),
        "{refused}"
    );
    let os = FakeOpenStack::start("GRA11", None).await?;
    let driver = openstack(&os, app_credential());
    driver.check_credentials().await?;
    os.faults(|f| {
        f.rate_limited = 1;
        f.retry_after_secs = 1;
    });
    let started = Instant::now();
    driver.list_servers(&Labels::new()).await?;
    assert!(started.elapsed() >= Duration::from_secs(1));
    Ok(())
}

#[tokio::test]
async fn a_guard_sees_every_address_a_name_resolves_to() -> anyhow::Result<()> {
    let fake = FakeHetzner::start(TOKEN).await?;
    let by_name = fake.url().replace("127.0.0.1", "localhost");
    let (retry, polling) = quick();
    let client = |guard: slipway_cloud::guard::AddressGuard| {
        Hetzner::new(Some(&by_name), TOKEN.to_owned().into(), retry, polling)
            .and_then(|h| h.with_guard(guard))
            .unwrap()
    };
    let refused = client(Arc::new(|ip| match ip.is_loopback() {
        true => Err("a loopback address".into()),
        false => Ok(()),
    }))
    .check_credentials()
    .await
    .unwrap_err();
    assert!(
        matches!(refused, CloudError::Transport { .. }),
        "{refused:?}"
    );
    assert!(fake.requests().is_empty(), "nothing was sent");
    client(Arc::new(|_| Ok(()))).check_credentials().await?;
    assert_eq!(fake.requests().len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_post_that_failed_on_the_way_is_not_sent_twice() -> anyhow::Result<()> {
    let fake = FakeHetzner::start(TOKEN).await?;
    let driver = hetzner(&fake, TOKEN);
    // A read is sent again after a 503 ...
    fake.faults(|f| f.unavailable = 1);
    driver.check_credentials().await?;
    // ... a create is not: it might have been carried out.
    fake.faults(|f| f.unavailable = 1);
    let failed = driver
        .create_key("k", PUBLIC_KEY, &Labels::new())
        .await
        .unwrap_err();
    assert_eq!(failed.status(), Some(503));
    let posts = fake
        .requests()
        .iter()
        .filter(|r| *r == "POST /v1/ssh_keys")
        .count();
    assert_eq!(posts, 1);
    // A 429 was refused before any work: the create is sent again.
    fake.faults(|f| {
        f.rate_limited = 1;
        f.retry_after_secs = 0;
    });
    driver.create_key("k", PUBLIC_KEY, &Labels::new()).await?;
    assert_eq!(fake.holdings().1, 1);
    Ok(())
}

#[tokio::test]
async fn hetzner_refusals_and_failures_keep_its_words() -> anyhow::Result<()> {
    let fake = FakeHetzner::start(TOKEN).await?;
    let refused = hetzner(&fake, "wrong")
        .check_credentials()
        .await
        .unwrap_err();
    assert!(refused.is_auth());
    assert!(
        refused.to_string().contains("unable to authenticate"),
        "{refused}"
    );
    let driver = hetzner(&fake, TOKEN);
    let key = driver.create_key("k", PUBLIC_KEY, &Labels::new()).await?;
    let twice = driver
        .create_key("k2", PUBLIC_KEY, &Labels::new())
        .await
        .unwrap_err();
    assert_eq!(twice.status(), Some(409));
    assert!(
        twice
            .to_string()
            .contains("uniqueness_error: SSH key with the same fingerprint already exists"),
        "{twice}"
    );
    let request = |name: &str| ServerRequest {
        name: name.into(),
        region: "fsn1".into(),
        size: "cx22".into(),
        image: "debian-12".into(),
        ssh_key: key.id.clone(),
        user_data: String::new(),
        firewall: None,
        labels: Labels::new(),
    };
    fake.faults(|f| f.fail_create = Some("cannot allocate the server: no capacity in fsn1".into()));
    let server = driver.create_server(&request("broken")).await?;
    let failed = driver.wait_running(&server.id, LIMIT).await.unwrap_err();
    assert!(matches!(failed, CloudError::Failed { .. }), "{failed:?}");
    assert!(
        failed.to_string().contains("no capacity in fsn1"),
        "{failed}"
    );
    fake.faults(|f| {
        f.fail_create = None;
        f.stuck_creating = true;
    });
    let server = driver.create_server(&request("stuck")).await?;
    let late = driver
        .wait_running(&server.id, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(late, CloudError::Timeout { .. }), "{late:?}");
    fake.faults(|f| f.server_quota = Some(2));
    let quota = driver.create_server(&request("third")).await.unwrap_err();
    assert_eq!(quota.status(), Some(403));
    assert!(
        quota.to_string().contains("server limit exceeded"),
        "{quota}"
    );
    let missing = driver.get_server("999999").await?;
    assert_eq!(missing, None);
    fake.faults(|f| f.server_quota = None);
    let bad = driver
        .create_server(&ServerRequest {
            size: "cx999".into(),
            ..request("x")
        })
        .await
        .unwrap_err();
    assert_eq!(bad.status(), Some(422));
    Ok(())
}

#[tokio::test]
async fn openstack_refusals_and_failures_keep_its_words() -> anyhow::Result<()> {
    let fake = FakeOpenStack::start("GRA11", None).await?;
    let refused = openstack(&fake, password("wrong"))
        .check_credentials()
        .await
        .unwrap_err();
    assert!(refused.is_auth());
    assert!(
        refused.to_string().contains("requires authentication"),
        "{refused}"
    );
    let driver = openstack(&fake, app_credential());
    let key = driver.create_key("k", PUBLIC_KEY, &Labels::new()).await?;
    let twice = driver
        .create_key("k", PUBLIC_KEY, &Labels::new())
        .await
        .unwrap_err();
    assert!(
        twice
            .to_string()
            .contains("conflictingRequest: Key pair 'k' already exists."),
        "{twice}"
    );
    // An expired token is replaced once, unseen by the caller.
    fake.expire_tokens();
    let group = driver
        .create_firewall("fw", &[InboundTcp(22)], &labels(&[("slipway", "1")]))
        .await?;
    let request = |name: &str| ServerRequest {
        name: name.into(),
        region: "GRA11".into(),
        size: "d2-2".into(),
        image: "Debian 12".into(),
        ssh_key: key.id.clone(),
        user_data: String::new(),
        firewall: Some(group.id.clone()),
        labels: Labels::new(),
    };
    fake.faults(|f| {
        f.fail_create =
            Some("No valid host was found. There are not enough hosts available.".into())
    });
    let server = driver.create_server(&request("broken")).await?;
    let failed = driver.wait_running(&server.id, LIMIT).await.unwrap_err();
    assert!(
        failed.to_string().contains("No valid host was found"),
        "{failed}"
    );
    let in_use = driver.delete_firewall(&group.id).await.unwrap_err();
    assert!(
        in_use.to_string().contains("SecurityGroupInUse"),
        "{in_use}"
    );
    driver.delete_server(&server.id, LIMIT).await?;
    driver.delete_firewall(&group.id).await?;
    fake.faults(|f| {
        f.fail_create = None;
        f.server_quota = Some(0);
    });
    let quota = driver
        .create_server(&ServerRequest {
            firewall: None,
            ..request("q")
        })
        .await
        .unwrap_err();
    assert!(
        quota.to_string().contains("Quota exceeded for instances"),
        "{quota}"
    );
    let no_flavor = driver
        .create_server(&ServerRequest {
            size: "x9-999".into(),
            ..request("f")
        })
        .await
        .unwrap_err();
    assert!(
        no_flavor.to_string().contains("no flavor `x9-999`"),
        "{no_flavor}"
    );
    Ok(())
}

/// A running server saved as an image: `creating` at first, available once
/// the provider is done (with its size), found by its labels, a server
/// created from it, and deleted (twice: gone is done). A server cannot be
/// created from an image that is not available yet.
async fn image_life(
    driver: &dyn CloudDriver,
    size: &str,
    region: &str,
    image: &str,
) -> Result<(), CloudError> {
    let mine = labels(&[("slipway", "test")]);
    let key = driver.create_key("slipway-i1", PUBLIC_KEY, &mine).await?;
    let request = |name: &str, image: &str| ServerRequest {
        name: name.into(),
        region: region.into(),
        size: size.into(),
        image: image.into(),
        ssh_key: key.id.clone(),
        user_data: "#cloud-config\n".into(),
        firewall: None,
        labels: mine.clone(),
    };
    let source = driver.create_server(&request("slipway-i1", image)).await?;
    driver.wait_running(&source.id, LIMIT).await?;
    let theirs = labels(&[("slipway-image", "img-1")]);
    let saving = driver
        .create_image(&source.id, "slipway-image-1", &theirs)
        .await?;
    assert_eq!(saving.status, ImageStatus::Creating, "{saving:?}");
    assert_eq!(saving.name, "slipway-image-1");
    let early = driver
        .create_server(&request("slipway-i2", &saving.id))
        .await
        .expect_err("an image still being saved is not used");
    assert!(matches!(early.status(), Some(400 | 422)), "{early}");
    let saved = driver.wait_image(&saving.id, LIMIT).await?;
    assert_eq!(saved.status, ImageStatus::Available, "{saved:?}");
    assert!(saved.size_gb.is_some_and(|gb| gb > 0.0), "{saved:?}");
    let listed = driver.list_images(&theirs).await?;
    assert_eq!(
        listed.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
        [saving.id.as_str()]
    );
    assert!(driver
        .list_images(&labels(&[("slipway-image", "other")]))
        .await?
        .is_empty());
    let from_image = driver
        .create_server(&request("slipway-i2", &saving.id))
        .await?;
    driver.wait_running(&from_image.id, LIMIT).await?;
    driver.delete_image(&saving.id).await?;
    assert_eq!(driver.get_image(&saving.id).await?, None);
    driver.delete_image(&saving.id).await?;
    for server in [source, from_image] {
        driver.delete_server(&server.id, LIMIT).await?;
    }
    driver.delete_key(&key.id).await?;
    Ok(())
}

#[tokio::test]
async fn server_images_are_saved_used_and_deleted() -> anyhow::Result<()> {
    let (hook, seen) = recording_hook();
    let fake = FakeHetzner::start_with(TOKEN, hook).await?;
    image_life(&hetzner(&fake, TOKEN), "cx22", "fsn1", "debian-12").await?;
    assert_eq!((fake.holdings(), fake.images()), ((0, 0, 0), 0));
    assert_eq!(seen.lock().unwrap().len(), 2);
    let (hook, _) = recording_hook();
    let fake = FakeOpenStack::start("GRA11", Some(hook)).await?;
    image_life(
        &openstack(&fake, app_credential()),
        "d2-2",
        "GRA11",
        "Debian 12",
    )
    .await?;
    assert_eq!((fake.holdings(), fake.images()), ((0, 0, 0), 0));
    Ok(())
}

#[tokio::test]
async fn glance_images_are_listed_across_pages() -> anyhow::Result<()> {
    let fake = FakeOpenStack::start("GRA11", None).await?;
    let driver = openstack(&fake, app_credential());
    let id = fake.seed_server("source", json!({}));
    for i in 0..105 {
        let role = if i % 5 == 0 { "a" } else { "b" };
        driver
            .create_image(
                &id,
                &format!("img-{i}"),
                &labels(&[("slipway", "1"), ("role", role)]),
            )
            .await?;
    }
    assert_eq!(
        driver
            .list_images(&labels(&[("slipway", "1")]))
            .await?
            .len(),
        105
    );
    assert_eq!(
        driver.list_images(&labels(&[("role", "a")])).await?.len(),
        21
    );
    Ok(())
}
