//! Builds the router and runs the server.

use crate::routes::{
    app_logs, apps, dead_jobs, deployments, health, hooks, logs, openapi, operations, probes,
    projects, targets, versions,
};
use crate::state::AppState;
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use slipway_shared::metrics::METRICS;
use std::time::Instant;

/// Request bodies larger than this are refused with 413.
pub const BODY_LIMIT: usize = 1024 * 1024;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/projects", post(projects::create).get(projects::list))
        .route(
            "/v1/projects/{project_id}/tokens",
            post(projects::create_token),
        )
        .route("/v1/apps", post(apps::create).get(apps::list))
        .merge(crate::routes::addons::routes())
        .route(
            "/v1/apps/{app}",
            get(apps::get)
                .patch(apps::update)
                .delete(operations::destroy),
        )
        .route(
            "/v1/apps/{app}/deployments",
            post(deployments::create).get(deployments::list),
        )
        .route("/v1/apps/{app}/stop", post(operations::stop))
        .route("/v1/apps/{app}/start", post(operations::start))
        .route("/v1/apps/{app}/restart", post(operations::restart))
        .route("/v1/apps/{app}/scale", post(operations::scale))
        .route("/v1/apps/{app}/logs", get(app_logs::poll))
        .route("/v1/apps/{app}/logs/stream", get(app_logs::stream))
        .route("/v1/deployments/{id}", get(deployments::get))
        .route("/v1/deployments/{id}/cancel", post(deployments::cancel))
        .route("/v1/deployments/{id}/logs", get(logs::poll))
        .route("/v1/deployments/{id}/logs/stream", get(logs::stream))
        .route("/v1/probes", post(probes::create))
        .route("/v1/targets", post(targets::create).get(targets::list))
        .route(
            "/v1/targets/{target}",
            get(targets::get).delete(targets::delete),
        )
        .route("/v1/targets/{target}/check", post(targets::check))
        .route("/v1/dead-jobs", get(dead_jobs::list))
        .route("/v1/dead-jobs/{id}/redrive", post(dead_jobs::redrive))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(openapi::document))
        .route(
            "/v1/apps/{app}/webhook-secret",
            post(hooks::create_secret).delete(hooks::delete_secret),
        )
        .route("/v1/apps/{app}/versions/{id}", get(versions::get))
        .route(
            "/v1/apps/{app}/versions/{id}/archive",
            get(versions::download),
        )
        .layer(tower_http::limit::RequestBodyLimitLayer::new(BODY_LIMIT))
        // Added after the layer, so outside its limit: these read their
        // bodies themselves, with limits of their own.
        .route(
            "/v1/apps/{app}/versions",
            post(versions::upload).get(versions::list),
        )
        .route("/v1/hooks/{provider}/{app_id}", post(hooks::receive))
        .fallback(|| async { crate::error::ApiError::NotFound("route") })
        .layer(axum::middleware::from_fn(record_metrics))
        .with_state(state)
}

/// Counts requests and their latency by matched route (not raw path, so
/// ids do not explode the label set).
async fn record_metrics(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    METRICS
        .http_duration
        .with_label_values(&[&method, &route])
        .observe(started.elapsed().as_secs_f64());
    METRICS
        .http_requests
        .with_label_values(&[&method, &route, response.status().as_str()])
        .inc();
    response
}
