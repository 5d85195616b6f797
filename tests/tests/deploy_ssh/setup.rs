//! Server setup (`POST /v1/targets/{t}/setup`) through the real fleet on
//! test hosts with their own root filesystem (privileged containers
//! running systemd, from `scripts/test-hosts.sh`, see
//! `slipway_testkit::host`): the engine and Caddy installed from the local
//! apt repository, the deploy user made and used from then on (its own
//! Caddy running), a second run changing nothing; and a host that is not
//! Debian refused with `unsupported_os`, nothing changed on it. A deploy to
//! such a host is in `host_deploy`.

use super::common::{ssh, Fleet, Options};
use super::log_text;
use reqwest::Method;
use serde_json::{json, Value};
use slipway_testkit::caddy::Caddy;
use slipway_testkit::host::{HostOptions, TestHost, APT_SOURCE};
use slipway_testkit::registry::Registry;

pub(super) async fn setup(fleet: &Fleet, target: &str, body: Value) -> anyhow::Result<Value> {
    let (status, answer) = fleet
        .call(
            Method::POST,
            &format!("/v1/targets/{target}/setup"),
            Some(body),
        )
        .await?;
    anyhow::ensure!(status == 202, "setup: {status} {answer}");
    let id = answer["id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no id: {answer}"))?
        .parse()?;
    fleet
        .wait_state(id, super::common::TERMINAL, ssh::TIMEOUT)
        .await
}

pub(super) async fn add_target(fleet: &Fleet, host: &TestHost, name: &str) -> anyhow::Result<()> {
    let (status, target) = fleet
        .call(Method::POST, "/v1/targets", Some(host.target_body(name)))
        .await?;
    anyhow::ensure!(status == 201, "create target: {status} {target}");
    Ok(())
}

#[tokio::test]
async fn setup_makes_a_debian_server_a_target_once() -> anyhow::Result<()> {
    let host = TestHost::boot(HostOptions::default()).await?;
    eprintln!("test host booted in {:?}", host.boot_time);
    let registry = Registry::start().await?;
    let local_caddy = Caddy::start().await?;
    let dirs = tempfile::tempdir()?;
    let mut env = vec![
        ("SLIPWAY_REGISTRY", registry.addr().to_string()),
        ("SLIPWAY_BUILD_DIR", dirs.path().display().to_string()),
        ("SLIPWAY_BASE_DOMAIN", "localhost".to_string()),
        ("SLIPWAY_SECRET_KEY", "ab".repeat(32)),
        ("SLIPWAY_CADDY_ADMIN", local_caddy.admin_url()),
        (
            "SLIPWAY_CADDY_HTTP_ADDR",
            local_caddy.http_addr().to_owned(),
        ),
        ("SLIPWAY_CADDY_SERVER", "apps".to_owned()),
        ("SLIPWAY_CADDY_HTTPS_ADDR", "off".to_owned()),
    ];
    if let Ok(conf) = std::env::var("CONTAINERS_CONF") {
        env.push(("CONTAINERS_CONF", conf));
    }
    let fleet = Fleet::start(Options {
        env,
        ..Options::default()
    })
    .await?;
    add_target(&fleet, &host, "vm").await?;

    // Bad input is refused before anything is queued.
    let (status, answer) = fleet
        .call(
            Method::POST,
            "/v1/targets/vm/setup",
            Some(json!({"apt_source": "deb http://x/ ./'; reboot; '"})),
        )
        .await?;
    assert_eq!(
        (status, answer["code"].as_str()),
        (422, Some("validation_failed")),
        "{answer}"
    );
    let (status, answer) = fleet
        .call(
            Method::POST,
            "/v1/targets/vm/setup",
            Some(json!({"deploy_user": "root"})),
        )
        .await?;
    assert_eq!(status, 422, "{answer}");

    let first = setup(&fleet, "vm", json!({"apt_source": APT_SOURCE})).await?;
    assert_eq!(first["state"], "live", "{first:#}\n{}", fleet.logs());
    let logs = log_text(&fleet, &first).await?;
    for step in [
        "1/5: detect the OS",
        "2/5: install",
        "3/5: create the deploy user slipway",
        "4/5: prepare /var/lib/slipway",
        "5/5: verify as slipway",
    ] {
        assert!(logs.contains(step), "{step} in {logs}");
    }
    assert!(logs.contains("Debian GNU/Linux 12"), "{logs}");
    assert!(
        logs.contains(
            "changed: installed podman gpg uidmap slirp4netns catatonit libpam-systemd dbus-user-session caddy"
        ),
        "{logs}"
    );
    assert!(logs.contains("changed: created user slipway"), "{logs}");
    assert!(logs.contains("setup of vm: changed:"), "{logs}");

    // On the host itself: the packages, the user, the folder; this
    // machine's own users are untouched.
    let installed = host
        .ssh("dpkg-query -W -f='${Package} ${Status}\\n' podman caddy")
        .await?;
    assert_eq!(
        installed.matches("install ok installed").count(),
        2,
        "{installed}"
    );
    // gpg, not gnupg's agents, satisfies podman's signing library.
    let gnupg = host
        .ssh("dpkg-query -W -f='${Status}' gnupg 2>/dev/null || true")
        .await?;
    assert!(!gnupg.contains("install ok installed"), "{gnupg}");
    let owner = host
        .ssh("id -u slipway && stat -c %U /var/lib/slipway")
        .await?;
    assert!(owner.ends_with("slipway\n"), "{owner}");
    assert!(!std::process::Command::new("id")
        .arg("slipway")
        .output()?
        .status
        .success());
    let (_, target) = fleet.call(Method::GET, "/v1/targets/vm", None).await?;
    assert_eq!(target["user"], "slipway", "{target}");

    let second = setup(&fleet, "vm", json!({"apt_source": APT_SOURCE})).await?;
    assert_eq!(second["state"], "live", "{second:#}\n{}", fleet.logs());
    let logs = log_text(&fleet, &second).await?;
    assert!(logs.contains("setup of vm: nothing to change"), "{logs}");
    assert!(!logs.contains("changed:"), "{logs}");

    // The deploy user's rootless podman: a systemd manager of its own that
    // lingers (so `/run/user/UID`, podman's runtime state, outlives every
    // SSH session), crun, and images on overlayfs.
    let manager = host
        .ssh(
            "u=$(id -u slipway); loginctl show-user slipway -p Linger; \
             systemctl is-active user@$u.service && test -d /run/user/$u && echo kept",
        )
        .await?;
    assert_eq!(manager, "Linger=yes\nactive\nkept\n", "{manager}");
    let podman = host
        .ssh_as(
            "slipway",
            "podman info --format '{{.Store.GraphDriverName}} {{.Host.OCIRuntime.Name}}'",
        )
        .await?;
    assert_eq!(podman.trim(), "overlay crun", "{podman}");

    // The verify step started the target's own Caddy as the deploy user.
    let caddy_user = host.ssh("ps -o user= -C caddy").await?;
    assert_eq!(caddy_user.trim(), "slipway", "Caddy runs as {caddy_user}");
    fleet.stop().await;
    Ok(())
}

#[tokio::test]
async fn setup_refuses_a_server_that_is_not_debian_or_ubuntu() -> anyhow::Result<()> {
    let host = TestHost::boot(HostOptions {
        files: vec![(
            "/etc/os-release".into(),
            "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.20.0\nPRETTY_NAME=\"Alpine Linux v3.20\"\n".into(),
        )],
        ..HostOptions::default()
    })
    .await?;
    let fleet = Fleet::start(Options {
        build_workers: 0,
        deploy_workers: 0,
        env: vec![("SLIPWAY_SECRET_KEY", "ab".repeat(32))],
        ..Options::default()
    })
    .await?;
    add_target(&fleet, &host, "alpine").await?;
    let refused = setup(&fleet, "alpine", json!({"apt_source": APT_SOURCE})).await?;
    assert_eq!(refused["state"], "failed", "{refused:#}");
    assert_eq!(refused["error_code"], "unsupported_os", "{refused:#}");
    let message = refused["error_message"].as_str().unwrap_or_default();
    assert!(
        message.contains("Alpine Linux v3.20 (ID=alpine)"),
        "{message}"
    );
    assert!(message.contains("Debian and Ubuntu"), "{message}");
    // Nothing was changed there.
    assert!(host.ssh("id slipway").await.is_err());
    assert!(host
        .ssh("test -e /etc/apt/sources.list.d/slipway.list")
        .await
        .is_err());
    let (_, target) = fleet.call(Method::GET, "/v1/targets/alpine", None).await?;
    assert_eq!(target["user"], "root", "{target}");
    fleet.stop().await;
    Ok(())
}
