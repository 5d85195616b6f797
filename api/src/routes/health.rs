//! Liveness, readiness (Postgres and RabbitMQ reachable) and metrics.

use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use secrecy::ExposeSecret;
use serde_json::json;
use slipway_shared::metrics::{render, METRICS};
use std::time::Duration;

pub async fn healthz() -> &'static str {
    "ok"
}

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

pub async fn metrics(State(state): State<AppState>) -> String {
    let counts: Result<Vec<(String, i64)>, _> =
        sqlx::query_as("SELECT state, count(*) FROM deployments GROUP BY state")
            .fetch_all(&state.pool)
            .await;
    if let Ok(counts) = counts {
        METRICS.deployments_by_state.reset();
        for (deployment_state, n) in counts {
            METRICS
                .deployments_by_state
                .with_label_values(&[&deployment_state])
                .set(n);
        }
    }
    render()
}
