//! Server setup as a job: what a `target_setup` deployment is asked for
//! (the deploy user's name, an apt source line), validated here so nothing
//! a remote shell could misread gets past the API; its creation; and the
//! switch of the target to the deploy user once setup made it.

use crate::db::targets::create_for_target;
use crate::domain::Invalid;
use crate::job::JobError;
use crate::queue::topology::QueueNames;
use crate::target::parse_user;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// The deployment kind of a server setup.
pub const SETUP_KIND: &str = "target_setup";
/// Its job kind in the provision stage (the deploy stage runs the check's).
pub const SETUP_JOB_KIND: &str = "target_setup.v1";
/// The deploy user's name unless the request names another.
pub const DEFAULT_DEPLOY_USER: &str = "slipway";

/// What a setup was asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetupRequest {
    /// The non-root user Slipway connects as once setup made it.
    pub deploy_user: String,
    /// One `deb …` line written to `/etc/apt/sources.list.d/slipway.list`
    /// before packages are installed; `None`: the server's own sources.
    pub apt_source: Option<String>,
}

impl SetupRequest {
    pub fn parse(
        deploy_user: Option<&str>,
        apt_source: Option<&str>,
    ) -> Result<SetupRequest, Invalid> {
        let deploy_user = match deploy_user {
            Some(user) => parse_user(user).map_err(|e| Invalid {
                field: "deploy_user",
                reason: e.reason,
            })?,
            None => DEFAULT_DEPLOY_USER.to_owned(),
        };
        if deploy_user == "root" {
            return Err(Invalid {
                field: "deploy_user",
                reason: "must not be root: setup makes a non-root user".into(),
            });
        }
        let apt_source = apt_source.map(parse_apt_source).transpose()?;
        Ok(SetupRequest {
            deploy_user,
            apt_source,
        })
    }
}

/// One apt source line: `deb [OPTIONS] URI SUITE [COMPONENT…]`, printable
/// ASCII with no quote, backslash or `$` (it is written by a shell script
/// inside single quotes).
fn parse_apt_source(value: &str) -> Result<String, Invalid> {
    let ok = value.starts_with("deb ")
        && value.len() <= 500
        && value.split_whitespace().count() >= 3
        && value
            .chars()
            .all(|c| c.is_ascii_graphic() && !"'\"\\$`".contains(c) || c == ' ');
    if ok {
        Ok(value.to_owned())
    } else {
        Err(Invalid {
            field: "apt_source",
            reason: "must be one line `deb [OPTIONS] URI SUITE [COMPONENT…]` without quotes, backslashes or `$`".into(),
        })
    }
}

/// Creates a setup of `target_id`: a deployment in `built` with its
/// provision job and message, and what it was asked for.
pub async fn create_setup(
    conn: &mut PgConnection,
    names: &QueueNames,
    project_id: Uuid,
    target_id: Uuid,
    request: &SetupRequest,
) -> sqlx::Result<Uuid> {
    let id = create_for_target(
        conn,
        names,
        project_id,
        target_id,
        SETUP_KIND,
        "server setup: no build",
    )
    .await?;
    sqlx::query("UPDATE deployments SET setup = $2 WHERE id = $1")
        .bind(id)
        .bind(sqlx::types::Json(request))
        .execute(&mut *conn)
        .await?;
    Ok(id)
}

fn database(error: sqlx::Error) -> JobError {
    JobError::Retryable(format!("database: {error}"))
}

/// What setup deployment `deployment_id` was asked for.
pub async fn request(pool: &PgPool, deployment_id: Uuid) -> Result<SetupRequest, JobError> {
    let stored: Option<sqlx::types::Json<SetupRequest>> =
        sqlx::query_scalar("SELECT setup FROM deployments WHERE id = $1")
            .bind(deployment_id)
            .fetch_optional(pool)
            .await
            .map_err(database)?
            .flatten();
    stored.map(|json| json.0).ok_or_else(|| {
        JobError::permanent(
            "setup_invalid",
            format!("deployment {deployment_id} is not a server setup"),
        )
    })
}

/// Makes target `id` connect as `user` from now on; true when that changed
/// the target.
pub async fn use_deploy_user(pool: &PgPool, id: Uuid, user: &str) -> Result<bool, JobError> {
    let changed = sqlx::query(
        "UPDATE targets SET ssh_user = $2 WHERE id = $1 AND ssh_user IS DISTINCT FROM $2",
    )
    .bind(id)
    .bind(user)
    .execute(pool)
    .await
    .map_err(database)?
    .rows_affected();
    Ok(changed > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_parsed_at_the_edge() {
        let plain = SetupRequest::parse(None, None).unwrap();
        assert_eq!(plain.deploy_user, "slipway");
        assert_eq!(plain.apt_source, None);
        let local = "deb [trusted=yes] http://10.0.2.100/ ./";
        let asked = SetupRequest::parse(Some("deploy"), Some(local)).unwrap();
        assert_eq!(asked.apt_source.as_deref(), Some(local));
        assert_eq!(
            SetupRequest::parse(Some("root"), None).unwrap_err().field,
            "deploy_user"
        );
        assert_eq!(
            SetupRequest::parse(Some("-oProxy"), None)
                .unwrap_err()
                .field,
            "deploy_user"
        );
        for bad in [
            "http://x/ ./",
            "deb http://x/' ./",
            "deb http://x/ ./\ndeb y z",
            "deb $(id)",
            "deb http://x/",
        ] {
            assert_eq!(
                SetupRequest::parse(None, Some(bad)).unwrap_err().field,
                "apt_source",
                "{bad:?}"
            );
        }
    }
}
