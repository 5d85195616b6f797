//! The outbound address policy at the API's edge: a git URL whose host is
//! (or resolves to) an address the platform may not connect to is refused
//! when it is set (`422 address_not_allowed`, naming host and address).
//!
//! A host that does not resolve here (or not within 5 s) is accepted: the API cannot tell a
//! typo from a resolver outage or a name only the build workers' network
//! knows, and the build worker checks again when it connects (and fails
//! the build with `address_not_allowed` or a name that does not resolve).

use crate::error::ApiError;
use slipway_shared::domain::GitUrl;
use slipway_shared::egress::{git_endpoint, EgressError, OutboundPolicy};

const RESOLVE_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

pub async fn check_git_url(policy: &OutboundPolicy, url: &GitUrl) -> Result<(), ApiError> {
    let endpoint = git_endpoint(url).map_err(|reason| ApiError::Invalid {
        code: "validation_failed",
        message: format!("git_url: {reason}"),
    })?;
    let Some(endpoint) = endpoint else {
        return Ok(());
    };
    // A resolver that does not answer must not hold the request.
    let resolved = tokio::time::timeout(RESOLVE_LIMIT, policy.resolve(&endpoint)).await;
    let Ok(resolved) = resolved else {
        tracing::info!(host = %endpoint.host, "git_url accepted unresolved (the resolver did not answer); the build worker checks it when it connects");
        return Ok(());
    };
    match resolved {
        Ok(_) => Ok(()),
        Err(refused @ EgressError::NotAllowed { .. }) => Err(ApiError::Invalid {
            code: refused.code(),
            message: format!("git_url: {refused}"),
        }),
        Err(unresolvable @ EgressError::Unresolvable { .. }) => {
            tracing::info!(%unresolvable, "git_url accepted; the build worker checks it when it connects");
            Ok(())
        }
    }
}
