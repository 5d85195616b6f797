//! Server images (migration 0080): a snapshot, at the provider, of a server
//! Slipway has just set up and nothing of any app has reached, saved when
//! its cloud account asks for them (`server_images`), one per kind of
//! server (account, region, size, base image, setup recipe). Later servers
//! of that kind are created from it and find their setup done. An image
//! bills until it is deleted: it carries Slipway's labels, is listed and
//! deleted through the API, and an account holding one cannot be deleted.

use crate::db::servers::{database, ServerRow};
use crate::job::JobError;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

/// The label (Hetzner labels, OpenStack metadata) carrying the image's id.
pub const LABEL: &str = "slipway-image";

/// Setup's recipe: an image saved by another recipe is not used. Change it
/// when setup installs or prepares something else.
pub const RECIPE: &str = "setup-v1";

/// The registry path a build's base image is mirrored to
/// (`slipway-base/<its path without a registry host>`): the build worker
/// pushes it there, the provision worker pulls it onto a server before
/// saving that server as an image, so servers made from the image hold the
/// base layers every app's image starts with.
pub fn base_mirror_path(base: &str) -> String {
    let path = match base.split_once('/') {
        Some((host, rest)) if host.contains(['.', ':']) || host == "localhost" => rest,
        _ => base,
    };
    format!("slipway-base/{path}")
}

/// The base images of the project's builds (the newest first, at most
/// `limit`), as their plans name them.
pub async fn project_bases(
    pool: &PgPool,
    project_id: Uuid,
    limit: i64,
) -> Result<Vec<String>, JobError> {
    sqlx::query_scalar(
        "SELECT base FROM (
             SELECT build_plan->>'base_image' AS base, max(created_at) AS last FROM deployments
             WHERE project_id = $1 AND image_digest IS NOT NULL AND build_plan->>'base_image' IS NOT NULL
             GROUP BY 1) bases
         ORDER BY last DESC LIMIT $2",
    )
    .bind(project_id)
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(database)
}

/// Where an image is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageState {
    /// The provider saves it; no server uses it yet.
    Saving,
    /// Servers of its kind are created from it.
    Available,
    /// Saving failed (`error` says why); nothing of it is left.
    Failed,
    /// Deleted at the provider.
    Deleted,
}

impl ImageState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Saving => "saving",
            Self::Available => "available",
            Self::Failed => "failed",
            Self::Deleted => "deleted",
        }
    }

    pub fn parse(text: &str) -> Option<ImageState> {
        [Self::Saving, Self::Available, Self::Failed, Self::Deleted]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ServerImageRow {
    pub id: Uuid,
    pub project_id: Uuid,
    pub account_id: Uuid,
    pub region: String,
    pub size: String,
    pub base_image: String,
    pub recipe: String,
    pub source_server_id: Option<Uuid>,
    pub source_public_key: String,
    pub state: String,
    pub provider_id: Option<String>,
    pub size_gb: Option<f64>,
    pub monthly_cost_eur_e4: Option<i64>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ServerImageRow {
    pub fn state(&self) -> Option<ImageState> {
        ImageState::parse(&self.state)
    }

    /// What its provider-side name is (Slipway's id in it).
    pub fn name(&self) -> String {
        crate::db::servers::resource_name("image", self.id)
    }
}

const COLUMNS: &str = "id, project_id, account_id, region, size, base_image, recipe,
    source_server_id, source_public_key, state, provider_id, size_gb, monthly_cost_eur_e4, error, created_at,
    updated_at";

/// Whether the account of `server` saves server images.
pub async fn wanted(pool: &PgPool, server: &ServerRow) -> Result<bool, JobError> {
    sqlx::query_scalar("SELECT server_images FROM cloud_accounts WHERE id = $1")
        .bind(server.account_id)
        .fetch_optional(pool)
        .await
        .map_err(database)
        .map(|wanted| wanted.unwrap_or(false))
}

/// The available image a server like `server` is created from, if any.
pub async fn available_for(
    pool: &PgPool,
    server: &ServerRow,
) -> Result<Option<ServerImageRow>, JobError> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM server_images
         WHERE account_id = $1 AND region = $2 AND size = $3 AND base_image = $4 AND recipe = $5
           AND state = 'available' AND provider_id IS NOT NULL"
    ))
    .bind(server.account_id)
    .bind(&server.region)
    .bind(&server.size)
    .bind(&server.image)
    .bind(RECIPE)
    .fetch_optional(pool)
    .await
    .map_err(database)
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<ServerImageRow>, JobError> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM server_images WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
    .map_err(database)
}

/// The image `server` is to save: the one an earlier attempt of its create
/// claimed, or a new one, unless an image of its kind is saved or being
/// saved already (then `None`: one per kind).
/// `source_public_key` is the key Slipway authorized on `server`.
pub async fn claim(
    pool: &PgPool,
    server: &ServerRow,
    source_public_key: &str,
) -> Result<Option<ServerImageRow>, JobError> {
    let earlier: Option<ServerImageRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM server_images WHERE source_server_id = $1 AND state = 'saving'"
    ))
    .bind(server.id)
    .fetch_optional(pool)
    .await
    .map_err(database)?;
    if earlier.is_some() {
        return Ok(earlier);
    }
    sqlx::query_as(&format!(
        "INSERT INTO server_images (id, project_id, account_id, region, size, base_image, recipe,
                                    source_server_id, source_public_key, state)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'saving')
         ON CONFLICT DO NOTHING RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(server.project_id)
    .bind(server.account_id)
    .bind(&server.region)
    .bind(&server.size)
    .bind(&server.image)
    .bind(RECIPE)
    .bind(server.id)
    .bind(source_public_key)
    .fetch_optional(pool)
    .await
    .map_err(database)
}

/// The provider's id, recorded before anything waits on it.
pub async fn record_provider_id(
    pool: &PgPool,
    id: Uuid,
    provider_id: &str,
) -> Result<(), JobError> {
    sqlx::query("UPDATE server_images SET provider_id = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(provider_id)
        .execute(pool)
        .await
        .map_err(database)?;
    Ok(())
}

/// Saved: servers of its kind are created from it from now on.
pub async fn mark_available(
    pool: &PgPool,
    id: Uuid,
    size_gb: Option<f64>,
    monthly_cost_eur_e4: Option<i64>,
) -> Result<(), JobError> {
    sqlx::query(
        "UPDATE server_images SET state = 'available', size_gb = $2, monthly_cost_eur_e4 = $3,
                updated_at = now()
         WHERE id = $1 AND state = 'saving'",
    )
    .bind(id)
    .bind(size_gb)
    .bind(monthly_cost_eur_e4)
    .execute(pool)
    .await
    .map_err(database)?;
    Ok(())
}

/// Ends an image: `failed` (with why) or `deleted`.
pub async fn end(
    pool: &PgPool,
    id: Uuid,
    state: ImageState,
    error: Option<&str>,
) -> Result<(), JobError> {
    sqlx::query(
        "UPDATE server_images SET state = $2, error = coalesce($3, error), updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(state.as_str())
    .bind(error)
    .execute(pool)
    .await
    .map_err(database)?;
    Ok(())
}

/// Server `server_id` is (to be) created from image `image_id`.
pub async fn use_for(pool: &PgPool, server_id: Uuid, image_id: Uuid) -> Result<(), JobError> {
    sqlx::query("UPDATE servers SET server_image_id = $2 WHERE id = $1")
        .bind(server_id)
        .bind(image_id)
        .execute(pool)
        .await
        .map_err(database)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::base_mirror_path;

    #[test]
    fn base_images_are_mirrored_without_their_registry_host() {
        assert_eq!(
            base_mirror_path("localhost/slipway/static:bookworm"),
            "slipway-base/slipway/static:bookworm"
        );
        assert_eq!(
            base_mirror_path("registry.example:5000/py:3.12"),
            "slipway-base/py:3.12"
        );
        assert_eq!(base_mirror_path("debian:12"), "slipway-base/debian:12");
        assert_eq!(
            base_mirror_path("library/node:20"),
            "slipway-base/library/node:20"
        );
    }
}
