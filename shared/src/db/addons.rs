//! Add-on rows: what the API records, what the provision stage creates and
//! the deploy stage links into an app's releases. See
//! `migrations/0012_addons.sql` for the lifecycle.

use sqlx::PgExecutor;
use uuid::Uuid;

pub const KIND_POSTGRES: &str = "postgres";
pub const KIND_VOLUME: &str = "volume";
pub const STATE_PENDING: &str = "pending";
pub const STATE_READY: &str = "ready";
pub const STATE_PURGING: &str = "purging";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AddonRow {
    pub id: Uuid,
    pub app_id: Uuid,
    pub kind: String,
    pub name: String,
    pub state: String,
    pub db_name: Option<String>,
    pub db_role: Option<String>,
    pub password_sealed: Option<Vec<u8>>,
    pub volume_name: Option<String>,
    pub mount_path: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

const COLUMNS: &str = "id, app_id, kind, name, state, db_name, db_role, password_sealed, \
                       volume_name, mount_path, created_at";

/// Every add-on of the app, oldest first.
pub async fn for_app(db: impl PgExecutor<'_>, app_id: Uuid) -> sqlx::Result<Vec<AddonRow>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM addons WHERE app_id = $1 ORDER BY created_at, name"
    ))
    .bind(app_id)
    .fetch_all(db)
    .await
}

/// The add-ons of the app a deployment is for.
pub async fn for_deployment(
    db: impl PgExecutor<'_>,
    deployment_id: Uuid,
) -> sqlx::Result<Vec<AddonRow>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM addons WHERE app_id = \
         (SELECT app_id FROM deployments WHERE id = $1) ORDER BY created_at, name"
    ))
    .bind(deployment_id)
    .fetch_all(db)
    .await
}

/// A pending add-on now exists on its server (a purging one stays purging).
pub async fn mark_ready(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE addons SET state = 'ready', ready_at = now() WHERE id = $1 AND state = 'pending'",
    )
    .bind(id)
    .execute(db)
    .await
    .map(drop)
}

/// The data of a purging add-on is gone: the row goes too.
pub async fn remove_purged(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM addons WHERE id = $1 AND state = 'purging'")
        .bind(id)
        .execute(db)
        .await
        .map(drop)
}
