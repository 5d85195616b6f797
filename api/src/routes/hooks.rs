//! Push webhooks: `POST /v1/hooks/{provider}/{app_id}` (no bearer token:
//! the app's webhook secret is the credential) and the secret's management
//! (`POST`/`DELETE /v1/apps/{app}/webhook-secret`).
//!
//! The app is in the URL because the secret is per app: the request names
//! the one secret to verify it with, before a byte of the body is trusted.
//! After verifying, the push must still match the app: its repository
//! (any URL the payload gives, normalised) must be the app's `git_url`, and
//! its branch the app's `git_ref` (or the default branch when the app
//! follows `HEAD`).
//!
//! Answers: 401 `webhook_unsigned` / `webhook_bad_signature`; 404 for an
//! unknown app or one without a secret; 422 `webhook_repo_mismatch` when
//! the repository is not the app's (a misconfigured hook); 200
//! `{"deployed": false, "reason"}` for pushes that are fine but deploy
//! nothing (another branch, a tag, a branch deletion, another event, a
//! redelivery) since forges disable hooks that keep failing (GitLab after
//! four failures in a row); 202 `{"deployed": true, "id", …}` with a
//! `Location` for a deployment. Only the 202 writes anything.

use crate::auth::{self, Member};
use crate::error::ApiError;
use crate::extract::Path;
use crate::openapi::{views, ErrorBody};
use crate::state::AppState;
use crate::webhook::{self, Event, Provider, Refusal};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use slipway_shared::db::deployments::{self, NewDeployment};
use slipway_shared::db::sources;
use uuid::Uuid;

/// Create or rotate the app's push-webhook secret; shown once, with the
/// hook URL per provider.
#[utoipa::path(post, path = "/v1/apps/{app}/webhook-secret", tag = "webhooks",
    operation_id = "create_webhook_secret", security(("project_token" = ["member"])), params(("app" = crate::openapi::formats::Name, Path, description = "The app's name")),
    responses(
        (status = 201, description = "The secret, shown only here", body = views::WebhookSecret),
        (status = 404, description = "`not_found`: no such app", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(app = %app))]
pub async fn create_secret(
    Member(project): Member,
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let app_id: Uuid =
        sqlx::query_scalar("SELECT id FROM apps WHERE project_id = $1 AND name = $2")
            .bind(project.id)
            .bind(&app)
            .fetch_optional(&state.pool)
            .await?
            .ok_or(ApiError::NotFound("app"))?;
    // The same 32 random bytes as an API token, without the prefix.
    let secret = auth::new_token()
        .trim_start_matches(auth::TOKEN_PREFIX)
        .to_owned();
    sqlx::query(
        "INSERT INTO app_webhook_secrets (app_id, sealed) VALUES ($1, $2)
         ON CONFLICT (app_id) DO UPDATE SET sealed = EXCLUDED.sealed, created_at = now()",
    )
    .bind(app_id)
    .bind(state.secrets.seal(&secret))
    .execute(&state.pool)
    .await?;
    let urls: Value = ["github", "gitlab", "gitea"]
        .iter()
        .map(|p| ((*p).to_owned(), json!(format!("/v1/hooks/{p}/{app_id}"))))
        .collect::<serde_json::Map<_, _>>()
        .into();
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"secret": secret, "urls": urls})),
    ))
}

/// Remove the webhook secret: the app's hooks answer 404.
#[utoipa::path(delete, path = "/v1/apps/{app}/webhook-secret", tag = "webhooks",
    operation_id = "delete_webhook_secret", security(("project_token" = ["member"])), params(("app" = crate::openapi::formats::Name, Path, description = "The app's name")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "`not_found`: no such app, or it has no secret", body = ErrorBody),
    ))]
pub async fn delete_secret(
    Member(project): Member,
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> Result<StatusCode, ApiError> {
    let deleted = sqlx::query(
        "DELETE FROM app_webhook_secrets s USING apps a
         WHERE s.app_id = a.id AND a.project_id = $1 AND a.name = $2",
    )
    .bind(project.id)
    .bind(&app)
    .execute(&state.pool)
    .await?
    .rows_affected();
    if deleted == 0 {
        return Err(ApiError::NotFound("webhook secret"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Push payloads list at most 20 commits on every forge; GitHub caps a
/// delivery at 25 MB, but a push near that would be a pathological one.
pub const HOOK_BODY_LIMIT: u64 = 5 * 1024 * 1024;

fn ignored(reason: String) -> Response {
    (
        StatusCode::OK,
        axum::Json(json!({"deployed": false, "reason": reason})),
    )
        .into_response()
}

/// A push webhook from a git host, verified with the app's secret.
///
/// github (`X-Hub-Signature-256`), gitlab (`X-Gitlab-Token`, or a signing
/// token's `webhook-signature`) or gitea (`X-Gitea-Signature`); a push to
/// the app's repository and branch deploys the pushed commit. No bearer
/// token: the signature is the authentication.
#[utoipa::path(post, path = "/v1/hooks/{provider}/{app_id}", tag = "webhooks", operation_id = "receive_webhook",
    params(
        ("provider" = String, Path, description = "`github`, `gitlab` or `gitea`"),
        ("app_id" = String, Path, description = "The app's id, from the hook URL"),
    ),
    request_body(description = "The host's push payload", content(
        (Object = "application/json"), (String = "application/x-www-form-urlencoded"))),
    responses(
        (status = 202, description = "Deployed: `{deployed: true, id, state, url, commit, branch}`",
            body = views::HookOutcome, headers(("Location" = String, description = "The deployment's URL"))),
        (status = 200, description = "Not deployed, with a `reason`: a ping, another event, another \
            branch, a tag, a deleted branch, a redelivery", body = views::HookOutcome),
        (status = 401, description = "`webhook_unsigned` or `webhook_bad_signature`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such provider or app, or the app has no webhook secret", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 422, description = "`webhook_repo_mismatch` or `webhook_bad_payload`", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(provider = %provider, app_id = %app_id))]
pub async fn receive(
    State(state): State<AppState>,
    Path((provider, app_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let provider = Provider::parse(&provider).ok_or(ApiError::NotFound("webhook provider"))?;
    let body = crate::extract::limited_body(body, HOOK_BODY_LIMIT, "body_too_large").await?;
    let app_id: Uuid = app_id.parse().map_err(|_| ApiError::NotFound("webhook"))?;
    let app: Option<(Uuid, Option<String>, Option<String>)> =
        sqlx::query_as("SELECT project_id, git_url, git_ref FROM apps WHERE id = $1")
            .bind(app_id)
            .fetch_optional(&state.pool)
            .await?;
    let Some((project_id, git_url, git_ref)) = app else {
        return Err(ApiError::NotFound("webhook"));
    };
    let secret = sources::webhook_secret(&state.pool, app_id, &state.secrets)
        .await
        .map_err(anyhow::Error::from)?
        .ok_or(ApiError::NotFound("webhook"))?;
    let now = chrono::Utc::now().timestamp();
    webhook::verify(provider, &headers, &body, secret.expose_secret(), now).map_err(|r| {
        let (code, message) = match r {
            Refusal::Unsigned(m) => ("webhook_unsigned", m),
            Refusal::BadSignature(m) => ("webhook_bad_signature", m),
        };
        ApiError::refused(StatusCode::UNAUTHORIZED, code, message)
    })?;
    match webhook::event(provider, &headers) {
        Event::Push => {}
        Event::Ping => return Ok(ignored("ping: the webhook reaches Slipway".into())),
        Event::Other(name) => return Ok(ignored(format!("event `{name}` is not a push"))),
    }
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let push = webhook::parse_push(&body, form).map_err(|e| ApiError::Invalid {
        code: "webhook_bad_payload",
        message: format!("not a push payload: {e}"),
    })?;
    let git_url = git_url.ok_or_else(|| ApiError::Invalid {
        code: "webhook_repo_mismatch",
        message: "the app has no git_url to match pushes against".into(),
    })?;
    let wanted = webhook::repo_key(&git_url);
    if wanted.is_none()
        || !push
            .repo_urls
            .iter()
            .any(|u| webhook::repo_key(u) == wanted)
    {
        return Err(ApiError::Invalid {
            code: "webhook_repo_mismatch",
            message: format!(
                "the push is for {:?}, not the app's repository `{git_url}`",
                push.repo_urls
            ),
        });
    }
    let Some(branch) = push.git_ref.strip_prefix("refs/heads/") else {
        return Ok(ignored(format!("`{}` is not a branch", push.git_ref)));
    };
    if push.deleted {
        return Ok(ignored(format!("branch `{branch}` was deleted")));
    }
    let follows = match git_ref.as_deref() {
        None | Some("HEAD") => push.default_branch.clone(),
        Some(r) => Some(r.strip_prefix("refs/heads/").unwrap_or(r).to_owned()),
    };
    if follows.as_deref() != Some(branch) {
        return Ok(ignored(format!(
            "push to `{branch}`; the app deploys `{}`",
            follows
                .as_deref()
                .unwrap_or("its default branch (unknown to this payload)")
        )));
    }
    let commit = push.after.to_ascii_lowercase();
    if !(commit.len() == 40 || commit.len() == 64) || !commit.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(ApiError::Invalid {
            code: "webhook_bad_payload",
            message: format!("`after` is not a commit id: {commit}"),
        });
    }
    let delivery = webhook::delivery_id(provider, &headers);
    let mut tx = state.pool.begin().await?;
    // Serialises with other deliveries for this app, so a redelivery racing
    // the original sees its row.
    sqlx::query("SELECT 1 FROM apps WHERE id = $1 FOR UPDATE")
        .bind(app_id)
        .execute(&mut *tx)
        .await?;
    let destroying: bool =
        sqlx::query_scalar("SELECT destroying_at IS NOT NULL FROM apps WHERE id = $1")
            .bind(app_id)
            .fetch_one(&mut *tx)
            .await?;
    if destroying {
        return Ok(ignored("the app is being destroyed".into()));
    }
    if let Some(delivery) = &delivery {
        let earlier: Option<Uuid> = sqlx::query_scalar(
            "SELECT deployment_id FROM webhook_deliveries WHERE app_id = $1 AND provider = $2 AND delivery_id = $3",
        )
        .bind(app_id)
        .bind(provider.as_str())
        .bind(delivery)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(earlier) = earlier {
            return Ok(ignored(format!(
                "delivery `{delivery}` already created deployment {earlier}"
            )));
        }
    }
    let created = deployments::create(
        &mut tx,
        &state.names,
        NewDeployment {
            project_id,
            app_id: Some(app_id),
            kind: "app",
            source: json!({
                "git_url": git_url,
                "git_ref": commit,
                "branch": branch,
                "trigger": {"webhook": provider.as_str(), "delivery": delivery},
            }),
            probe: None,
        },
    )
    .await?;
    if let Some(delivery) = &delivery {
        sqlx::query(
            "INSERT INTO webhook_deliveries (app_id, provider, delivery_id, deployment_id) VALUES ($1, $2, $3, $4)",
        )
        .bind(app_id)
        .bind(provider.as_str())
        .bind(delivery)
        .bind(created.id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    slipway_shared::db::outbox::committed();
    let location = format!("/v1/deployments/{}", created.id);
    let body = json!({
        "deployed": true, "id": created.id, "state": "queued", "url": location,
        "commit": commit, "branch": branch,
    });
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        axum::Json(body),
    )
        .into_response())
}
