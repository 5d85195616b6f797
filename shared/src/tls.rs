//! Where the certificates of the apps' HTTPS come from, per target: Caddy's
//! internal CA (local mode: no public name needed, clients fetch the root
//! from Caddy's `/pki/ca/local`) or an ACME CA (production: Let's Encrypt
//! by default, or any RFC 8555 CA, for names that resolve to the target).
//! Caddy solves the ACME challenges itself: HTTP-01 on the apps server
//! (which must be on port 80 of the names' address) or TLS-ALPN-01 on the
//! HTTPS server (port 443).

use crate::domain::Invalid;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Let's Encrypt's production directory.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "issuer", rename_all = "snake_case")]
pub enum TlsIssuer {
    /// Caddy's own CA.
    #[default]
    Internal,
    Acme {
        /// The CA's directory URL.
        ca: String,
        /// The account's contact, if any (expiry notices).
        email: Option<String>,
        /// A PEM file on the target host with the CA's root, for a private
        /// ACME CA whose root is not in the system's trust store.
        ca_root: Option<String>,
    },
}

fn invalid(field: &'static str, reason: impl Into<String>) -> Invalid {
    Invalid {
        field,
        reason: reason.into(),
    }
}

impl TlsIssuer {
    /// `issuer` is `internal` or `acme` (absent: `default`); the ACME
    /// fields are taken only with `acme`.
    pub fn parse(
        issuer: Option<&str>,
        default: TlsIssuer,
        ca: Option<&str>,
        email: Option<&str>,
        ca_root: Option<&str>,
    ) -> Result<TlsIssuer, Invalid> {
        let acme = match issuer {
            None => matches!(default, TlsIssuer::Acme { .. }),
            Some("acme") => true,
            Some("internal") => false,
            Some(other) => {
                return Err(invalid(
                    "tls_issuer",
                    format!("`{other}` is not an issuer (internal or acme)"),
                ))
            }
        };
        if !acme {
            if ca.or(email).or(ca_root).is_some() {
                return Err(invalid(
                    "tls_issuer",
                    "acme_ca, acme_email and acme_ca_root go with the acme issuer",
                ));
            }
            return Ok(TlsIssuer::Internal);
        }
        let ca = ca.unwrap_or(LETS_ENCRYPT);
        let url_ok = ca.starts_with("https://")
            && ca.len() <= 2048
            && !ca.chars().any(|c| c.is_whitespace() || c.is_control());
        if !url_ok {
            return Err(invalid(
                "acme_ca",
                "must be the CA's https:// directory URL",
            ));
        }
        if let Some(email) = email {
            let ok = email.len() <= 254
                && email.split_once('@').is_some_and(|(user, host)| {
                    !user.is_empty() && host.contains('.') && !host.starts_with('.')
                })
                && !email.chars().any(|c| c.is_whitespace() || c.is_control());
            if !ok {
                return Err(invalid("acme_email", "must be an e-mail address"));
            }
        }
        let ca_root = ca_root
            .map(|p| crate::target::parse_path("acme_ca_root", p))
            .transpose()?;
        Ok(TlsIssuer::Acme {
            ca: ca.to_owned(),
            email: email.map(str::to_owned),
            ca_root,
        })
    }

    /// The issuer as a module of Caddy's `tls.automation.policies[].issuers`.
    pub fn caddy_issuer(&self) -> Value {
        match self {
            TlsIssuer::Internal => json!({"module": "internal"}),
            TlsIssuer::Acme { ca, email, ca_root } => {
                let mut issuer = json!({"module": "acme", "ca": ca});
                if let Some(email) = email {
                    issuer["email"] = json!(email);
                }
                if let Some(root) = ca_root {
                    issuer["trusted_roots_pem_files"] = json!([root]);
                }
                issuer
            }
        }
    }

    pub fn is_internal(&self) -> bool {
        matches!(self, TlsIssuer::Internal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuers_parse_with_defaults_and_refuse_nonsense() {
        let internal = TlsIssuer::Internal;
        assert_eq!(
            TlsIssuer::parse(None, internal.clone(), None, None, None),
            Ok(TlsIssuer::Internal)
        );
        let acme = TlsIssuer::parse(
            Some("acme"),
            internal.clone(),
            None,
            Some("ops@example.com"),
            None,
        )
        .expect("valid");
        assert_eq!(
            acme.caddy_issuer(),
            json!({"module": "acme", "ca": LETS_ENCRYPT, "email": "ops@example.com"})
        );
        let private = TlsIssuer::parse(
            Some("acme"),
            internal.clone(),
            Some("https://ca.internal:9000/acme/local/directory"),
            None,
            Some("/etc/slipway/ca.pem"),
        )
        .expect("valid");
        assert_eq!(
            private.caddy_issuer()["trusted_roots_pem_files"],
            json!(["/etc/slipway/ca.pem"])
        );
        for (issuer, ca, email, root) in [
            (Some("letsencrypt"), None, None, None),
            (Some("acme"), Some("http://plain/directory"), None, None),
            (Some("acme"), None, Some("not-an-address"), None),
            (Some("acme"), None, None, Some("relative/ca.pem")),
            (Some("internal"), Some("https://ca/directory"), None, None),
        ] {
            assert!(
                TlsIssuer::parse(issuer, internal.clone(), ca, email, root).is_err(),
                "{issuer:?} {ca:?} {email:?} {root:?}"
            );
        }
    }
}
