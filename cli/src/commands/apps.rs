//! `slipway apps create/list/show/delete` and `slipway deployments APP`.

use super::{follow, short, Ctx};
use crate::args::AppsCommand;
use crate::client::apps::Destroyed;
use crate::error::Result;
use crate::output::{or_dash, Paint};
use serde_json::{json, Value};

pub async fn run(ctx: &Ctx, command: AppsCommand) -> Result<()> {
    match command {
        AppsCommand::Create(args) => {
            let mut body = json!({ "name": args.name });
            for (key, value) in [
                ("git_url", args.git_url),
                ("git_ref", args.git_ref),
                ("target", args.target),
            ] {
                if let Some(value) = value {
                    body[key] = Value::String(value);
                }
            }
            if let Some(port) = args.port {
                body["runtime"] = json!({ "port": port });
            }
            let app = ctx.client.create_app(&body).await?;
            if ctx.out.json {
                ctx.out.json(&app);
            } else {
                println!(
                    "created app {} ({})",
                    ctx.out.paint(Paint::Bold, &app.name),
                    app.id
                );
            }
            Ok(())
        }
        AppsCommand::List => {
            let apps = ctx.client.apps().await?;
            if ctx.out.json {
                ctx.out.json(&apps);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = apps
                .items
                .iter()
                .map(|app| {
                    let status = app.status.as_ref();
                    vec![
                        app.name.clone(),
                        ctx.out.state(status.map_or("-", |s| s.state.as_str())),
                        or_dash(status.and_then(|s| s.url.as_deref())),
                        or_dash(app.target.as_deref()),
                    ]
                })
                .collect();
            ctx.out.table(&["NAME", "STATUS", "URL", "TARGET"], &rows);
            Ok(())
        }
        AppsCommand::Show(args) => {
            let app = ctx.client.app(&args.app).await?;
            if ctx.out.json {
                ctx.out.json(&app);
                return Ok(());
            }
            let field = |name: &str, value: String| {
                println!("{:<10} {value}", ctx.out.paint(Paint::Bold, name));
            };
            field("name", app.name.clone());
            field("id", app.id.to_string());
            if let Some(status) = &app.status {
                field("status", ctx.out.state(&status.state));
                field("url", or_dash(status.url.as_deref()));
                if let Some(health) = &status.health {
                    let ok = match health.ok {
                        Some(true) => ctx.out.paint(Paint::Green, "ok"),
                        Some(false) => ctx.out.paint(Paint::Red, "failing"),
                        None => "unknown".into(),
                    };
                    field(
                        "health",
                        format!("{ok} {}", or_dash(health.detail.as_deref())),
                    );
                }
            }
            if let Some(live) = &app.live {
                field(
                    "live",
                    format!("deployment {} ({})", live.deployment, live.image_ref),
                );
            }
            field(
                "git",
                format!(
                    "{} {}",
                    or_dash(app.git_url.as_deref()),
                    or_dash(app.git_ref.as_deref())
                ),
            );
            field("target", or_dash(app.target.as_deref()));
            field("domains", or_dash(Some(&app.domains.join(", "))));
            let mut keys: Vec<&String> = app.env.keys().chain(app.secrets.keys()).collect();
            keys.sort();
            field(
                "env",
                or_dash(Some(
                    &keys
                        .iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                )),
            );
            Ok(())
        }
        AppsCommand::Delete(args) => match ctx.client.destroy_app(&args.app, args.purge).await? {
            Destroyed::Gone => {
                if ctx.out.json {
                    ctx.out.json(&json!({"deleted": args.app}));
                } else {
                    println!("deleted {}", args.app);
                }
                Ok(())
            }
            Destroyed::Queued(accepted) => {
                let label = format!("{}: destroy", args.app);
                follow::maybe_follow(ctx, accepted, !args.no_wait, &label).await
            }
        },
    }
}

pub async fn deployments(ctx: &Ctx, app: &str) -> Result<()> {
    let page = ctx.client.deployments(app, 20).await?;
    if ctx.out.json {
        ctx.out.json(&page);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = page
        .items
        .iter()
        .map(|d| {
            vec![
                short(&d.id),
                ctx.out.state(&d.state),
                d.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                d.source.to_string(),
                or_dash(d.error_code.as_deref()),
            ]
        })
        .collect();
    ctx.out
        .table(&["ID", "STATE", "CREATED", "SOURCE", "ERROR"], &rows);
    Ok(())
}
