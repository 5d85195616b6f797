//! Liveness, readiness (Postgres and RabbitMQ reachable) and metrics (the
//! process' own and the fleet-wide gauges read from Postgres).

use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use secrecy::ExposeSecret;
use serde_json::json;
use slipway_shared::metrics::render;
use std::time::Duration;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "service", operation_id = "healthz",
    responses((status = 200, description = "`ok`", content_type = "text/plain", body = String)))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: Postgres and RabbitMQ are reachable.
#[utoipa::path(get, path = "/readyz", tag = "service", operation_id = "readyz",
    responses(
        (status = 200, description = "Ready", body = crate::openapi::views::Readiness),
        (status = 503, description = "Not ready: which one is down", body = crate::openapi::views::Readiness),
    ))]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let postgres = sqlx::query("SELECT 1").execute(&state.pool).await.is_ok();
    let rabbitmq = tokio::time::timeout(
        Duration::from_secs(2),
        lapin::Connection::connect(
            state.amqp_url.expose_secret(),
            lapin::ConnectionProperties::default(),
        ),
    )
    .await
    .is_ok_and(|connection| match connection {
        Ok(connection) => {
            tokio::spawn(async move { connection.close(200, "readyz".into()).await });
            true
        }
        Err(_) => false,
    });
    let status = if postgres && rabbitmq {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(json!({"postgres": postgres, "rabbitmq": rabbitmq})),
    )
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "service", operation_id = "metrics",
    responses((status = 200, description = "The Prometheus text format", content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> String {
    slipway_shared::metrics::fleet::refresh(&state.pool).await;
    render()
}
