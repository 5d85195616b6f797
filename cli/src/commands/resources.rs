//! The smaller reads and changes: projects, targets, an app's domains and
//! add-ons.

use super::Ctx;
use crate::args::{AddonsCommand, DomainsCommand};
use crate::error::{CliError, Result};
use crate::output::or_dash;
use serde_json::{json, Value};

pub async fn projects(ctx: &Ctx) -> Result<()> {
    let projects = ctx.client.projects().await?;
    if ctx.out.json {
        ctx.out.json(&projects);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = projects
        .items
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                p.id.to_string(),
                p.created_at.format("%Y-%m-%d").to_string(),
            ]
        })
        .collect();
    ctx.out.table(&["NAME", "ID", "CREATED"], &rows);
    Ok(())
}

pub async fn targets(ctx: &Ctx, key: Option<&str>) -> Result<()> {
    if let Some(key) = key {
        let target = ctx.client.target(key).await?;
        if ctx.out.json {
            ctx.out.json(&target);
        } else {
            println!("{} ({}, {})", target.name, target.kind, target.id);
            println!("host    {}", or_dash(target.host.as_deref()));
            println!("engine  {}", or_dash(target.engine.as_deref()));
            println!("apps    {}", or_dash(Some(&target.apps.join(", "))));
        }
        return Ok(());
    }
    let targets = ctx.client.targets().await?;
    if ctx.out.json {
        ctx.out.json(&targets);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = targets
        .items
        .iter()
        .map(|t| {
            vec![
                t.name.clone(),
                t.kind.clone(),
                or_dash(t.host.as_deref()),
                or_dash(t.engine.as_deref()),
                t.apps.len().to_string(),
            ]
        })
        .collect();
    ctx.out
        .table(&["NAME", "KIND", "HOST", "ENGINE", "APPS"], &rows);
    Ok(())
}

pub async fn domains(ctx: &Ctx, command: DomainsCommand) -> Result<()> {
    let (name, change) = match command {
        DomainsCommand::List(app) => (app.app, None),
        DomainsCommand::Add(d) => (d.app, Some((d.domain, true))),
        DomainsCommand::Remove(d) => (d.app, Some((d.domain, false))),
    };
    let mut app = ctx.client.app(&name).await?;
    if let Some((domain, add)) = change {
        let mut domains = app.domains.clone();
        let present = domains.contains(&domain);
        match (add, present) {
            (true, false) => domains.push(domain.clone()),
            (false, true) => domains.retain(|d| *d != domain),
            (true, true) => {}
            (false, false) => {
                return Err(CliError::local(
                    "no_such_domain",
                    format!("{name} has no domain {domain}"),
                ))
            }
        }
        app = ctx
            .client
            .patch_app(&name, &json!({ "domains": domains }))
            .await?;
        if !ctx.out.json {
            let verb = if add { "added" } else { "removed" };
            println!("{name}: {verb} {domain} (applied by the next deploy, start or restart)");
            return Ok(());
        }
    }
    if ctx.out.json {
        ctx.out.json(&json!({ "domains": app.domains }));
    } else {
        for domain in &app.domains {
            println!("{domain}");
        }
    }
    Ok(())
}

pub async fn addons(ctx: &Ctx, command: AddonsCommand) -> Result<()> {
    match command {
        AddonsCommand::List(app) => {
            let addons = ctx.client.addons(&app.app).await?;
            if ctx.out.json {
                ctx.out.json(&addons);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = addons
                .items
                .iter()
                .map(|a| vec![a.name.clone(), a.kind.clone(), ctx.out.state(&a.state)])
                .collect();
            ctx.out.table(&["NAME", "KIND", "STATE"], &rows);
        }
        AddonsCommand::Add(add) => {
            let mut body = json!({"kind": add.kind, "name": add.name});
            if let Some(mount) = add.mount {
                body["mount"] = Value::String(mount);
            }
            let addon = ctx.client.create_addon(&add.app, &body).await?;
            if ctx.out.json {
                ctx.out.json(&addon);
            } else {
                println!(
                    "{}: add-on {} ({}) {}",
                    add.app,
                    addon.name,
                    addon.kind,
                    ctx.out.state(&addon.state)
                );
            }
        }
        AddonsCommand::Remove(remove) => {
            let answer = ctx
                .client
                .delete_addon(&remove.app, &remove.name, remove.purge)
                .await?;
            if ctx.out.json {
                ctx.out.json(&answer);
            } else {
                println!("{}: removed add-on {}", remove.app, remove.name);
            }
        }
    }
    Ok(())
}
