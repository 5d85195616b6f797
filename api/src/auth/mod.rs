//! Who may call what. Authentication ([`caller`]) resolves every request's
//! caller once — the admin token, a project token, or a person's session
//! cookie — and authorization ([`access`]) is one layer for all of them:
//! a handler's extractor names the role it needs.
//!
//! Secrets that reach the API (tokens, session cookies, link secrets) are
//! random 32-byte values stored as SHA-256: a slow hash would put every
//! request over its latency budget, and 256 bits need no stretching.
//! Passwords, which people choose, are argon2id ([`password`]).

pub mod access;
pub mod address;
pub mod caller;
pub mod password;
pub mod ratelimit;
mod role;
pub mod session;
pub mod tokens;

pub use access::{authorize, Admin, Member, Owner, Project, SignedIn, Viewer};
pub use caller::{Actor, Caller};
pub use role::Role;

use rand::RngCore;
use sha2::{Digest, Sha256};

pub const TOKEN_PREFIX: &str = "slw_";

pub fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A new project token: shown once, stored only as its hash.
pub fn new_token() -> String {
    format!("{TOKEN_PREFIX}{}", random_secret())
}

/// 32 random bytes as hex: link secrets (invitations, resets).
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}
