//! Sign-in limits: failed attempts are counted per account and per client
//! address in fixed windows, in Postgres so every API process counts the
//! same attempts. Past a limit, sign-ins answer `429` with `Retry-After`
//! until the window ends — also with the right password, or guessing
//! would only need to wait for a success.

use crate::error::ApiError;
use slipway_shared::config::SignInLimits;
use std::net::IpAddr;

/// What one sign-in attempt is counted against, with each key's limit.
pub struct Keys(Vec<(String, u32)>);

impl Keys {
    pub fn new(limits: &SignInLimits, email: &str, address: Option<IpAddr>) -> Keys {
        let mut keys = vec![(
            format!("account:{}", email.trim().to_lowercase()),
            limits.per_account,
        )];
        if let Some(address) = address {
            keys.push((format!("address:{address}"), limits.per_address));
        }
        Keys(keys)
    }
}

/// The current window's start and the seconds until it ends.
fn window(
    limits: &SignInLimits,
    now: chrono::DateTime<chrono::Utc>,
) -> (chrono::DateTime<chrono::Utc>, u64) {
    let length = limits.window.as_secs().max(1) as i64;
    let epoch = now.timestamp();
    let start = epoch - epoch.rem_euclid(length);
    let left = (start + length - epoch).max(1) as u64;
    (
        chrono::DateTime::from_timestamp(start, 0).unwrap_or(now),
        left,
    )
}

/// `429 too_many_attempts` when any key has used its failures.
pub async fn check(
    pool: &sqlx::PgPool,
    limits: &SignInLimits,
    keys: &Keys,
) -> Result<(), ApiError> {
    let (start, left) = window(limits, chrono::Utc::now());
    for (key, limit) in &keys.0 {
        let failures: Option<i32> = sqlx::query_scalar(
            "SELECT failures FROM signin_failures WHERE key = $1 AND window_start = $2",
        )
        .bind(key)
        .bind(start)
        .fetch_optional(pool)
        .await?;
        if failures.unwrap_or(0) >= *limit as i32 {
            return Err(ApiError::TooManyRequests {
                retry_after: left,
                message: format!(
                    "too many failed sign-ins {}; try again in {left} s",
                    if key.starts_with("account:") {
                        "for this account"
                    } else {
                        "from this address"
                    }
                ),
            });
        }
    }
    Ok(())
}

/// Counts one failure against every key.
pub async fn record_failure(
    pool: &sqlx::PgPool,
    limits: &SignInLimits,
    keys: &Keys,
) -> Result<(), ApiError> {
    let (start, _) = window(limits, chrono::Utc::now());
    for (key, _) in &keys.0 {
        sqlx::query(
            "INSERT INTO signin_failures (key, window_start, failures) VALUES ($1, $2, 1) \
             ON CONFLICT (key, window_start) DO UPDATE SET failures = signin_failures.failures + 1",
        )
        .bind(key)
        .bind(start)
        .execute(pool)
        .await?;
    }
    // Old windows are no use to anyone.
    sqlx::query("DELETE FROM signin_failures WHERE window_start < $1")
        .bind(start - chrono::Duration::from_std(limits.window).unwrap_or_default())
        .execute(pool)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn windows_are_fixed_and_say_how_long_is_left() {
        let limits = SignInLimits {
            window: Duration::from_secs(900),
            per_account: 10,
            per_address: 50,
        };
        let at = |s: i64| chrono::DateTime::from_timestamp(s, 0).unwrap();
        assert_eq!(window(&limits, at(900)), (at(900), 900));
        assert_eq!(window(&limits, at(1000)), (at(900), 800));
        assert_eq!(window(&limits, at(1799)), (at(900), 1));
        assert_eq!(window(&limits, at(1800)), (at(1800), 900));
    }
}
