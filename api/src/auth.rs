//! Bearer-token authentication. The admin token comes from the environment;
//! project tokens are random 32-byte secrets stored as SHA-256 and scope
//! every query to their project.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

pub const TOKEN_PREFIX: &str = "slw_";

pub fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A new project token: shown once, stored only as its hash.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", hex::encode(bytes))
}

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(ApiError::Unauthorized)
}

/// The caller holds the admin token.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        // Comparing hashes in constant time: neither length nor content leaks.
        if bool::from(hash(token).ct_eq(&state.admin_token_hash)) {
            Ok(Admin)
        } else if token.starts_with(TOKEN_PREFIX) {
            Err(ApiError::Forbidden)
        } else {
            Err(ApiError::Unauthorized)
        }
    }
}

/// The caller holds a token of this project.
#[derive(Debug, Clone, Copy)]
pub struct Project {
    pub id: Uuid,
}

impl FromRequestParts<AppState> for Project {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        let project: Option<Uuid> =
            sqlx::query_scalar("SELECT project_id FROM api_tokens WHERE token_sha256 = $1")
                .bind(hash(token))
                .fetch_optional(&state.pool)
                .await?;
        match project {
            Some(id) => Ok(Project { id }),
            // The admin token manages projects; project resources need a project token.
            None if bool::from(hash(token).ct_eq(&state.admin_token_hash)) => {
                Err(ApiError::Forbidden)
            }
            None => Err(ApiError::Unauthorized),
        }
    }
}
