//! An app's custom domains: validated host names, each owned by one app on
//! the whole platform (a clash answers 409 `domain_taken`). They join the
//! app's own host on its route at the next deploy, start or restart.

use crate::error::ApiError;
use slipway_shared::operation::DomainName;
use sqlx::PgConnection;
use uuid::Uuid;

/// Most custom domains one app may have.
pub(super) const MAX_DOMAINS: usize = 20;

pub fn parse(values: &[String]) -> Result<Vec<DomainName>, ApiError> {
    if values.len() > MAX_DOMAINS {
        return Err(ApiError::validation(format!(
            "domains: at most {MAX_DOMAINS}"
        )));
    }
    let mut domains = values
        .iter()
        .map(|v| DomainName::parse(v))
        .collect::<Result<Vec<_>, _>>()?;
    domains.sort();
    domains.dedup();
    Ok(domains)
}

/// Replaces the app's domains; `domain_taken` when another app has one.
pub async fn replace(
    conn: &mut PgConnection,
    app_id: Uuid,
    domains: &[DomainName],
) -> Result<(), ApiError> {
    sqlx::query("DELETE FROM app_domains WHERE app_id = $1")
        .bind(app_id)
        .execute(&mut *conn)
        .await?;
    for domain in domains {
        let inserted = sqlx::query(
            "INSERT INTO app_domains (host, app_id) VALUES ($1, $2) ON CONFLICT (host) DO NOTHING",
        )
        .bind(domain.as_str())
        .bind(app_id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Err(ApiError::conflict(
                "domain_taken",
                format!("{domain} is a domain of another app"),
            ));
        }
    }
    Ok(())
}
