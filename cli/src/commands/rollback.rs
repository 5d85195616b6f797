//! `slipway rollback APP [DEPLOYMENT]`: deploys an earlier deployment's
//! image again without building. Without a deployment, a terminal gets a
//! numbered list of the earlier deployments that went live; elsewhere the
//! newest one before the live one is taken.

use super::{follow, short, Ctx};
use crate::args::Rollback;
use crate::client::deployments::{Create, Summary};
use crate::error::{CliError, Result};
use crate::output::Paint;
use std::io::{BufRead, Write};
use uuid::Uuid;

pub async fn run(ctx: &Ctx, args: Rollback) -> Result<()> {
    let to = match args.deployment {
        Some(id) => id,
        None => pick(ctx, &args.app).await?,
    };
    let accepted = ctx
        .client
        .deploy(
            &args.app,
            &Create {
                rollback_to: Some(to),
                ..Create::default()
            },
        )
        .await?;
    let label = format!("{}: rollback to {to}", args.app);
    follow::maybe_follow(ctx, accepted, !args.no_follow, &label).await
}

/// Earlier deployments that went live with an image of their own (no
/// stop/start/restart operations), newest first, the live one left out.
fn candidates(list: Vec<Summary>, live: Option<Uuid>) -> Vec<Summary> {
    list.into_iter()
        .filter(|d| d.state == "live" && Some(d.id) != live && d.source.get("action").is_none())
        .collect()
}

async fn pick(ctx: &Ctx, app: &str) -> Result<Uuid> {
    let live = ctx.client.app(app).await?.live.map(|l| l.deployment);
    let list = candidates(ctx.client.deployments(app, 50).await?.items, live);
    if list.is_empty() {
        return Err(CliError::local(
            "nothing_to_roll_back_to",
            format!("{app} has no earlier deployment that went live"),
        ));
    }
    if !ctx.out.interactive {
        return Ok(list[0].id);
    }
    eprintln!("Roll {app} back to:");
    for (i, d) in list.iter().enumerate().take(20) {
        eprintln!(
            "  {}) {}  {}  {}",
            i + 1,
            short(&d.id),
            d.created_at.format("%Y-%m-%d %H:%M:%S"),
            ctx.out.paint(Paint::Dim, &source(&d.source)),
        );
    }
    let shown = list.len().min(20);
    let stdin = std::io::stdin();
    loop {
        eprint!("Number [1]: ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        if stdin.lock().read_line(&mut answer).unwrap_or(0) == 0 {
            return Err(CliError::local("cancelled", "no deployment chosen"));
        }
        let answer = answer.trim();
        if answer.is_empty() {
            return Ok(list[0].id);
        }
        match answer.parse::<usize>() {
            Ok(n) if (1..=shown).contains(&n) => return Ok(list[n - 1].id),
            _ => eprintln!("a number from 1 to {shown}, please"),
        }
    }
}

/// What a deployment deployed, in a few words.
fn source(source: &serde_json::Value) -> String {
    for key in ["version", "git_ref", "commit", "rollback_to"] {
        if let Some(value) = source.get(key).and_then(|v| v.as_str()) {
            return format!("{key} {value}");
        }
    }
    source.to_string()
}
