//! `slipway env set/unset/list`: one variable at a time through PATCH's
//! merge (`{"env": {"K": "v"}}`, `{"secrets": {…}}`, `null` unsets), so
//! two people changing different keys do not overwrite each other.
//! Secrets are shown masked, as the API returns them.

use super::Ctx;
use crate::args::{EnvCommand, EnvSet};
use crate::error::{CliError, Result};
use serde_json::json;

pub async fn run(ctx: &Ctx, command: EnvCommand) -> Result<()> {
    match command {
        EnvCommand::Set(set) => {
            let (key, value) = pair(&set)?;
            let side = if set.secret { "secrets" } else { "env" };
            ctx.client
                .patch_app(&set.app, &json!({ side: { key.clone(): value } }))
                .await?;
            if !ctx.out.json {
                println!(
                    "{}: set {key}{}",
                    set.app,
                    if set.secret { " (secret)" } else { "" }
                );
            }
            Ok(())
        }
        EnvCommand::Unset(unset) => {
            let app = ctx.client.app(&unset.app).await?;
            let side = if app.secrets.contains_key(&unset.key) {
                "secrets"
            } else if app.env.contains_key(&unset.key) {
                "env"
            } else {
                return Err(CliError::local(
                    "no_such_variable",
                    format!("{} has no variable {}", unset.app, unset.key),
                ));
            };
            ctx.client
                .patch_app(&unset.app, &json!({ side: { unset.key.clone(): null } }))
                .await?;
            if !ctx.out.json {
                println!("{}: unset {}", unset.app, unset.key);
            }
            Ok(())
        }
        EnvCommand::List(app) => {
            let app = ctx.client.app(&app.app).await?;
            if ctx.out.json {
                ctx.out
                    .json(&json!({"env": app.env, "secrets": app.secrets}));
                return Ok(());
            }
            let mut rows: Vec<Vec<String>> = app
                .env
                .iter()
                .map(|(k, v)| vec![k.clone(), v.clone().unwrap_or_default(), "env".into()])
                .collect();
            rows.extend(
                app.secrets
                    .iter()
                    .map(|(k, v)| vec![k.clone(), v.clone(), "secret".into()]),
            );
            rows.sort();
            ctx.out.table(&["KEY", "VALUE", "KIND"], &rows);
            Ok(())
        }
    }
}

fn pair(set: &EnvSet) -> Result<(String, String)> {
    match (&set.value, set.pair.split_once('=')) {
        (Some(value), None) => Ok((set.pair.clone(), value.clone())),
        (None, Some((key, value))) => Ok((key.to_owned(), value.to_owned())),
        _ => Err(CliError::local(
            "bad_variable",
            "give KEY=VALUE, or KEY and VALUE as two arguments",
        )),
    }
}
