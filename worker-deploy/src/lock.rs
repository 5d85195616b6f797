//! Postgres advisory locks that keep the deploy path and the reconciler
//! apart: one lock per app (a deploy holds it for its whole run; the
//! reconciler tries it and skips an app it cannot have) and one for the
//! reconciler itself, so only one deploy worker reconciles at a time.
//!
//! The locks are session locks on a connection of their own, so they last
//! exactly as long as the holder: a worker that dies loses its session and
//! with it its locks. A holder dropped without `release` (a cancelled or
//! timed-out job) closes its connection instead of returning it to the
//! pool, where the lock would otherwise stay held by an idle session.

use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};
use uuid::Uuid;

/// First key of every Slipway advisory lock (`pg_advisory_lock(int, int)`),
/// so they share no key with locks taken by anything else.
const APP_SPACE: i32 = 0x534c_0001;
const RECONCILER_SPACE: i32 = 0x534c_0002;

/// A held advisory lock; released on `release`, or by closing its session
/// when dropped.
pub struct AdvisoryLock {
    conn: Option<PoolConnection<Postgres>>,
    keys: (i32, i32),
}

/// The lock of one app. Distinct apps may share a key (a 32-bit fold of
/// the id): that only makes them wait for each other.
pub fn app_key(app_id: Uuid) -> (i32, i32) {
    let folded = app_id
        .as_bytes()
        .chunks(4)
        .map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .fold(0, |acc, part| acc ^ part);
    (APP_SPACE, folded)
}

/// The reconciler's lock: one per database, held for a whole pass.
pub const RECONCILER_KEY: (i32, i32) = (RECONCILER_SPACE, 0);

/// Waits for the lock.
pub async fn lock(pool: &PgPool, keys: (i32, i32)) -> Result<AdvisoryLock, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    sqlx::query("SELECT pg_advisory_lock($1, $2)")
        .bind(keys.0)
        .bind(keys.1)
        .execute(&mut *conn)
        .await?;
    Ok(AdvisoryLock {
        conn: Some(conn),
        keys,
    })
}

/// Takes the lock if it is free; `None` when another session holds it.
pub async fn try_lock(
    pool: &PgPool,
    keys: (i32, i32),
) -> Result<Option<AdvisoryLock>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
        .bind(keys.0)
        .bind(keys.1)
        .fetch_one(&mut *conn)
        .await?;
    Ok(got.then_some(AdvisoryLock {
        conn: Some(conn),
        keys,
    }))
}

impl AdvisoryLock {
    /// Unlocks and hands the connection back to the pool; if the unlock
    /// fails the connection is closed, which unlocks too.
    pub async fn release(mut self) {
        if let Some(mut conn) = self.conn.take() {
            let unlocked = sqlx::query("SELECT pg_advisory_unlock($1, $2)")
                .bind(self.keys.0)
                .bind(self.keys.1)
                .execute(&mut *conn)
                .await;
            if unlocked.is_err() {
                drop(conn.detach());
            }
        }
    }
}

impl Drop for AdvisoryLock {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // Closing the session releases its locks.
            drop(conn.detach());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::app_key;
    use uuid::Uuid;

    #[test]
    fn app_keys_are_stable_and_spread() {
        let a = Uuid::parse_str("0190c1a2-0000-7000-8000-aaaaaaaaaaaa").unwrap();
        let b = Uuid::parse_str("0190c1a2-0000-7000-8000-aaaaaaaaaaab").unwrap();
        assert_eq!(app_key(a), app_key(a));
        assert_ne!(app_key(a), app_key(b));
    }
}
