//! One function per command; [`dispatch`] picks it. Each reads through the
//! typed client and prints with [`Out`] (JSON with `--json`).

mod access;
mod apps;
mod cloud;
mod deploy;
mod env;
mod follow;
mod installs;
mod login;
mod logs;
mod operate;
mod resources;
mod rollback;
mod servers;

use crate::args::{Cli, Command};
use crate::client::Client;
use crate::config;
use crate::error::Result;
use crate::output::{or_dash, Out};
use serde_json::Value;

pub struct Ctx {
    pub client: Client,
    pub out: Out,
}

impl Ctx {
    /// A list the API answers as `{"items": [...]}`: printed as it came with
    /// `--json`, else as a table of one `row` per item under `headers`.
    pub async fn list(
        &self,
        path: &str,
        headers: &[&str],
        row: impl Fn(&Value) -> Vec<String>,
    ) -> Result<()> {
        let all: Value = self.client.get(path).await?;
        if self.out.json {
            self.out.json(&all);
            return Ok(());
        }
        let rows: Vec<Vec<String>> = all["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(row)
            .collect();
        self.out.table(headers, &rows);
        Ok(())
    }
}

/// Where a server is: `provider region size`.
pub fn placement(item: &Value) -> String {
    format!(
        "{} {} {}",
        or_dash(item["provider"].as_str()),
        or_dash(item["region"].as_str()),
        or_dash(item["size"].as_str())
    )
}

pub async fn dispatch(cli: Cli, out: Out) -> Result<()> {
    if let Command::Login(login) = &cli.command {
        return login::run(login, cli.url.as_deref(), out).await;
    }
    let endpoint = config::endpoint(cli.url.as_deref())?;
    let ctx = Ctx {
        client: Client::new(endpoint)?,
        out,
    };
    match cli.command {
        Command::Login(_) => unreachable!("handled above"),
        Command::Projects => resources::projects(&ctx).await,
        Command::Apps(command) => apps::run(&ctx, command).await,
        Command::Deploy(deploy) => deploy::run(&ctx, deploy).await,
        Command::Logs(logs) => logs::run(&ctx, logs).await,
        Command::Rollback(rollback) => rollback::run(&ctx, rollback).await,
        Command::Cancel(cancel) => operate::cancel(&ctx, cancel.deployment).await,
        Command::Deployments(app) => apps::deployments(&ctx, &app.app).await,
        Command::Env(command) => env::run(&ctx, command).await,
        Command::Scale(scale) => operate::scale(&ctx, scale).await,
        Command::Stop(op) => operate::act(&ctx, op, crate::client::apps::Action::Stop).await,
        Command::Start(op) => operate::act(&ctx, op, crate::client::apps::Action::Start).await,
        Command::Restart(op) => operate::act(&ctx, op, crate::client::apps::Action::Restart).await,
        Command::Domains(command) => resources::domains(&ctx, command).await,
        Command::Addons(command) => resources::addons(&ctx, command).await,
        Command::Targets(targets) => resources::targets(&ctx, targets.target.as_deref()).await,
        Command::Tokens(command) => access::tokens(&ctx, command).await,
        Command::Audit(audit) => access::audit(&ctx, audit).await,
        Command::Providers(p) => cloud::providers(&ctx, p.provider.as_deref()).await,
        Command::Servers(command) => servers::run(&ctx, command).await,
        Command::Install(install) => installs::create(&ctx, *install).await,
        Command::Installs(command) => installs::run(&ctx, command).await,
    }
}

/// Short form of an id for tables: the first 8 characters.
pub fn short(id: &uuid::Uuid) -> String {
    id.to_string()[..8].to_owned()
}
