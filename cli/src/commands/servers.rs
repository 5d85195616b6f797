//! Cloud servers (`/v1/servers`): bought from one of the project's cloud
//! accounts, set up over SSH and registered as ssh targets by the
//! provision worker. A create and a destroy are operations (deployments of
//! kinds `server_create` and `server_destroy`), so they are followed like a
//! deploy: each step and log line until the operation ends.

use super::{follow, placement, Ctx};
use crate::args::{CreateServer, DestroyServer, ServersCommand};
use crate::client::segment;
use crate::error::{CliError, Result};
use crate::output::or_dash;
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

pub async fn run(ctx: &Ctx, command: ServersCommand) -> Result<()> {
    match command {
        ServersCommand::List => list(ctx).await,
        ServersCommand::Show(server) => show(ctx, &server.server).await,
        ServersCommand::Create(create) => self::create(ctx, create).await,
        ServersCommand::Destroy(destroy) => self::destroy(ctx, destroy).await,
    }
}

async fn list(ctx: &Ctx) -> Result<()> {
    ctx.list(
        "/v1/servers",
        &["NAME", "STATE", "WHERE", "IPV4", "EUR/MONTH", "TARGET"],
        |s| {
            vec![
                or_dash(s["name"].as_str()),
                ctx.out.state(s["state"].as_str().unwrap_or("-")),
                placement(s),
                or_dash(s["ipv4"].as_str()),
                format!("{:.2}", s["monthly_cost_eur"].as_f64().unwrap_or_default()),
                or_dash(s["target"].as_str()),
            ]
        },
    )
    .await
}

async fn read(ctx: &Ctx, key: &str) -> Result<Value> {
    ctx.client
        .get(&format!("/v1/servers/{}", segment(key)))
        .await
}

async fn show(ctx: &Ctx, key: &str) -> Result<()> {
    let server = read(ctx, key).await?;
    if ctx.out.json {
        ctx.out.json(&server);
        return Ok(());
    }
    print_server(ctx, &server);
    Ok(())
}

fn print_server(ctx: &Ctx, server: &Value) {
    let field = |key: &str| or_dash(server[key].as_str());
    println!(
        "{} ({}) {}",
        field("name"),
        field("id"),
        ctx.out.state(server["state"].as_str().unwrap_or("-"))
    );
    println!(
        "at        {} {} {} ({})",
        field("provider"),
        field("region"),
        field("size"),
        field("image")
    );
    println!("provider  {}", field("provider_id"));
    println!("ipv4      {}", field("ipv4"));
    println!("ipv6      {}", field("ipv6"));
    println!(
        "cost      {:.2} EUR a month",
        server["monthly_cost_eur"].as_f64().unwrap_or_default()
    );
    println!("target    {}", field("target"));
    if let Some(error) = server["error"].as_str() {
        println!("error     {error}");
    }
}

/// The id of the operation a create or destroy queued (its newest one).
fn newest_operation(server: &Value) -> Option<Uuid> {
    server["operations"]
        .as_array()?
        .last()?
        .get("id")?
        .as_str()?
        .parse()
        .ok()
}

/// Follows the server's newest operation, then shows the server; or
/// reports what was queued.
async fn after_queued(ctx: &Ctx, server: Value, follow: bool, what: &str) -> Result<()> {
    let name = server["name"].as_str().unwrap_or_default().to_owned();
    let operation = newest_operation(&server);
    if !follow {
        if ctx.out.json {
            ctx.out.json(&server);
        } else {
            println!(
                "{what} {name}: operation {} {}",
                operation.map_or_else(|| "-".to_owned(), |id| id.to_string()),
                ctx.out.state(server["state"].as_str().unwrap_or("-"))
            );
        }
        return Ok(());
    }
    let Some(operation) = operation else {
        return Err(CliError::Other(anyhow::anyhow!(
            "the API answered no operation for server {name}"
        )));
    };
    if !ctx.out.json {
        println!("{what} {name}: operation {operation}");
    }
    // The operation's own outcome decides the exit code; the server's
    // record is shown either way so its state and error are in view.
    let followed = follow::follow_quiet(ctx, operation).await;
    let server = read(ctx, &name).await?;
    if ctx.out.json {
        ctx.out.json(&server);
    } else {
        print_server(ctx, &server);
    }
    followed
}

async fn create(ctx: &Ctx, args: CreateServer) -> Result<()> {
    let mut body = json!({
        "name": args.name,
        "account": args.account,
        "region": args.region,
        "size": args.size,
    });
    if let Some(image) = args.image {
        body["image"] = json!(image);
    }
    if let Some(environment) = args.environment {
        body["environment"] = json!(environment);
    }
    let server: Value = ctx
        .client
        .call(Method::POST, "/v1/servers", Some(&body))
        .await?;
    let follow = !args.no_follow && (args.follow || ctx.out.interactive);
    after_queued(ctx, server, follow, "creating").await
}

async fn destroy(ctx: &Ctx, args: DestroyServer) -> Result<()> {
    let path = format!(
        "/v1/servers/{}{}",
        segment(&args.server),
        if args.force { "?force=true" } else { "" }
    );
    let server: Value = ctx.client.call(Method::DELETE, &path, None::<&()>).await?;
    let follow = !args.no_follow && (args.follow || ctx.out.interactive);
    after_queued(ctx, server, follow, "destroying").await
}
