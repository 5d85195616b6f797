//! The audit log: every state-changing call — by a person, a token, a
//! webhook or nobody — becomes one `audit_log` row with the actor, the
//! action (the route's operation id), the resource (the path), the outcome
//! and status, the source address and the time. Rows are written after the
//! answer, on the pool, outside any transaction of the request, so a call
//! that failed or was refused is recorded too. Request bodies are never
//! recorded: they carry secrets. The table is append-only (a trigger);
//! [`prune`] removes rows older than `SLIPWAY_AUDIT_RETENTION`.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::LazyLock;
use uuid::Uuid;

/// `(METHOD, route)` → the operation id the OpenAPI document gives it.
static ACTIONS: LazyLock<HashMap<(String, String), String>> = LazyLock::new(|| {
    let doc = crate::openapi::document();
    let mut actions = HashMap::new();
    for (path, item) in doc.paths.paths {
        let methods = [
            ("POST", item.post),
            ("PUT", item.put),
            ("PATCH", item.patch),
            ("DELETE", item.delete),
        ];
        for (method, operation) in methods {
            if let Some(id) = operation.and_then(|op| op.operation_id) {
                actions.insert((method.to_owned(), path.clone()), id);
            }
        }
    }
    actions
});

/// Audit rows that could not be written (the database was away).
static WRITE_FAILURES: LazyLock<prometheus::IntCounter> = LazyLock::new(|| {
    let counter = prometheus::IntCounter::new(
        "slipway_audit_write_failures_total",
        "Audit log rows that could not be written",
    )
    .expect("valid metric");
    // Registration fails only for a duplicate name: a programming error.
    prometheus::register(Box::new(counter.clone())).expect("metric names are unique");
    counter
});

/// Whether a call is recorded: everything that may change state.
fn recorded(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// What the row says of a call, taken from the request before it runs.
struct Call {
    method: String,
    route: Option<String>,
    path: String,
}

impl Call {
    fn of(request: &Request) -> Call {
        Call {
            method: request.method().as_str().to_owned(),
            route: request
                .extensions()
                .get::<MatchedPath>()
                .map(|p| p.as_str().to_owned()),
            path: request.uri().path().chars().take(500).collect(),
        }
    }

    fn action(&self) -> String {
        self.route
            .as_ref()
            .and_then(|route| ACTIONS.get(&(self.method.clone(), route.clone())))
            .cloned()
            .unwrap_or_else(|| {
                format!(
                    "{} {}",
                    self.method,
                    self.route.as_deref().unwrap_or("(no route)")
                )
            })
    }
}

/// The middleware: runs the call, then records it.
pub async fn record(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !recorded(request.method()) {
        return next.run(request).await;
    }
    let call = Call::of(&request);
    let caller = request.extensions().get::<Caller>().cloned();
    let response = next.run(request).await;
    write(&state, &call, caller.as_ref(), response.status().as_u16()).await;
    response
}

/// Records a call the authentication layer refused before routing, and
/// answers the refusal.
pub async fn refused_early(state: &AppState, request: Request, error: ApiError) -> Response {
    let call = Call::of(&request);
    let caller = request.extensions().get::<Caller>().cloned();
    let response = error.into_response();
    if recorded(request.method()) {
        write(state, &call, caller.as_ref(), response.status().as_u16()).await;
    }
    response
}

async fn write(state: &AppState, call: &Call, caller: Option<&Caller>, status: u16) {
    let (mut kind, actor_id, mut actor) = caller.map_or(
        ("anonymous", None, "anonymous".to_owned()),
        Caller::describe,
    );
    if kind == "anonymous" && call.path.starts_with("/v1/hooks/") {
        kind = "webhook";
        actor = "webhook".to_owned();
    }
    let outcome = match status {
        200..=399 => "succeeded",
        400..=499 => "refused",
        _ => "failed",
    };
    let project: Option<Uuid> = caller.and_then(|c| c.project.get().copied());
    let address = caller.and_then(|c| c.address).map(|a| a.to_string());
    let written = sqlx::query(
        "INSERT INTO audit_log (actor_kind, actor_id, actor, project_id, action, method, resource, \
         status, outcome, source_address) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(kind)
    .bind(actor_id)
    .bind(&actor)
    .bind(project)
    .bind(call.action())
    .bind(&call.method)
    .bind(&call.path)
    .bind(status as i16)
    .bind(outcome)
    .bind(address)
    .execute(&state.pool)
    .await;
    if let Err(error) = written {
        // The answer is already decided; the operator must hear of the gap.
        WRITE_FAILURES.inc();
        tracing::error!(%error, action = call.action(), "audit row not written");
    }
}

/// Deletes rows older than the retention; the trigger allows deletes only
/// with `slipway.audit_prune` set in the deleting transaction.
pub async fn prune(
    pool: &sqlx::PgPool,
    retention: std::time::Duration,
) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL slipway.audit_prune = 'on'")
        .execute(&mut *tx)
        .await?;
    let deleted = sqlx::query("DELETE FROM audit_log WHERE at < now() - make_interval(secs => $1)")
        .bind(retention.as_secs_f64())
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(deleted)
}

/// Prunes once an hour until shutdown.
pub async fn prune_periodically(
    pool: sqlx::PgPool,
    retention: std::time::Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        match prune(&pool, retention).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "audit rows past retention pruned"),
            Err(error) => tracing::warn!(%error, "audit pruning failed"),
        }
    }
}
