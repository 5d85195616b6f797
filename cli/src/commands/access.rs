//! Tokens and the audit log of the project the login acts in (owners).

use super::Ctx;
use crate::args::{Audit, TokensCommand};
use crate::error::{CliError, Result};
use crate::output::or_dash;
use reqwest::Method;
use serde_json::{json, Value};

/// The project: `--project`, else the only one the caller sees (a token
/// sees its own).
async fn project(ctx: &Ctx, named: Option<&str>) -> Result<String> {
    if let Some(id) = named {
        return Ok(crate::client::segment(id));
    }
    let projects: Value = ctx.client.get("/v1/projects").await?;
    match projects["items"].as_array().map(Vec::as_slice) {
        Some([only]) => Ok(only["id"].as_str().unwrap_or_default().to_owned()),
        _ => Err(CliError::local(
            "project_required",
            "this login sees several projects: name one with --project ID",
        )),
    }
}

pub async fn tokens(ctx: &Ctx, command: TokensCommand) -> Result<()> {
    match command {
        TokensCommand::List(scope) => {
            let id = project(ctx, scope.project.as_deref()).await?;
            let tokens: Value = ctx.client.get(&format!("/v1/projects/{id}/tokens")).await?;
            if ctx.out.json {
                ctx.out.json(&tokens);
                return Ok(());
            }
            let text = |v: &Value| or_dash(v.as_str());
            let rows: Vec<Vec<String>> = tokens["items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| {
                    let state = if t["revoked_at"].is_string() {
                        "revoked"
                    } else {
                        "active"
                    };
                    vec![
                        text(&t["name"]),
                        text(&t["role"]),
                        state.to_owned(),
                        text(&t["last_used_at"]),
                        text(&t["expires_at"]),
                        text(&t["id"]),
                    ]
                })
                .collect();
            ctx.out.table(
                &["NAME", "ROLE", "STATE", "LAST USED", "EXPIRES", "ID"],
                &rows,
            );
            Ok(())
        }
        TokensCommand::Create(create) => {
            let id = project(ctx, create.project.as_deref()).await?;
            let mut body = json!({"name": create.name, "role": create.role});
            if let Some(at) = create.expires_at {
                body["expires_at"] = json!(at);
            }
            let made: Value = ctx
                .client
                .call(
                    Method::POST,
                    &format!("/v1/projects/{id}/tokens"),
                    Some(&body),
                )
                .await?;
            if ctx.out.json {
                ctx.out.json(&made);
            } else {
                // Shown once: the API keeps only its hash.
                println!("{}", made["token"].as_str().unwrap_or_default());
                eprintln!(
                    "token {} ({}) created; it is not shown again",
                    create.name, create.role
                );
            }
            Ok(())
        }
        TokensCommand::Revoke(revoke) => {
            let id = project(ctx, revoke.project.as_deref()).await?;
            let path = format!(
                "/v1/projects/{id}/tokens/{}",
                crate::client::segment(&revoke.token)
            );
            ctx.client
                .call_maybe::<Value>(Method::DELETE, &path)
                .await?;
            eprintln!("token {} revoked", revoke.token);
            Ok(())
        }
    }
}

pub async fn audit(ctx: &Ctx, audit: Audit) -> Result<()> {
    let mut query = vec![format!("limit={}", audit.limit)];
    for (key, value) in [
        ("action", &audit.action),
        ("actor", &audit.actor),
        ("outcome", &audit.outcome),
    ] {
        if let Some(value) = value {
            query.push(format!("{key}={}", crate::client::segment(value)));
        }
    }
    let page: Value = ctx
        .client
        .get(&format!("/v1/audit?{}", query.join("&")))
        .await?;
    if ctx.out.json {
        ctx.out.json(&page);
        return Ok(());
    }
    let text = |v: &Value| or_dash(v.as_str());
    let rows: Vec<Vec<String>> = page["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            vec![
                text(&r["at"]),
                text(&r["actor"]),
                text(&r["action"]),
                r["status"].to_string(),
                text(&r["outcome"]),
                text(&r["resource"]),
            ]
        })
        .collect();
    ctx.out.table(
        &["AT", "ACTOR", "ACTION", "STATUS", "OUTCOME", "PATH"],
        &rows,
    );
    Ok(())
}
