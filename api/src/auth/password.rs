//! Passwords: argon2id (the crate's defaults, OWASP's minimum: 19 MiB,
//! 2 passes) in PHC strings, and what a password must be.

use crate::error::ApiError;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

pub const MIN_LENGTH: usize = 12;
pub const MAX_LENGTH: usize = 1024;

/// Passwords people pick first; refusing them costs nothing.
const COMMON: &[&str] = &[
    "password1234",
    "passwordpassword",
    "123456789012",
    "qwertyuiopas",
    "iloveyou1234",
    "adminadmin12",
    "letmein12345",
    "welcome12345",
    "changeme1234",
    "slipwayslipway",
];

/// Why a new password is refused (422 `weak_password`).
pub fn check_strength(password: &str, email: &str) -> Result<(), ApiError> {
    let weak = |message: String| ApiError::Invalid {
        code: "weak_password",
        message,
    };
    let length = password.chars().count();
    if length < MIN_LENGTH {
        return Err(weak(format!(
            "password: must be at least {MIN_LENGTH} characters"
        )));
    }
    if length > MAX_LENGTH {
        return Err(weak(format!(
            "password: must be at most {MAX_LENGTH} characters"
        )));
    }
    let lower = password.to_lowercase();
    let distinct: std::collections::BTreeSet<char> = lower.chars().collect();
    if distinct.len() < 5 {
        return Err(weak("password: uses too few different characters".into()));
    }
    if COMMON.contains(&lower.as_str()) {
        return Err(weak("password: is one of the most common passwords".into()));
    }
    let local = email.split('@').next().unwrap_or_default().to_lowercase();
    if lower == email.to_lowercase() || (local.len() >= 4 && lower.contains(&local)) {
        return Err(weak("password: may not contain the email address".into()));
    }
    Ok(())
}

/// An argon2id PHC string of `password` with a fresh salt.
pub fn hash(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
}

/// Whether `password` matches the stored PHC string.
pub fn verify(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Hashing takes tens of milliseconds of CPU: off the async threads.
pub async fn hash_blocking(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || hash(&password))
        .await
        .map_err(|e| ApiError::Unexpected(e.into()))?
        .map_err(ApiError::Unexpected)
}

pub async fn verify_blocking(password: String, stored: String) -> Result<bool, ApiError> {
    tokio::task::spawn_blocking(move || verify(&password, &stored))
        .await
        .map_err(|e| ApiError::Unexpected(e.into()))
}

/// A hash to verify against when the account does not exist, so a wrong
/// email costs as long as a wrong password (no account enumeration by time).
pub fn decoy() -> &'static str {
    static DECOY: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| hash("decoy-password-never-matches").unwrap_or_default());
    DECOY.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_are_argon2id() {
        let stored = hash("correct horse battery").unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(verify("correct horse battery", &stored));
        assert!(!verify("correct horse batterz", &stored));
        assert!(!verify("anything", "not a phc string"));
    }

    #[test]
    fn weak_passwords_are_refused_with_a_reason() {
        let table = [
            ("", false),
            ("short", false),
            ("aaaaaaaaaaaaaaaa", false),
            ("password1234", false),
            ("alice-secret-99", false), // contains the email's name
            ("correct horse battery", true),
            ("Tr0ub4dor&3xyz", true),
        ];
        for (password, ok) in table {
            let verdict = check_strength(password, "alice@example.com");
            assert_eq!(verdict.is_ok(), ok, "{password:?}: {verdict:?}");
        }
    }
}
