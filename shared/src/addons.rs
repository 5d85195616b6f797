//! Add-ons an app can have: a managed PostgreSQL database (its own role and
//! database on the server of `SLIPWAY_ADDON_POSTGRES_URL`) and named
//! volumes. Shared here: the names given to what is created, the password
//! generator, the mount-path rule and the server the databases live on —
//! the API, the provision worker (which creates them) and the deploy worker
//! (which links them into releases) must agree on all of them.

use crate::config::ConfigError;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::PgConnectOptions;
use sqlx::PgConnection;
use std::str::FromStr;
use uuid::Uuid;

/// podman network mode that lets a release reach the host's loopback (at
/// [`HOST_LOOPBACK_ADDR`]): the platform's Postgres listens on 127.0.0.1
/// only, and `host.containers.internal` is the bridge address, not
/// loopback. Port publishing on 127.0.0.1 works the same with it.
pub const HOST_LOOPBACK_NETWORK: &str = "slirp4netns:allow_host_loopback=true";
/// The host's 127.0.0.1 as seen from a container on [`HOST_LOOPBACK_NETWORK`].
pub const HOST_LOOPBACK_ADDR: &str = "10.0.2.2";

/// The Postgres server add-on databases are created on, through an admin
/// connection (a role that may create roles and databases).
#[derive(Debug, Clone)]
pub struct AddonServer {
    admin_url: SecretString,
    pub host: String,
    pub port: u16,
}

impl AddonServer {
    pub const DEFAULT_URL: &'static str = "postgres://postgres@127.0.0.1:5432/postgres";

    pub fn parse(url: &str) -> Result<AddonServer, ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            name: "SLIPWAY_ADDON_POSTGRES_URL",
            value: redact_url(url),
            reason,
        };
        if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
            return Err(invalid("must be a postgres:// URL".into()));
        }
        let options = PgConnectOptions::from_str(url).map_err(|e| invalid(e.to_string()))?;
        let host = options.get_host().to_owned();
        if host.starts_with('/') {
            return Err(invalid("must name a TCP host the apps can reach".into()));
        }
        Ok(AddonServer {
            admin_url: url.to_owned().into(),
            port: options.get_port(),
            host,
        })
    }

    pub fn admin_options(&self) -> Result<PgConnectOptions, sqlx::Error> {
        PgConnectOptions::from_str(self.admin_url.expose_secret())
    }

    /// The server listens on this host's loopback: a release on the local
    /// target reaches it through [`HOST_LOOPBACK_NETWORK`].
    pub fn is_loopback(&self) -> bool {
        self.host == "localhost" || self.host.starts_with("127.") || self.host == "::1"
    }

    /// The host and port a release on the local target connects to, and
    /// the network mode it needs for that.
    pub fn reach_from_container(&self) -> (String, Option<&'static str>) {
        if self.is_loopback() {
            (HOST_LOOPBACK_ADDR.to_owned(), Some(HOST_LOOPBACK_NETWORK))
        } else {
            (self.host.clone(), None)
        }
    }
}

/// `postgres://ROLE:PASSWORD@HOST:PORT/DB`; role, password and database are
/// made of `[a-z0-9_]` here, so nothing needs escaping.
pub fn database_url(role: &str, password: &str, host: &str, port: u16, db: &str) -> String {
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    format!("postgres://{role}:{password}@{host}:{port}/{db}")
}

/// Drops a postgres add-on's database, ending the sessions still on it
/// (the release using it), and then its role; what is gone already is
/// fine. `db` and `role` come from [`database_name`], so quoting is safe
/// (DDL takes no bind parameters).
pub async fn drop_database(conn: &mut PgConnection, db: &str, role: &str) -> sqlx::Result<()> {
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"))
        .execute(&mut *conn)
        .await?;
    sqlx::query(&format!("DROP ROLE IF EXISTS \"{role}\""))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A URL with its password replaced, for logs and error messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// The database and role of a postgres add-on: one name for both, unique
/// per add-on.
pub fn database_name(addon_id: Uuid) -> String {
    format!("slw_{}", addon_id.simple())
}

/// The engine volume of a volume add-on.
pub fn volume_name(app_id: Uuid, name: &str) -> String {
    format!("slipway-{}-{name}", app_id.simple())
}

/// A fresh random password: 48 hex digits (192 bits).
pub fn new_password() -> String {
    let mut bytes = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A mount path: absolute, of `[A-Za-z0-9/_.-]` (no `:` or `,`, which
/// podman's `-v` syntax reserves), no `.` or `..` parts, not `/` itself.
pub fn check_mount_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') || path.len() > 255 {
        return Err(format!(
            "mount {path:?} must be an absolute path of at most 255 characters"
        ));
    }
    if !path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/_.-".contains(c))
    {
        return Err(format!(
            "mount {path:?} may contain only letters, digits and / _ . -"
        ));
    }
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() || parts.iter().any(|p| *p == "." || *p == "..") {
        return Err(format!(
            "mount {path:?} must name a folder below / without . or .. parts"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_built_and_redacted() {
        let url = database_url("r", "pw", "10.0.2.2", 5432, "d");
        assert_eq!(url, "postgres://r:pw@10.0.2.2:5432/d");
        assert_eq!(redact_url(&url), "postgres://r:***@10.0.2.2:5432/d");
        assert_eq!(redact_url("postgres://u@h/d"), "postgres://u@h/d");
    }

    #[test]
    fn the_server_is_parsed() {
        let server = AddonServer::parse(AddonServer::DEFAULT_URL).unwrap();
        assert_eq!((server.host.as_str(), server.port), ("127.0.0.1", 5432));
        assert_eq!(
            server.reach_from_container(),
            ("10.0.2.2".into(), Some(HOST_LOOPBACK_NETWORK))
        );
        let remote = AddonServer::parse("postgres://a:b@db.example:6432/x").unwrap();
        assert_eq!(remote.reach_from_container(), ("db.example".into(), None));
        assert!(AddonServer::parse("mysql://x").is_err());
    }

    #[test]
    fn mount_paths_are_checked() {
        assert!(check_mount_path("/data").is_ok());
        assert!(check_mount_path("/var/lib/app-1").is_ok());
        for bad in ["", "data", "/", "/a/../b", "/a:b", "/a,b", "/a b", "/./x"] {
            assert!(check_mount_path(bad).is_err(), "{bad:?}");
        }
    }
}
