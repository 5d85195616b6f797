//! Transactions Postgres may abort as a deadlock victim or for a
//! serialization failure are run again, a few times with a short jittered
//! pause: two requests (or a request and a worker) racing over the same
//! rows must both get an answer, never a 500. Lock orders keep this rare;
//! this makes it harmless.

use crate::error::ApiError;
use rand::Rng;
use std::future::Future;
use std::time::Duration;

/// Tries of one transaction, the first included.
const ATTEMPTS: u32 = 5;

/// Runs `transaction` until it succeeds, fails for another reason, or has
/// been aborted [`ATTEMPTS`] times. Each run must open its own
/// transaction: an aborted one is rolled back whole.
pub async fn on_abort<T, F, Fut>(mut transaction: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let mut attempt = 1;
    loop {
        match transaction().await {
            Err(error) if attempt < ATTEMPTS && error.is_abort() => {
                tracing::info!(attempt, %error, "transaction aborted by the database; running it again");
                let pause = rand::thread_rng().gen_range(5..20 * u64::from(attempt));
                tokio::time::sleep(Duration::from_millis(pause)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Whether Postgres aborted the statement to break a deadlock (`40P01`)
/// or a serialization conflict (`40001`).
pub fn is_abort(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db)
        if db.code().is_some_and(|c| matches!(c.as_ref(), "40P01" | "40001")))
}
