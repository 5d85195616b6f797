//! The first platform admin: made by `slipway-api create-admin EMAIL`
//! (the password read from standard input), or once on start from
//! `SLIPWAY_BOOTSTRAP_ADMIN_EMAIL` and `SLIPWAY_BOOTSTRAP_ADMIN_PASSWORD`
//! while no user exists. There is never a default password.

use crate::auth::password;
use crate::error::ApiError;
use secrecy::ExposeSecret;
use slipway_shared::config::AccountSettings;
use uuid::Uuid;

/// Creates an admin account; the same rules as every password.
pub async fn create_admin(
    pool: &sqlx::PgPool,
    email: &str,
    new_password: &str,
) -> Result<Uuid, ApiError> {
    let email = crate::routes::users::parse_email(email)?;
    password::check_strength(new_password, &email)?;
    let hash = password::hash_blocking(new_password.to_owned()).await?;
    let mut conn = pool.acquire().await?;
    crate::routes::users::insert(&mut conn, &email, &hash, true).await
}

/// The environment's first admin, if configured and no user exists yet.
pub async fn from_env(pool: &sqlx::PgPool, accounts: &AccountSettings) -> anyhow::Result<()> {
    let Some((email, secret)) = &accounts.bootstrap_admin else {
        return Ok(());
    };
    let anyone: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users)")
        .fetch_one(pool)
        .await?;
    if anyone {
        return Ok(());
    }
    match create_admin(pool, email, secret.expose_secret()).await {
        Ok(id) => {
            tracing::info!(%id, email, "first admin created from SLIPWAY_BOOTSTRAP_ADMIN_EMAIL");
            Ok(())
        }
        // Another API process made it first.
        Err(ApiError::Conflict { .. }) => Ok(()),
        Err(error) => Err(anyhow::anyhow!("SLIPWAY_BOOTSTRAP_ADMIN_*: {error}")),
    }
}

/// `slipway-api create-admin EMAIL`: the password is the first line of
/// standard input (so it is in no shell history or process list).
pub async fn command(database_url: &secrecy::SecretString, args: &[String]) -> anyhow::Result<()> {
    let [email] = args else {
        anyhow::bail!(
            "usage: slipway-api create-admin EMAIL   (the password is read from standard input)"
        );
    };
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let new_password = line.trim_end_matches(['\r', '\n']);
    let pool = slipway_shared::db::pool(database_url, 2)?;
    slipway_shared::db::migrate(&pool).await?;
    match create_admin(&pool, email, new_password).await {
        Ok(id) => {
            println!("admin {email} created (id {id})");
            Ok(())
        }
        Err(error) => anyhow::bail!("{error}"),
    }
}
