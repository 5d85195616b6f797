//! Secrets at rest: ChaCha20-Poly1305 with the key from
//! `SLIPWAY_SECRET_KEY`. A sealed value is a random 96-bit nonce followed by
//! the ciphertext and tag.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};

const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the secret key must be 64 hex characters (32 bytes)")]
    BadKey,
    #[error("a sealed secret could not be opened (wrong key or damaged data)")]
    CannotOpen,
}

#[derive(Clone)]
pub struct SecretBox {
    cipher: ChaCha20Poly1305,
}

impl SecretBox {
    pub fn from_hex(key: &SecretString) -> Result<Self, SecretError> {
        let bytes = hex::decode(key.expose_secret().trim()).map_err(|_| SecretError::BadKey)?;
        if bytes.len() != 32 {
            return Err(SecretError::BadKey);
        }
        Ok(SecretBox {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&bytes)),
        })
    }

    pub fn seal(&self, plaintext: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext.as_bytes())
            // Encryption only fails for inputs beyond 256 GiB.
            .unwrap_or_default();
        [nonce.as_slice(), &ciphertext].concat()
    }

    pub fn open(&self, sealed: &[u8]) -> Result<SecretString, SecretError> {
        if sealed.len() < NONCE_LEN {
            return Err(SecretError::CannotOpen);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| SecretError::CannotOpen)?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| SecretError::CannotOpen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: &str) -> SecretString {
        byte.repeat(32).into()
    }

    #[test]
    fn sealed_values_open_with_the_same_key_only() {
        let secrets = SecretBox::from_hex(&key("ab")).unwrap();
        let sealed = secrets.seal("hunter2");
        assert!(!String::from_utf8_lossy(&sealed).contains("hunter2"));
        assert_ne!(sealed, secrets.seal("hunter2"), "a fresh nonce every time");
        assert_eq!(secrets.open(&sealed).unwrap().expose_secret(), "hunter2");
        let other = SecretBox::from_hex(&key("cd")).unwrap();
        assert!(other.open(&sealed).is_err());
        let mut damaged = sealed.clone();
        *damaged.last_mut().unwrap() ^= 1;
        assert!(secrets.open(&damaged).is_err());
        assert!(SecretBox::from_hex(&"abcd".to_owned().into()).is_err());
    }
}
