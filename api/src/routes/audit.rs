//! `GET /v1/audit`: the audit log, newest first, filtered and paged. A
//! platform admin sees every row; a project's owners see their project's.

use crate::auth::{access, authorize, Caller, Role};
use crate::error::ApiError;
use crate::extract::Query;
use crate::openapi::{views, ErrorBody};
use crate::state::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::QueryBuilder;
use uuid::Uuid;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only this project's rows (platform admins; owners always see only theirs).
    project_id: Option<Uuid>,
    /// Only calls by this actor (an email, `token NAME`, `admin token`, `webhook`).
    actor: Option<String>,
    /// Only this action (an operation id such as `create_app`).
    action: Option<String>,
    /// Only this outcome.
    #[param(pattern = "^(succeeded|refused|failed)$")]
    outcome: Option<String>,
    /// Only rows at or after this time.
    since: Option<DateTime<Utc>>,
    /// Only rows before this time.
    until: Option<DateTime<Utc>>,
    /// The page size, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// The `next` cursor of the previous page.
    #[param(minimum = 1)]
    before: Option<i64>,
}

type Row = (
    i64,
    DateTime<Utc>,
    String,
    Option<Uuid>,
    String,
    Option<Uuid>,
    String,
    String,
    String,
    i16,
    String,
    Option<String>,
);

/// Read the audit log.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", operation_id = "list_audit",
    security(("project_token" = ["owner"]), ("admin_token" = [])), params(AuditQuery),
    responses(
        (status = 200, description = "Audit rows, newest first", body = views::AuditPage),
        (status = 404, description = "`not_found`: `project_id` names a project the caller does not own", body = ErrorBody),
        (status = 422, description = "`validation_failed`: a bad filter", body = ErrorBody),
    ))]
pub async fn list(
    caller: Caller,
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<AuditQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    let everything = caller.is_platform_admin() && !headers.contains_key(access::PROJECT_HEADER);
    let project = if everything {
        query.project_id
    } else {
        let id = access::requested_project(&headers, &state, &caller).await?;
        authorize(&state, &caller, id, Role::Owner).await?;
        if query.project_id.is_some_and(|asked| asked != id) {
            return Err(ApiError::NotFound("project"));
        }
        Some(id)
    };
    let limit = query.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::validation("limit: must be 1 to 100"));
    }
    if query.before.is_some_and(|before| before < 1) {
        return Err(ApiError::validation("before: must be a row id, 1 or more"));
    }
    if let Some(outcome) = &query.outcome {
        if !["succeeded", "refused", "failed"].contains(&outcome.as_str()) {
            return Err(ApiError::validation(
                "outcome: must be succeeded, refused or failed",
            ));
        }
    }
    let mut sql = QueryBuilder::new(
        "SELECT id, at, actor_kind, actor_id, actor, project_id, action, method, resource, status, \
         outcome, source_address FROM audit_log WHERE true",
    );
    if let Some(project) = project {
        sql.push(" AND project_id = ").push_bind(project);
    }
    if let Some(actor) = &query.actor {
        sql.push(" AND actor = ").push_bind(actor);
    }
    if let Some(action) = &query.action {
        sql.push(" AND action = ").push_bind(action);
    }
    if let Some(outcome) = &query.outcome {
        sql.push(" AND outcome = ").push_bind(outcome);
    }
    if let Some(since) = query.since {
        sql.push(" AND at >= ").push_bind(since);
    }
    if let Some(until) = query.until {
        sql.push(" AND at < ").push_bind(until);
    }
    if let Some(before) = query.before {
        sql.push(" AND id < ").push_bind(before);
    }
    sql.push(" ORDER BY id DESC LIMIT ").push_bind(limit + 1);
    let mut rows: Vec<Row> = sql.build_query_as().fetch_all(&state.pool).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = more.then(|| rows.last().map(|r| r.0)).flatten();
    let items: Vec<Value> = rows
        .into_iter()
        .map(|(id, at, kind, actor_id, actor, project_id, action, method, resource, status, outcome, address)| {
            json!({
                "id": id, "at": at, "actor_kind": kind, "actor_id": actor_id, "actor": actor,
                "project_id": project_id, "action": action, "method": method, "resource": resource,
                "status": status, "outcome": outcome, "source_address": address,
            })
        })
        .collect();
    Ok(axum::Json(json!({ "items": items, "next": next })))
}
