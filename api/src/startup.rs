//! Builds the router and runs the server.

use crate::routes::{
    addons, app_logs, apps, audit, cloud_accounts, cloud_caps, dead_jobs, deployments, events,
    health, hooks, installs, invitations, logs, members, operations, probes, projects, providers,
    server_images, servers, servers_orphans, sessions, stats, target_setup, targets, tokens, users,
    versions,
};
use crate::state::AppState;
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use slipway_shared::metrics::METRICS;
use std::time::Instant;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Request bodies larger than this are refused with 413.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// The API with the dashboard served from its default directory.
pub fn router(state: AppState) -> Router {
    router_serving(
        state,
        crate::dashboard::Dashboard::new(slipway_shared::config::DEFAULT_WEB_DIR),
    )
}

/// The API, and the dashboard's files as the fallback of every path no
/// route matches (`crate::dashboard` keeps the API's namespaces JSON).
pub fn router_serving(state: AppState, dashboard: crate::dashboard::Dashboard) -> Router {
    let (router, _) = api_routes().split_for_parts();
    // Layers run outside in: metrics, then who is calling (and CSRF), then
    // the audit log around the handler.
    router
        .fallback(move |request| dashboard.serve(request))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::audit::record,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth::caller::authenticate,
        ))
        .layer(axum::middleware::from_fn(record_metrics))
        .with_state(state)
}

/// Every route of the API, each from its handler's `#[utoipa::path]`, so
/// the router and the OpenAPI document (`crate::openapi`) are one list.
/// Add routes only through `routes!`: a plain `.route` would serve a path
/// the document does not describe (the router-vs-document test catches it).
pub fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(crate::openapi::base())
        .routes(routes!(projects::create, projects::list))
        .routes(routes!(tokens::create, tokens::list))
        .routes(routes!(tokens::revoke))
        .routes(routes!(audit::list))
        .routes(routes!(sessions::sign_in, sessions::list))
        .routes(routes!(sessions::revoke))
        .routes(routes!(sessions::sign_out))
        .routes(routes!(sessions::me))
        .routes(routes!(users::change_password))
        .routes(routes!(users::list))
        .routes(routes!(users::delete))
        .routes(routes!(users::disable))
        .routes(routes!(users::enable))
        .routes(routes!(users::create_reset))
        .routes(routes!(users::use_reset))
        .routes(routes!(members::list))
        .routes(routes!(members::update, members::remove))
        .routes(routes!(invitations::invite, invitations::list))
        .routes(routes!(invitations::revoke))
        .routes(routes!(invitations::accept))
        .routes(routes!(apps::create, apps::list))
        .routes(routes!(addons::create, addons::list))
        .routes(routes!(addons::delete))
        .routes(routes!(apps::get, apps::update, operations::destroy))
        .routes(routes!(deployments::create, deployments::list))
        .routes(routes!(operations::stop))
        .routes(routes!(operations::start))
        .routes(routes!(operations::restart))
        .routes(routes!(operations::scale))
        .routes(routes!(app_logs::poll))
        .routes(routes!(app_logs::stream))
        .routes(routes!(stats::stats))
        .routes(routes!(events::stream))
        .routes(routes!(deployments::get))
        .routes(routes!(deployments::cancel))
        .routes(routes!(logs::poll))
        .routes(routes!(logs::stream))
        .routes(routes!(probes::create))
        .routes(routes!(targets::create, targets::list))
        .routes(routes!(targets::get, targets::delete))
        .routes(routes!(targets::check))
        .routes(routes!(target_setup::setup))
        .routes(routes!(providers::list))
        .routes(routes!(providers::get))
        .routes(routes!(providers::estimate))
        .routes(routes!(cloud_accounts::create, cloud_accounts::list))
        .routes(routes!(
            cloud_accounts::get,
            cloud_accounts::update,
            cloud_accounts::delete
        ))
        .routes(routes!(server_images::list))
        .routes(routes!(server_images::delete))
        .routes(routes!(cloud_caps::get, cloud_caps::set))
        .routes(routes!(servers::create, servers::list))
        .routes(routes!(servers::get, servers::delete))
        .routes(routes!(servers_orphans::list))
        .routes(routes!(installs::create, installs::list))
        .routes(routes!(installs::get, installs::delete))
        .routes(routes!(dead_jobs::list))
        .routes(routes!(dead_jobs::redrive))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics))
        .routes(routes!(crate::openapi::serve))
        .routes(routes!(hooks::create_secret, hooks::delete_secret))
        .routes(routes!(versions::get))
        .routes(routes!(versions::download))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(BODY_LIMIT))
        // Added after the layer, so outside its limit: these read their
        // bodies themselves, with limits of their own.
        .routes(routes!(versions::upload, versions::list))
        .routes(routes!(hooks::receive))
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
