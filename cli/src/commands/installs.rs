//! One-click installs (`/v1/installs`): `slipway install` buys a server
//! and deploys an app on it, then follows the install step by step — each
//! step's operation (the server's create, the app's first deployment, the
//! verify) with its timeline and log lines — until it completes (exit 0,
//! the app's URL or the DNS record to create printed) or fails (exit 1,
//! the failing step's code and message).

use super::follow::{self, progress};
use super::{placement, Ctx};
use crate::args::{DestroyInstall, Install, InstallsCommand};
use crate::client::segment;
use crate::error::{CliError, Result};
use crate::output::{or_dash, Paint};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

/// How often the install is read between its operations (each operation
/// is followed as a deployment is, in between).
const POLL: Duration = Duration::from_millis(300);

/// Statuses after which nothing more happens unless asked.
const TERMINAL: [&str; 3] = ["completed", "failed", "destroyed"];

pub async fn run(ctx: &Ctx, command: InstallsCommand) -> Result<()> {
    match command {
        InstallsCommand::List => list(ctx).await,
        InstallsCommand::Show(install) => {
            let install = read(ctx, &install.id).await?;
            show(ctx, &install);
            Ok(())
        }
        InstallsCommand::Destroy(destroy) => self::destroy(ctx, destroy).await,
    }
}

pub async fn create(ctx: &Ctx, args: Install) -> Result<()> {
    let mut app = json!({"name": args.app, "git_url": args.git_url});
    if let Some(git_ref) = args.git_ref {
        app["git_ref"] = json!(git_ref);
    }
    let mut body = json!({
        "provider": args.provider,
        "account": args.account,
        "region": args.region,
        "size": args.size,
        "app": app,
    });
    for (key, value) in [
        ("environment", args.environment),
        ("domain", args.domain),
        ("server_name", args.server_name),
    ] {
        if let Some(value) = value {
            body[key] = json!(value);
        }
    }
    let install: Value = ctx
        .client
        .call(Method::POST, "/v1/installs", Some(&body))
        .await?;
    if args.no_follow {
        show(ctx, &install);
        return Ok(());
    }
    let id = install["id"].as_str().unwrap_or_default().to_owned();
    progress(
        ctx,
        &format!(
            "installing {} on server {} ({} {} {}, about {} EUR a month): install {id}",
            or_dash(install["app"]["name"].as_str()),
            or_dash(install["server"]["name"].as_str()),
            or_dash(install["provider"].as_str()),
            or_dash(install["region"].as_str()),
            or_dash(install["size"].as_str()),
            or_dash(install["estimated_cost_eur"].as_str()),
        ),
    );
    let install = follow_install(ctx, &id, true).await?;
    show(ctx, &install);
    match install["status"].as_str() {
        Some("completed") => Ok(()),
        _ => Err(failed(&install)),
    }
}

async fn destroy(ctx: &Ctx, args: DestroyInstall) -> Result<()> {
    let path = format!("/v1/installs/{}", segment(&args.id));
    let install: Value = ctx.client.call(Method::DELETE, &path, None::<&()>).await?;
    if args.no_follow {
        show(ctx, &install);
        return Ok(());
    }
    let install = follow_install(ctx, &args.id, false).await?;
    show(ctx, &install);
    match install["status"].as_str() {
        Some("destroyed") => Ok(()),
        _ => Err(failed(&install)),
    }
}

/// Follows the install until a terminal status: each change of status,
/// and with `steps` each step's operation (timeline and logs) in turn.
/// The install as it ended.
async fn follow_install(ctx: &Ctx, id: &str, steps: bool) -> Result<Value> {
    let mut status = String::new();
    let mut followed: Vec<Uuid> = Vec::new();
    loop {
        let install = read(ctx, id).await?;
        let now = install["status"].as_str().unwrap_or("-").to_owned();
        if now != status {
            progress(
                ctx,
                &format!(
                    "{} install {}",
                    ctx.out.paint(Paint::Cyan, "==>"),
                    ctx.out.state(&now)
                ),
            );
            status = now;
        }
        // The next step that started, with an operation not followed yet
        // (the server's create is two steps but one operation); one that
        // already ended (a verify takes a moment) is shown whole.
        let next = install["steps"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|step| steps && step["state"] != "pending")
            .filter_map(|step| {
                let operation: Uuid = step["operation"].as_str()?.parse().ok()?;
                Some((step["name"].as_str().unwrap_or("-").to_owned(), operation))
            })
            .find(|(_, operation)| !followed.contains(operation));
        match next {
            Some((step, operation)) => {
                progress(
                    ctx,
                    &format!(
                        "{} step {step}: operation {operation}",
                        ctx.out.paint(Paint::Cyan, "==>")
                    ),
                );
                followed.push(operation);
                follow::track(ctx, operation).await?;
            }
            None if TERMINAL.contains(&status.as_str()) => return Ok(install),
            None => tokio::time::sleep(POLL).await,
        }
    }
}

async fn read(ctx: &Ctx, id: &str) -> Result<Value> {
    ctx.client
        .get(&format!("/v1/installs/{}", segment(id)))
        .await
}

async fn list(ctx: &Ctx) -> Result<()> {
    ctx.list(
        "/v1/installs",
        &["ID", "STATUS", "APP", "SERVER", "WHERE", "URL"],
        |i| {
            vec![
                or_dash(i["id"].as_str()),
                ctx.out.state(i["status"].as_str().unwrap_or("-")),
                or_dash(i["app"]["name"].as_str()),
                or_dash(i["server"]["name"].as_str()),
                placement(i),
                or_dash(i["app_url"].as_str()),
            ]
        },
    )
    .await
}

/// The install: JSON on stdout with `--json`, else its status, steps, and
/// where the app answers or the record to create.
fn show(ctx: &Ctx, install: &Value) {
    if ctx.out.json {
        ctx.out.json(install);
        return;
    }
    println!(
        "install {} {}",
        or_dash(install["id"].as_str()),
        ctx.out.state(install["status"].as_str().unwrap_or("-"))
    );
    println!(
        "server  {} {} {}",
        or_dash(install["server"]["name"].as_str()),
        ctx.out
            .state(install["server"]["state"].as_str().unwrap_or("-")),
        or_dash(install["server"]["ipv4"].as_str())
    );
    for step in install["steps"].as_array().into_iter().flatten() {
        println!(
            "step    {:<9} {}",
            step["name"].as_str().unwrap_or("-"),
            ctx.out.state(step["state"].as_str().unwrap_or("-"))
        );
    }
    if let Some(url) = install["app_url"].as_str() {
        println!(
            "{} the app answers at {}",
            ctx.out.paint(Paint::Green, "✓"),
            ctx.out.paint(Paint::Bold, url)
        );
    }
    let dns = &install["dns"];
    if dns.is_object() {
        println!(
            "dns     {} {} {}  ({})",
            or_dash(dns["type"].as_str()),
            or_dash(dns["name"].as_str()),
            or_dash(dns["value"].as_str()),
            or_dash(dns["note"].as_str())
        );
    }
    if let Some(code) = install["error"]["code"].as_str() {
        println!(
            "error   {code}: {}",
            install["error"]["message"].as_str().unwrap_or_default()
        );
    }
}

fn failed(install: &Value) -> CliError {
    let step = install["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["state"] == "failed")
        .and_then(|s| s["name"].as_str())
        .unwrap_or("-");
    CliError::Other(anyhow::anyhow!(
        "install {} {} (step {step}): {}: {}",
        or_dash(install["id"].as_str()),
        or_dash(install["status"].as_str()),
        or_dash(install["error"]["code"].as_str()),
        or_dash(install["error"]["message"].as_str())
    ))
}
