//! Settings of people and their access (`slipway-api` only): sessions,
//! sign-in limits, trusted proxies, links, mail, the audit log's retention
//! and the first admin.

use super::{duration, parsed, raw, ConfigError};
use secrecy::SecretString;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct AccountSettings {
    /// Proxies whose `X-Forwarded-For` is believed (`SLIPWAY_TRUSTED_PROXIES`,
    /// addresses or CIDRs, comma-separated; none by default).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// A session unused this long ends (`SLIPWAY_SESSION_IDLE_TIMEOUT`, 12 h).
    pub session_idle: Duration,
    /// A session ends this long after sign-in whatever its use
    /// (`SLIPWAY_SESSION_LIFETIME`, 7 days).
    pub session_lifetime: Duration,
    /// Where people reach the API or dashboard, for links in invitations
    /// and resets (`SLIPWAY_PUBLIC_URL`); `https://…` also marks cookies
    /// `Secure`.
    pub public_url: Option<String>,
    pub invitation_ttl: Duration,
    pub reset_ttl: Duration,
    /// Audit rows older than this are pruned (`SLIPWAY_AUDIT_RETENTION`, 365 days).
    pub audit_retention: Duration,
    pub signin: SignInLimits,
    /// Invitations and resets are also mailed when set.
    pub smtp: Option<SmtpSettings>,
    /// The first platform admin, created once when no user exists yet.
    pub bootstrap_admin: Option<(String, SecretString)>,
}

/// Failed sign-ins allowed per fixed window before `429`.
#[derive(Debug, Clone, Copy)]
pub struct SignInLimits {
    pub window: Duration,
    pub per_account: u32,
    pub per_address: u32,
}

#[derive(Debug, Clone)]
pub struct SmtpSettings {
    /// `smtp://host:port` (plain, for a relay on this host or network) or
    /// `smtps://host:port` / `smtp+starttls://host:port`.
    pub url: String,
    pub from: String,
}

impl Default for AccountSettings {
    fn default() -> Self {
        AccountSettings {
            trusted_proxies: Vec::new(),
            session_idle: Duration::from_secs(12 * 3600),
            session_lifetime: Duration::from_secs(7 * 24 * 3600),
            public_url: None,
            invitation_ttl: Duration::from_secs(7 * 24 * 3600),
            reset_ttl: Duration::from_secs(3600),
            audit_retention: Duration::from_secs(365 * 24 * 3600),
            signin: SignInLimits {
                window: Duration::from_secs(15 * 60),
                per_account: 10,
                per_address: 50,
            },
            smtp: None,
            bootstrap_admin: None,
        }
    }
}

impl AccountSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        let default = AccountSettings::default();
        let smtp = match raw("SLIPWAY_SMTP_URL") {
            None => None,
            Some(url) => Some(SmtpSettings {
                url,
                from: raw("SLIPWAY_SMTP_FROM").ok_or(ConfigError::Missing {
                    name: "SLIPWAY_SMTP_FROM",
                })?,
            }),
        };
        let bootstrap_admin = match (
            raw("SLIPWAY_BOOTSTRAP_ADMIN_EMAIL"),
            raw("SLIPWAY_BOOTSTRAP_ADMIN_PASSWORD"),
        ) {
            (Some(email), Some(password)) => Some((email, password.into())),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::Missing {
                    name: "SLIPWAY_BOOTSTRAP_ADMIN_PASSWORD",
                })
            }
            (None, Some(_)) => {
                return Err(ConfigError::Missing {
                    name: "SLIPWAY_BOOTSTRAP_ADMIN_EMAIL",
                })
            }
        };
        Ok(AccountSettings {
            trusted_proxies: parsed("SLIPWAY_TRUSTED_PROXIES", Vec::new(), parse_networks)?,
            session_idle: duration("SLIPWAY_SESSION_IDLE_TIMEOUT", default.session_idle)?,
            session_lifetime: duration("SLIPWAY_SESSION_LIFETIME", default.session_lifetime)?,
            public_url: raw("SLIPWAY_PUBLIC_URL")
                .map(|u| u.trim().trim_end_matches('/').to_owned()),
            invitation_ttl: duration("SLIPWAY_INVITATION_TTL", default.invitation_ttl)?,
            reset_ttl: duration("SLIPWAY_PASSWORD_RESET_TTL", default.reset_ttl)?,
            audit_retention: duration("SLIPWAY_AUDIT_RETENTION", default.audit_retention)?,
            signin: SignInLimits {
                window: duration("SLIPWAY_SIGNIN_WINDOW", default.signin.window)?,
                per_account: parsed(
                    "SLIPWAY_SIGNIN_FAILURES_PER_ACCOUNT",
                    default.signin.per_account,
                    str::parse,
                )?,
                per_address: parsed(
                    "SLIPWAY_SIGNIN_FAILURES_PER_ADDRESS",
                    default.signin.per_address,
                    str::parse,
                )?,
            },
            smtp,
            bootstrap_admin,
        })
    }
}

/// `10.0.0.1, 10.1.0.0/16` → networks (an address is its own /32 or /128).
pub fn parse_networks(text: &str) -> Result<Vec<ipnet::IpNet>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            part.parse::<ipnet::IpNet>()
                .or_else(|_| part.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| format!("`{part}` is not an address or CIDR"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse_networks;

    #[test]
    fn proxies_parse_as_addresses_and_networks() {
        let nets = parse_networks("10.0.0.1, 192.168.0.0/16,::1").unwrap();
        assert_eq!(nets.len(), 3);
        assert!(nets[0].contains(&"10.0.0.1".parse::<std::net::IpAddr>().unwrap()));
        assert!(!nets[0].contains(&"10.0.0.2".parse::<std::net::IpAddr>().unwrap()));
        assert!(nets[1].contains(&"192.168.4.5".parse::<std::net::IpAddr>().unwrap()));
        assert!(parse_networks("10.0.0.300").is_err());
        assert_eq!(parse_networks("").unwrap(), vec![]);
    }
}
