//! The provider catalog (`/v1/providers`) and price estimates
//! (`/v1/estimates`). Prices come from the dated tables in the repository,
//! or, for Hetzner with one of the project's Hetzner accounts named
//! (`account`), live from its API (cached an hour per account). Unknown
//! providers, regions and sizes, and sizes not sold in a region, answer
//! 422 with stable codes.

use crate::auth::{Project, Viewer};
use crate::cloud_account::{
    endpoint_of, provider_failed, CredentialsAtEdge, Driver, StoredCredentials,
};
use crate::error::ApiError;
use crate::extract::{Json, Path, Query};
use crate::openapi::{views, ErrorBody};
use crate::routes::cloud_accounts::resolve;
use crate::state::AppState;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{json, Value};
use slipway_cloud::catalog::estimate::{estimate as price, EstimateRequest};
use slipway_cloud::catalog::{self, hetzner_live, tables, Catalog, CatalogError};
use slipway_cloud::ProviderKind;
use std::sync::Arc;

fn refused(error: CatalogError) -> ApiError {
    ApiError::Invalid {
        code: error.code(),
        message: error.to_string(),
    }
}

/// The catalog of `provider`: live through `account` where the provider's
/// API prices (Hetzner), else the table.
pub(crate) async fn catalog_for(
    state: &AppState,
    project: &Project,
    provider: ProviderKind,
    account: Option<&str>,
) -> Result<Arc<Catalog>, ApiError> {
    let Some(key) = account else {
        return Ok(Arc::new(tables::catalog(provider)));
    };
    let mut conn = state.pool.acquire().await?;
    let id = resolve(&mut conn, project.id, key).await?;
    let (kind, endpoint, sealed): (String, Option<String>, Vec<u8>) = sqlx::query_as(
        "SELECT provider, endpoint, credentials_sealed FROM cloud_accounts WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    drop(conn);
    if kind != provider.as_str() {
        return Err(ApiError::Invalid {
            code: "account_provider_mismatch",
            message: format!("account `{key}` is a {kind} account, not {provider}"),
        });
    }
    if provider != ProviderKind::Hetzner {
        return Ok(Arc::new(tables::catalog(provider)));
    }
    let cache_key = id.to_string();
    if let Some(kept) = state.cloud.live_prices.get(&cache_key) {
        return Ok(kept);
    }
    let endpoint = endpoint_of(&state.cloud.endpoints, provider, endpoint.as_deref());
    crate::cloud_account::check_endpoint(&state.outbound, &endpoint, "the account's endpoint")
        .await?;
    let stored = StoredCredentials::open(&state.secrets, &sealed)?;
    let Driver::Hetzner(client) = Driver::build(provider, &endpoint, stored, &state.outbound)?
    else {
        return Err(anyhow::anyhow!("a hetzner account built another driver").into());
    };
    let live = hetzner_live::fetch(&client, &endpoint)
        .await
        .map_err(provider_failed)?;
    Ok(state.cloud.live_prices.put(&cache_key, live))
}

/// Which account's live prices to use.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CatalogQuery {
    /// One of the project's accounts at this provider (name or id): live
    /// prices where the provider's API gives them.
    account: Option<String>,
}

/// Every provider's catalog, from the dated tables.
#[utoipa::path(get, path = "/v1/providers", tag = "cloud", operation_id = "list_providers",
    security(("project_token" = ["viewer"])),
    responses((status = 200, description = "The six providers", body = views::Items<views::ProviderCatalog>)))]
pub async fn list(_viewer: Viewer) -> axum::Json<Value> {
    let items: Vec<Catalog> = ProviderKind::ALL.into_iter().map(tables::catalog).collect();
    axum::Json(json!({ "items": items }))
}

/// One provider's catalog: regions, sizes and prices per region.
#[utoipa::path(get, path = "/v1/providers/{provider}", tag = "cloud", operation_id = "get_provider",
    security(("project_token" = ["viewer"])),
    params(("provider" = String, Path, pattern = "^(hetzner|scaleway|openstack|exoscale|contabo|lightsail)$",
            description = "The provider"), CatalogQuery),
    responses(
        (status = 200, description = "Its catalog", body = views::ProviderCatalog),
        (status = 404, description = "`unknown_provider`, or `not_found`: no such account", body = ErrorBody),
        (status = 422, description = "`account_provider_mismatch`, or for live prices \
            `address_not_allowed`, `invalid_credentials` or `provider_unreachable`", body = ErrorBody),
        (status = 502, description = "`provider_error`: the provider's API failed (its words)", body = ErrorBody),
    ))]
pub async fn get(
    Viewer(project): Viewer,
    State(state): State<AppState>,
    Path(provider): Path<String>,
    Query(query): Query<CatalogQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    // The catalog is a resource: one that does not exist is not found.
    let provider = catalog::provider(&provider).map_err(|e| {
        ApiError::refused(axum::http::StatusCode::NOT_FOUND, e.code(), e.to_string())
    })?;
    let catalog = catalog_for(&state, &project, provider, query.account.as_deref()).await?;
    Ok(axum::Json(json!(*catalog)))
}

/// What a server would cost.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EstimateBody {
    #[schema(
        pattern = "^(hetzner|scaleway|openstack|exoscale|contabo|lightsail)$",
        example = "hetzner"
    )]
    provider: String,
    #[schema(example = "fsn1")]
    region: String,
    #[schema(example = "cx22")]
    size: String,
    /// With backups, where sold as a line of the server.
    #[serde(default)]
    backups: bool,
    /// An account for live prices (see `GET /v1/providers/{provider}`).
    account: Option<String>,
}

/// Line items and the monthly total of a server.
#[utoipa::path(post, path = "/v1/estimates", tag = "cloud", operation_id = "create_estimate",
    security(("project_token" = ["viewer"])), request_body = EstimateBody,
    responses(
        (status = 200, description = "The estimate", body = views::Estimate),
        (status = 404, description = "`not_found`: no such account", body = ErrorBody),
        (status = 422, description = "`unknown_provider`, `unknown_region`, `unknown_size`, `size_not_in_region`, \
            `backups_not_offered` or `account_provider_mismatch`, or for live prices `address_not_allowed`, \
            `invalid_credentials` or `provider_unreachable`", body = ErrorBody),
        (status = 502, description = "`provider_error`: the provider's API failed (its words)", body = ErrorBody),
    ))]
pub async fn estimate(
    Viewer(project): Viewer,
    State(state): State<AppState>,
    Json(body): Json<EstimateBody>,
) -> Result<axum::Json<Value>, ApiError> {
    let provider = catalog::provider(&body.provider).map_err(refused)?;
    let catalog = catalog_for(&state, &project, provider, body.account.as_deref()).await?;
    let request = EstimateRequest {
        region: &body.region,
        size: &body.size,
        backups: body.backups,
    };
    let estimate = price(&catalog, &request).map_err(refused)?;
    Ok(axum::Json(json!(estimate)))
}
