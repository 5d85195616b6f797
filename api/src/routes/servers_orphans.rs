//! `GET /v1/cloud-accounts/{account}/orphans`: what Slipway made at a
//! provider that no server of the project owns any more — servers labelled
//! `managed-by=slipway`, firewalls and key pairs named `slipway-fw-…` and
//! `slipway-key-…` — whose Slipway server is unknown or destroyed, and
//! server images labelled so whose image Slipway no longer keeps. Read
//! live from the provider; nothing is deleted here (destroying the server,
//! or deleting at the provider, does that).

use crate::auth::Viewer;
use crate::cloud_account::{provider_failed, Driver};
use crate::error::ApiError;
use crate::extract::Path;
use crate::openapi::{formats, views, ErrorBody};
use crate::routes::cloud_accounts::resolve;
use crate::state::AppState;
use axum::extract::State;
use serde_json::{json, Value};
use slipway_cloud::driver::Labels;
use slipway_shared::db::server_images;
use slipway_shared::db::servers::LABEL;
use std::collections::HashSet;
use uuid::Uuid;

/// The Slipway server id at the end of a name `slipway-<kind>-<uuid>`.
fn server_of(name: &str) -> Option<String> {
    let id = name.get(name.len().checked_sub(36)?..)?;
    id.parse::<Uuid>().ok().map(|u| u.to_string())
}

/// List what Slipway made at the account's provider that no server owns.
#[utoipa::path(get, path = "/v1/cloud-accounts/{account}/orphans", tag = "cloud", operation_id = "list_cloud_orphans",
    security(("project_token" = ["viewer"])), params(("account" = formats::Name, Path, description = "The account's name or id")),
    responses(
        (status = 200, description = "The orphans", body = views::Items<views::Orphan>),
        (status = 404, description = "`not_found`: no such account", body = ErrorBody),
        (status = 422, description = "`address_not_allowed`, `invalid_credentials` or `provider_unreachable`", body = ErrorBody),
        (status = 502, description = "`provider_error`: the provider failed (its words)", body = ErrorBody),
    ))]
pub async fn list(
    Viewer(project): Viewer,
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let id = resolve(&mut conn, project.id, &key).await?;
    let (provider, endpoint, sealed): (String, Option<String>, Vec<u8>) = sqlx::query_as(
        "SELECT provider, endpoint, credentials_sealed FROM cloud_accounts WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    let owners: HashSet<String> = sqlx::query_scalar(
        "SELECT id::text FROM servers WHERE account_id = $1 AND state <> 'destroyed'",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .collect();
    let images: HashSet<String> = sqlx::query_scalar(
        "SELECT id::text FROM server_images WHERE account_id = $1 AND state IN ('saving', 'available')",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .collect();
    drop(conn);
    let built = Driver::of_account(&state, &provider, endpoint.as_deref(), &sealed).await?;
    let driver = built.driver();
    let ours = Labels::from([("managed-by".to_owned(), "slipway".to_owned())]);
    let mut items = Vec::new();
    let mut orphan = |kind: &str, provider_id: String, name: String, server: Option<String>| {
        if server.as_ref().is_none_or(|s| !owners.contains(s)) {
            items.push(json!({"kind": kind, "provider_id": provider_id, "name": name, "server_id": server}));
        }
    };
    for server in driver.list_servers(&ours).await.map_err(provider_failed)? {
        let owner = server.labels.get(LABEL).cloned();
        orphan("server", server.id, server.name, owner);
    }
    for firewall in driver
        .list_firewalls("slipway-fw-")
        .await
        .map_err(provider_failed)?
    {
        let owner = server_of(&firewall.name);
        orphan("firewall", firewall.id, firewall.name, owner);
    }
    for key in driver
        .list_keys("slipway-key-")
        .await
        .map_err(provider_failed)?
    {
        let owner = server_of(&key.name);
        orphan("key_pair", key.id, key.name, owner);
    }
    for image in driver.list_images(&ours).await.map_err(provider_failed)? {
        let owner = image.labels.get(server_images::LABEL);
        if owner.is_none_or(|o| !images.contains(o)) {
            items.push(
                json!({"kind": "image", "provider_id": image.id, "name": image.name,
                              "server_id": null}),
            );
        }
    }
    Ok(axum::Json(json!({ "items": items })))
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_carry_the_server() {
        let id = "0190a5d0-0000-7000-8000-000000000001";
        assert_eq!(
            super::server_of(&format!("slipway-key-{id}")).as_deref(),
            Some(id)
        );
        assert_eq!(super::server_of("slipway-key-x"), None);
    }
}
