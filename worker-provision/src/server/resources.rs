//! What Slipway makes at a provider for one server, found by what it
//! recorded and by its labels and names (so what an attempt made before it
//! could record the id is found too), and removed: the servers first (a
//! firewall in use cannot go), then the firewall and the key pair. Used by
//! the destroy and by a create that gives up.

use super::cloud::failed;
use slipway_cloud::driver::{CloudDriver, Labels};
use slipway_shared::db::servers::{resource_name, ServerRow, LABEL};
use slipway_shared::job::{JobContext, JobError};
use std::collections::BTreeSet;
use std::time::Duration;
use uuid::Uuid;

/// The labels of everything made for server `id`.
pub fn labels(id: Uuid) -> Labels {
    Labels::from([
        ("managed-by".to_owned(), "slipway".to_owned()),
        (LABEL.to_owned(), id.to_string()),
    ])
}

pub fn key_name(id: Uuid) -> String {
    resource_name("key", id)
}

pub fn firewall_name(id: Uuid) -> String {
    resource_name("fw", id)
}

/// Removes every server, firewall and key pair made for `server`; what
/// is already gone counts as removed.
pub async fn remove_all(
    ctx: &JobContext,
    driver: &dyn CloudDriver,
    server: &ServerRow,
    limit: Duration,
) -> Result<(), JobError> {
    let mut servers: BTreeSet<String> = server.provider_id.iter().cloned().collect();
    for found in driver
        .list_servers(&labels(server.id))
        .await
        .map_err(failed)?
    {
        servers.insert(found.id);
    }
    for id in &servers {
        ctx.logs
            .info(format!("deleting server {id} at the provider"))
            .await;
        driver.delete_server(id, limit).await.map_err(failed)?;
    }
    let mut firewalls: BTreeSet<String> = server.firewall_provider_id.iter().cloned().collect();
    for found in driver
        .list_firewalls(&firewall_name(server.id))
        .await
        .map_err(failed)?
    {
        firewalls.insert(found.id);
    }
    for id in &firewalls {
        ctx.logs.info(format!("deleting firewall {id}")).await;
        driver.delete_firewall(id).await.map_err(failed)?;
    }
    let mut keys: BTreeSet<String> = server.key_provider_id.iter().cloned().collect();
    for found in driver
        .list_keys(&key_name(server.id))
        .await
        .map_err(failed)?
    {
        keys.insert(found.id);
    }
    for id in &keys {
        ctx.logs.info(format!("deleting key pair {id}")).await;
        driver.delete_key(id).await.map_err(failed)?;
    }
    ctx.logs
        .info(format!(
            "removed at the provider: {} server(s), {} firewall(s), {} key pair(s)",
            servers.len(),
            firewalls.len(),
            keys.len()
        ))
        .await;
    Ok(())
}
