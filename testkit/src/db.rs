//! Fresh, fully migrated PostgreSQL databases for tests.
//!
//! Each test gets its own database (`slipway_test_<uuid>`) on a shared
//! cluster instead of truncating tables in a shared one: tests run in
//! parallel and must never observe each other's rows. The workspace
//! migrations are embedded with `sqlx::migrate!` so a test binary does not
//! depend on the working directory it is started from.

use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};

/// Admin URL used by [`fresh_database`]: `SLIPWAY_TEST_DATABASE_URL`, else
/// the system cluster's `postgres` database.
pub fn admin_database_url() -> String {
    std::env::var("SLIPWAY_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A throwaway database with all migrations applied.
pub struct TestDb {
    /// Connection URL of the new database.
    pub url: String,
    /// Database name, `slipway_test_<uuid simple>`.
    pub name: String,
    /// Pool connected to the new database.
    pub pool: PgPool,
    admin_url: String,
}

/// Create a fresh migrated database on the cluster named by
/// [`admin_database_url`].
pub async fn fresh_database() -> anyhow::Result<TestDb> {
    fresh_database_on(&admin_database_url()).await
}

/// Create a fresh migrated database on the cluster behind `admin_url` (for
/// example a test-owned [`crate::PgCluster`]).
pub async fn fresh_database_on(admin_url: &str) -> anyhow::Result<TestDb> {
    let name = format!("slipway_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(admin_url)
        .await
        .with_context(|| format!("connecting to admin database {admin_url}"))?;
    // The name is generated from hex digits only, so quoting is enough.
    sqlx::query(&format!(r#"CREATE DATABASE "{name}""#))
        .execute(&mut admin)
        .await
        .with_context(|| format!("creating database {name}"))?;
    let _ = admin.close().await;

    let url = with_database(admin_url, &name);
    let pool = PgPoolOptions::new()
        .max_connections(10)
        .acquire_timeout(Duration::from_secs(10))
        .connect(&url)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let db = TestDb {
        url,
        name,
        pool,
        admin_url: admin_url.to_string(),
    };
    if let Err(e) = sqlx::migrate!("../migrations").run(&db.pool).await {
        let name = db.name.clone();
        db.drop_database().await;
        return Err(anyhow::Error::new(e).context(format!("migrating {name}")));
    }
    Ok(db)
}

impl TestDb {
    /// Drop the database, best effort: closes the pool, terminates any other
    /// session still connected (a spawned worker, a leaked pool) and drops
    /// it. Errors are logged, not returned, because this runs in cleanup.
    pub async fn drop_database(self) {
        self.pool.close().await;
        let result: anyhow::Result<()> = async {
            let mut admin = PgConnection::connect(&self.admin_url).await?;
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
            )
            .bind(&self.name)
            .execute(&mut admin)
            .await?;
            // WITH (FORCE) covers a session that connected after the purge.
            sqlx::query(&format!(
                r#"DROP DATABASE IF EXISTS "{}" WITH (FORCE)"#,
                self.name
            ))
            .execute(&mut admin)
            .await?;
            let _ = admin.close().await;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(db = %self.name, error = %e, "dropping test database failed");
        }
    }
}

/// Replace the database name in a `postgres://` URL, keeping any query.
pub(crate) fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(i) => &base[..authority_start + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_database_name() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u@h:1?sslmode=disable", "x"),
            "postgres://u@h:1/x?sslmode=disable"
        );
    }
}
