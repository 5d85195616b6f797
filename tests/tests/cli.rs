//! The `slipway` binary against the real fleet (API and worker binaries, a
//! test-owned registry and Caddy, real buildah and podman): login stores
//! its config 0600 and a token is never sent over plain http to another
//! host; `deploy --dir` of the node example goes live and exits 0, the same
//! directory again reuses the build, a broken app exits 1 with the API's
//! error; `logs -f` shows the app's output; env set/unset with masked
//! secrets; rollback through the picker on a pseudo-terminal; `--json`
//! parses.

mod common;
#[path = "cli/run.rs"]
mod run;

use common::{example, Fleet, Options};
use reqwest::Method;
use run::{wait_line, Cli};
use serde_json::Value;
use slipway_testkit::caddy::Caddy;
use slipway_testkit::registry::Registry;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

struct Setup {
    fleet: Fleet,
    _caddy: Caddy,
    _registry: Registry,
    _dirs: tempfile::TempDir,
}

async fn setup() -> anyhow::Result<Setup> {
    let registry = Registry::start().await?;
    let caddy = Caddy::start().await?;
    let dirs = tempfile::tempdir()?;
    let mut env = vec![
        ("SLIPWAY_REGISTRY", registry.addr().to_string()),
        ("SLIPWAY_BUILD_DIR", dirs.path().display().to_string()),
        ("SLIPWAY_CADDY_ADMIN", caddy.admin_url().to_string()),
        ("SLIPWAY_CADDY_HTTP_ADDR", caddy.http_addr().to_string()),
        // HTTP only: no TLS server (and no shared :8443) in these tests.
        ("SLIPWAY_CADDY_HTTPS_ADDR", "off".to_string()),
        ("SLIPWAY_CADDY_SERVER", "apps".to_string()),
        ("SLIPWAY_BASE_DOMAIN", "localhost".to_string()),
        ("SLIPWAY_RUNTIME_LOG_INTERVAL", "300ms".to_string()),
        ("SLIPWAY_SECRET_KEY", "ab".repeat(32)),
    ];
    if let Ok(conf) = std::env::var("CONTAINERS_CONF") {
        env.push(("CONTAINERS_CONF", conf));
    }
    let fleet = Fleet::start(Options {
        env,
        ..Options::default()
    })
    .await?;
    Ok(Setup {
        fleet,
        _caddy: caddy,
        _registry: registry,
        _dirs: dirs,
    })
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

fn json(text: &str) -> anyhow::Result<Value> {
    serde_json::from_str(text).map_err(|e| anyhow::anyhow!("not JSON ({e}):\n{text}"))
}

#[tokio::test]
async fn login_refuses_plain_http_to_another_host_and_stores_its_config_0600() -> anyhow::Result<()>
{
    let setup = setup().await?;
    let fleet = &setup.fleet;
    let home = tempfile::tempdir()?;
    let cli = Cli::new(home.path());

    // Non-loopback URLs that reach nothing outside this machine even if the
    // check broke: 0.0.0.0 (this host, but not a loopback address) and a
    // name under `.invalid`, which never resolves.
    for url in ["http://0.0.0.0:8080", "http://api.example.invalid"] {
        let out = cli
            .run(&["login", "--api", url, "--token", &fleet.token])
            .await?;
        assert_eq!(out.code, 2, "{out}");
        assert!(out.stderr.contains("insecure_url"), "{out}");
        let ci = Cli::with_env(home.path(), url, &fleet.token);
        let out = ci.run(&["apps", "list"]).await?;
        assert_eq!(out.code, 2, "{out}");
        assert!(
            out.stderr
                .contains("refusing to send a token over plain http://"),
            "{out}"
        );
    }
    assert!(!home.path().join(".config/slipway/config.toml").exists());

    // A wrong token: the API's code and message, nothing stored.
    let out = cli
        .run(&["login", "--api", &fleet.api_url, "--token", "nope"])
        .await?;
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("unauthorized"), "{out}");
    assert!(!home.path().join(".config/slipway/config.toml").exists());

    let out = cli
        .run(&["login", "--api", &fleet.api_url, "--token", &fleet.token])
        .await?;
    assert_eq!(out.code, 0, "{out}");
    let file = home.path().join(".config/slipway/config.toml");
    let mode = std::fs::metadata(&file)?.permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}", file.display());
    let dir_mode = std::fs::metadata(file.parent().unwrap())?
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);

    // The stored login works with no environment; errors carry the API's code.
    let out = cli.run(&["apps", "show", "nope"]).await?;
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("not_found"), "{out}");
    let out = cli.run(&["apps", "list", "--json"]).await?;
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(json(&out.stdout)?["items"], Value::Array(vec![]));
    // Tokens: made (printed once), listed, revoked; the revoked one fails.
    let out = cli
        .run(&["tokens", "create", "ci", "--role", "viewer"])
        .await?;
    assert_eq!(out.code, 0, "{out}");
    let viewer_token = out.stdout.trim().to_owned();
    assert!(viewer_token.starts_with("slw_"), "{out}");
    let out = cli.run(&["tokens", "list", "--json"]).await?;
    let listed = json(&out.stdout)?;
    let ci = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "ci")
        .cloned()
        .unwrap();
    assert_eq!(ci["role"], "viewer");
    assert!(
        !out.stdout.contains(&viewer_token[4..]),
        "secrets are never listed"
    );
    let viewer = Cli::with_env(home.path(), &fleet.api_url, &viewer_token);
    let out = viewer.run(&["apps", "create", "nope-app"]).await?;
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr.contains("forbidden"),
        "a viewer does not ship: {out}"
    );
    let out = cli
        .run(&["tokens", "revoke", ci["id"].as_str().unwrap()])
        .await?;
    assert_eq!(out.code, 0, "{out}");
    let out = viewer.run(&["apps", "list"]).await?;
    assert!(out.stderr.contains("unauthorized"), "{out}");
    let out = cli
        .run(&["tokens", "revoke", ci["id"].as_str().unwrap()])
        .await?;
    assert!(out.stderr.contains("already_revoked"), "{out}");
    // The audit log shows what happened, refusals too.
    let out = cli
        .run(&["audit", "--json", "--action", "create_app"])
        .await?;
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(json(&out.stdout)?["items"][0]["status"], 403);
    // The cloud catalog with monthly prices.
    let out = cli.run(&["providers", "hetzner"]).await?;
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stdout.contains("EUR/MONTH") && out.stdout.contains("fsn1"),
        "{out}"
    );
    let out = cli.run(&["providers", "--json"]).await?;
    assert_eq!(
        json(&out.stdout)?["items"].as_array().map(Vec::len),
        Some(6)
    );
    let out = cli.run(&["providers", "nimbus"]).await?;
    assert!(out.stderr.contains("unknown_provider"), "{out}");
    // A project token sees its own project; making projects needs an admin.
    let out = cli.run(&["projects", "--json"]).await?;
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(
        json(&out.stdout)?["items"].as_array().map(Vec::len),
        Some(1)
    );
    let admin = Cli::with_env(home.path(), &fleet.api_url, common::ADMIN_TOKEN);
    let out = admin.run(&["projects", "--json"]).await?;
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(json(&out.stdout)?["items"][0]["name"], "p");
    Ok(())
}

#[tokio::test]
async fn deploy_dir_reuse_logs_env_rollback_and_a_broken_app() -> anyhow::Result<()> {
    let setup = setup().await?;
    let fleet = &setup.fleet;
    let home = tempfile::tempdir()?;
    let cli = Cli::with_env(home.path(), &fleet.api_url, &fleet.token);
    let timeout = Duration::from_secs(300);

    let out = cli.run(&["apps", "create", "web", "--json"]).await?;
    assert_eq!(out.code, 0, "{out}");
    let app_id = json(&out.stdout)?["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let _containers = common::AppContainers(app_id);

    // A copy of the node example, with a file its .slipwayignore leaves out.
    let src = tempfile::tempdir()?;
    let dir = src.path().join("web");
    copy_dir(&example("node-express"), &dir)?;
    std::fs::write(dir.join(".slipwayignore"), "notes.txt\n")?;
    std::fs::write(dir.join("notes.txt"), "not deployed")?;
    let dir_arg = dir.display().to_string();

    let first = tokio::time::timeout(
        timeout,
        cli.run(&["deploy", "web", "--dir", &dir_arg, "--follow"]),
    )
    .await??;
    assert_eq!(first.code, 0, "{first}");
    assert!(first.stdout.contains("is live"), "{first}");
    assert!(first.stdout.contains("building"), "stage progress: {first}");
    let (_, deployments) = fleet
        .call(Method::GET, "/v1/apps/web/deployments", None)
        .await?;
    let first_id = deployments["items"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let first_dep = fleet.deployment(first_id.parse()?).await?;

    // The same directory again (files touched): the same bytes, the same version hash, no build.
    std::fs::write(dir.join("server.js"), std::fs::read(dir.join("server.js"))?)?;
    let second = tokio::time::timeout(
        timeout,
        cli.run(&["deploy", "web", "--dir", &dir_arg, "--follow", "--json"]),
    )
    .await??;
    assert_eq!(second.code, 0, "{second}");
    let second_dep = json(&second.stdout)?;
    assert_eq!(second_dep["state"], "live");
    assert_eq!(second_dep["image_digest"], first_dep["image_digest"]);
    assert!(second.stderr.contains("without building"), "{second}");
    let (_, versions) = fleet
        .call(Method::GET, "/v1/apps/web/versions", None)
        .await?;
    let items = versions["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 2, "{versions}");
    assert_eq!(items[0]["sha256"], items[1]["sha256"]);
    // .gitignore, .slipwayignore, package.json, package-lock.json, server.js:
    // not notes.txt, which .slipwayignore names.
    assert_eq!(items[0]["files"], 5, "{versions}");

    // Runtime logs: a page, a time cursor, and a follower.
    let (mut follower, lines) = cli.spawn_lines(&["logs", "web", "-f"])?;
    let seen = tokio::task::spawn_blocking(move || {
        wait_line(&lines, "listening on", Duration::from_secs(30))
    })
    .await?;
    let _ = follower.kill();
    let _ = follower.wait();
    seen?;
    let out = cli.run(&["logs", "web", "--since", "1h", "--json"]).await?;
    assert_eq!(out.code, 0, "{out}");
    let mut printed = Vec::new();
    for line in out.stdout.lines() {
        printed.push(json(line)?["line"].as_str().unwrap_or_default().to_owned());
    }
    assert!(printed.iter().any(|l| l.contains("listening on")), "{out}");
    let out = cli
        .run(&["logs", "web", "--since", "2099-01-01T00:00:00Z"])
        .await?;
    assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{out}");
    let out = cli
        .run(&["logs", "web", "--since", "yesterday-ish"])
        .await?;
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("validation_failed"), "{out}");

    // Variables, one key at a time; secrets never shown.
    for args in [
        &["env", "set", "web", "GREETING=hello"][..],
        &["env", "set", "web", "API_KEY", "s3cret-value", "--secret"][..],
    ] {
        let out = cli.run(args).await?;
        assert_eq!(out.code, 0, "{out}");
    }
    let out = cli.run(&["env", "list", "web", "--json"]).await?;
    let vars = json(&out.stdout)?;
    assert_eq!(vars["env"]["GREETING"], "hello");
    assert!(vars["secrets"]["API_KEY"].is_string());
    let out = cli.run(&["env", "list", "web"]).await?;
    assert!(
        out.stdout.contains("GREETING") && out.stdout.contains("API_KEY"),
        "{out}"
    );
    assert!(
        !out.stdout.contains("s3cret-value") && !out.stderr.contains("s3cret-value"),
        "{out}"
    );
    let out = cli.run(&["env", "unset", "web", "GREETING"]).await?;
    assert_eq!(out.code, 0, "{out}");
    let (_, app) = fleet.call(Method::GET, "/v1/apps/web", None).await?;
    assert!(app["env"].get("GREETING").is_none(), "{app}");
    assert!(app["secrets"].get("API_KEY").is_some(), "{app}");

    // A new version, then a rollback picked on a terminal.
    let server = std::fs::read_to_string(dir.join("server.js"))?;
    std::fs::write(
        dir.join("server.js"),
        server.replace("const VERSION = \"1\"", "const VERSION = \"2\""),
    )?;
    let third = tokio::time::timeout(
        timeout,
        cli.run(&["deploy", "web", "--dir", &dir_arg, "--follow", "--json"]),
    )
    .await??;
    assert_eq!(third.code, 0, "{third}");
    let third_dep = json(&third.stdout)?;
    assert_ne!(third_dep["image_digest"], first_dep["image_digest"]);
    let cli_for_pty = Cli::with_env(home.path(), &fleet.api_url, &fleet.token);
    let (code, screen) = tokio::task::spawn_blocking(move || {
        cli_for_pty.run_on_pty(
            &["rollback", "web"],
            "Number [1]:",
            "1\n",
            Duration::from_secs(120),
        )
    })
    .await??;
    let screen = common::strip_ansi(&screen);
    assert_eq!(code, 0, "{screen}");
    assert!(
        screen.contains("1) ") && screen.contains("is live"),
        "{screen}"
    );
    let (_, app) = fleet.call(Method::GET, "/v1/apps/web", None).await?;
    let live: uuid::Uuid = app["live"]["deployment"]
        .as_str()
        .unwrap_or_default()
        .parse()?;
    let live_dep = fleet.deployment(live).await?;
    assert!(live_dep["source"]["rollback_to"].is_string(), "{live_dep}");
    assert_eq!(
        live_dep["image_digest"], first_dep["image_digest"],
        "back on version 1's image"
    );

    // A broken app: exit 1 with the deployment's error code and message.
    let out = cli.run(&["apps", "create", "broken"]).await?;
    assert_eq!(out.code, 0, "{out}");
    let broken = src.path().join("broken");
    std::fs::create_dir_all(&broken)?;
    std::fs::write(broken.join("README.txt"), "nothing to run here\n")?;
    let out = tokio::time::timeout(
        timeout,
        cli.run(&[
            "deploy",
            "broken",
            "--dir",
            &broken.display().to_string(),
            "--follow",
        ]),
    )
    .await??;
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("failed"), "{out}");
    let (_, list) = fleet
        .call(Method::GET, "/v1/apps/broken/deployments", None)
        .await?;
    let code = list["items"][0]["error_code"]
        .as_str()
        .unwrap_or("none")
        .to_owned();
    assert!(
        out.stderr.contains(&code),
        "the error names `{code}`: {out}"
    );

    // Every read parses as JSON.
    for args in [
        &["apps", "list", "--json"][..],
        &["apps", "show", "web", "--json"][..],
        &["deployments", "web", "--json"][..],
        &["targets", "--json"][..],
        &["addons", "list", "web", "--json"][..],
        &["domains", "list", "web", "--json"][..],
    ] {
        let out = cli.run(args).await?;
        assert_eq!(out.code, 0, "{args:?}: {out}");
        json(&out.stdout)?;
    }
    Ok(())
}
