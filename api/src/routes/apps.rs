//! Apps of a project: name, default source (with its private-repository
//! credential), build and runtime settings, env vars, custom domains, and
//! the app's status.

mod domains;
mod status;

use crate::auth::Project;
use crate::credentials::{self, GitCredentialInput};
use crate::error::ApiError;
use crate::extract::{Json, Path};
use crate::routes::targets;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use slipway_shared::build_settings::AppBuildSettings;
use slipway_shared::db::sources::{self, StoredGitCredential};
use slipway_shared::domain::{GitRef, GitUrl, Slug};
use slipway_shared::runtime_settings::RuntimeSettings;
use sqlx::PgConnection;
use std::collections::BTreeMap;
use uuid::Uuid;

const MASK: &str = "********";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateApp {
    name: String,
    git_url: Option<String>,
    git_ref: Option<String>,
    #[serde(default)]
    build: Map<String, Value>,
    #[serde(default)]
    runtime: Map<String, Value>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    /// Secret env vars: stored encrypted, never shown again.
    #[serde(default)]
    secrets: BTreeMap<String, String>,
    /// A private repository's token or deploy key: stored encrypted, never shown again.
    git_credential: Option<GitCredentialInput>,
    /// The target (id or name) the app runs on; absent: the local target.
    target: Option<String>,
    /// Host names the app answers at besides `APP.PROJECT.BASE_DOMAIN`.
    #[serde(default)]
    domains: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateApp {
    git_url: Option<String>,
    git_ref: Option<String>,
    build: Option<Map<String, Value>>,
    runtime: Option<Map<String, Value>>,
    env: Option<BTreeMap<String, String>>,
    secrets: Option<BTreeMap<String, String>>,
    /// Absent keeps the credential, `null` removes it.
    #[serde(default, deserialize_with = "credentials::present_or_null")]
    git_credential: Option<Option<GitCredentialInput>>,
    /// Absent keeps the target, `null` puts the app on the local target.
    #[serde(default, deserialize_with = "credentials::present_or_null")]
    target: Option<Option<String>>,
    /// Replaces the app's custom domains (`[]` removes them).
    domains: Option<Vec<String>>,
}

fn validate_env(
    env: &BTreeMap<String, String>,
    secrets: &BTreeMap<String, String>,
) -> Result<(), ApiError> {
    if let Some(key) = env.keys().find(|k| secrets.contains_key(*k)) {
        return Err(ApiError::validation(format!(
            "`{key}` is in both env and secrets"
        )));
    }
    for (key, value) in env.iter().chain(secrets) {
        let ok = !key.is_empty()
            && key.len() <= 128
            && key
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            && !key.starts_with(|c: char| c.is_ascii_digit());
        if !ok {
            return Err(ApiError::validation(format!(
                "env: `{key}` must be A-Z, 0-9 and _ and not start with a digit"
            )));
        }
        if value.len() > 32 * 1024 || value.contains('\0') {
            return Err(ApiError::validation(format!(
                "env: value of `{key}` is too long or has a NUL byte"
            )));
        }
    }
    Ok(())
}

/// The runtime settings as the deploy worker will read them: refused now
/// rather than at the next deploy.
fn validate_runtime(runtime: &Map<String, Value>) -> Result<(), ApiError> {
    RuntimeSettings::parse_strict(&Value::Object(runtime.clone()))
        .map(drop)
        .map_err(|message| ApiError::Invalid {
            code: "invalid_runtime_settings",
            message,
        })
}

/// The build settings as the build worker will read them, no unknown keys.
fn validate_build(build: &Map<String, Value>) -> Result<(), ApiError> {
    AppBuildSettings::parse_strict(&Value::Object(build.clone()))
        .map(drop)
        .map_err(|message| ApiError::Invalid {
            code: "invalid_build_settings",
            message,
        })
}

fn parse_source(
    git_url: Option<&str>,
    git_ref: Option<&str>,
) -> Result<(Option<GitUrl>, Option<GitRef>), ApiError> {
    Ok((
        git_url.map(GitUrl::parse).transpose()?,
        git_ref.map(GitRef::parse).transpose()?,
    ))
}

#[tracing::instrument(skip_all)]
pub async fn create(
    project: Project,
    State(state): State<AppState>,
    Json(body): Json<CreateApp>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let name = Slug::parse("name", &body.name)?;
    let domains = domains::parse(&body.domains)?;
    let (git_url, git_ref) = parse_source(body.git_url.as_deref(), body.git_ref.as_deref())?;
    validate_env(&body.env, &body.secrets)?;
    validate_runtime(&body.runtime)?;
    validate_build(&body.build)?;
    let credential = body
        .git_credential
        .map(StoredGitCredential::try_from)
        .transpose()?;
    credentials::check_fits_url(
        git_url.as_ref().map(GitUrl::as_str),
        credential.as_ref().map(StoredGitCredential::kind),
    )?;
    let mut tx = state.pool.begin().await?;
    let target_id = match &body.target {
        Some(key) => Some(targets::resolve(&mut tx, project.id, key).await?),
        None => None,
    };
    let id = Uuid::now_v7();
    let inserted = sqlx::query(
        "INSERT INTO apps (id, project_id, name, git_url, git_ref, build_settings, runtime_settings, target_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (project_id, name) DO NOTHING",
    )
    .bind(id)
    .bind(project.id)
    .bind(name.as_str())
    .bind(git_url.as_ref().map(GitUrl::as_str))
    .bind(git_ref.as_ref().map(GitRef::as_str))
    .bind(Value::Object(body.build))
    .bind(Value::Object(body.runtime))
    .bind(target_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(ApiError::conflict(
            "conflict",
            format!("app `{name}` exists in this project"),
        ));
    }
    replace_env(&mut tx, id, &body.env).await?;
    replace_secrets(&mut tx, &state.secrets, id, &body.secrets).await?;
    domains::replace(&mut tx, id, &domains).await?;
    if let Some(credential) = &credential {
        sources::set_git_credential(&mut tx, &state.secrets, id, credential).await?;
    }
    let app = read(&mut tx, project.id, name.as_str()).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(app)))
}

async fn replace_env(
    conn: &mut PgConnection,
    app_id: Uuid,
    env: &BTreeMap<String, String>,
) -> Result<(), ApiError> {
    sqlx::query("DELETE FROM app_env_vars WHERE app_id = $1")
        .bind(app_id)
        .execute(&mut *conn)
        .await?;
    let keys: Vec<&str> = env.keys().map(String::as_str).collect();
    let values: Vec<&str> = env.values().map(String::as_str).collect();
    sqlx::query(
        "INSERT INTO app_env_vars (app_id, key, secret, value_plain)
         SELECT $1, k, false, v FROM UNNEST($2::text[], $3::text[]) AS t(k, v)",
    )
    .bind(app_id)
    .bind(&keys)
    .bind(&values)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(serde::Serialize, sqlx::FromRow)]
struct AppRow {
    id: Uuid,
    name: String,
    git_url: Option<String>,
    git_ref: Option<String>,
    build: Value,
    runtime: Value,
    /// The target's name; `None` is the local target.
    target: Option<String>,
    created_at: chrono::DateTime<chrono::Utc>,
    updated_at: chrono::DateTime<chrono::Utc>,
}

async fn replace_secrets(
    conn: &mut PgConnection,
    secrets: &slipway_shared::secrets::SecretBox,
    app_id: Uuid,
    values: &BTreeMap<String, String>,
) -> Result<(), ApiError> {
    let keys: Vec<&str> = values.keys().map(String::as_str).collect();
    sqlx::query("DELETE FROM app_env_vars WHERE app_id = $1 AND (secret OR key = ANY($2))")
        .bind(app_id)
        .bind(&keys)
        .execute(&mut *conn)
        .await?;
    let sealed: Vec<Vec<u8>> = values.values().map(|v| secrets.seal(v)).collect();
    sqlx::query(
        "INSERT INTO app_env_vars (app_id, key, secret, value_sealed)
         SELECT $1, k, true, v FROM UNNEST($2::text[], $3::bytea[]) AS t(k, v)",
    )
    .bind(app_id)
    .bind(&keys)
    .bind(&sealed)
    .execute(conn)
    .await?;
    Ok(())
}

/// The app as the API shows it; `NotFound` for another project's app.
pub async fn read(
    conn: &mut PgConnection,
    project_id: Uuid,
    name: &str,
) -> Result<Value, ApiError> {
    let row: Option<AppRow> = sqlx::query_as(
        "SELECT a.id, a.name, a.git_url, a.git_ref, a.build_settings AS build, a.runtime_settings AS runtime,
                t.name AS target, a.created_at, a.updated_at
         FROM apps a LEFT JOIN targets t ON t.id = a.target_id
         WHERE a.project_id = $1 AND a.name = $2",
    )
    .bind(project_id)
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?;
    let row = row.ok_or(ApiError::NotFound("app"))?;
    let id = row.id;
    let vars: Vec<(String, bool, Option<String>)> = sqlx::query_as(
        "SELECT key, secret, value_plain FROM app_env_vars WHERE app_id = $1 ORDER BY key",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    // Secret values are never returned: only their names, masked.
    let (secret, plain): (Vec<_>, Vec<_>) = vars.into_iter().partition(|(_, secret, _)| *secret);
    let env: Map<String, Value> = plain
        .into_iter()
        .map(|(k, _, v)| (k, v.map_or(Value::Null, Value::String)))
        .collect();
    let secrets: Map<String, Value> = secret
        .into_iter()
        .map(|(k, _, _)| (k, Value::String(MASK.into())))
        .collect();
    let (credential, webhook): (Option<String>, bool) = sqlx::query_as(
        "SELECT (SELECT kind FROM app_git_credentials WHERE app_id = $1),
                EXISTS (SELECT 1 FROM app_webhook_secrets WHERE app_id = $1)",
    )
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    let mut app = serde_json::to_value(row).map_err(anyhow::Error::from)?;
    app["env"] = Value::Object(env);
    app["secrets"] = Value::Object(secrets);
    app["git_credential"] = credentials::view(credential.as_deref());
    app["webhook"] = json!({"secret_set": webhook});
    app["domains"] = json!(domains::of(&mut *conn, id).await?);
    let (status, live) = status::of(&mut *conn, id).await?;
    app["live"] = live;
    app["status"] = status;
    Ok(app)
}

pub async fn get(
    project: Project,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    Ok(axum::Json(read(&mut conn, project.id, &name).await?))
}

pub async fn list(
    project: Project,
    State(state): State<AppState>,
) -> Result<axum::Json<Value>, ApiError> {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT name FROM apps WHERE project_id = $1 ORDER BY name")
            .bind(project.id)
            .fetch_all(&state.pool)
            .await?;
    let mut conn = state.pool.acquire().await?;
    let mut items = Vec::with_capacity(names.len());
    for name in names {
        items.push(read(&mut conn, project.id, &name).await?);
    }
    Ok(axum::Json(json!({ "items": items })))
}

#[tracing::instrument(skip_all)]
pub async fn update(
    project: Project,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(body): Json<UpdateApp>,
) -> Result<axum::Json<Value>, ApiError> {
    let (git_url, git_ref) = parse_source(body.git_url.as_deref(), body.git_ref.as_deref())?;
    let domains = body.domains.as_deref().map(domains::parse).transpose()?;
    validate_env(
        body.env.as_ref().unwrap_or(&BTreeMap::new()),
        body.secrets.as_ref().unwrap_or(&BTreeMap::new()),
    )?;
    if let Some(runtime) = &body.runtime {
        validate_runtime(runtime)?;
    }
    if let Some(build) = &body.build {
        validate_build(build)?;
    }
    let credential = body
        .git_credential
        .map(|c| c.map(StoredGitCredential::try_from).transpose())
        .transpose()?;
    let mut tx = state.pool.begin().await?;
    let target_id = match &body.target {
        Some(Some(key)) => Some(Some(targets::resolve(&mut tx, project.id, key).await?)),
        Some(None) => Some(None),
        None => None,
    };
    let id: Option<Uuid> = sqlx::query_scalar(
        "UPDATE apps SET git_url = COALESCE($3, git_url), git_ref = COALESCE($4, git_ref),
                build_settings = COALESCE($5, build_settings), runtime_settings = COALESCE($6, runtime_settings),
                target_id = CASE WHEN $7 THEN $8 ELSE target_id END,
                updated_at = now()
         WHERE project_id = $1 AND name = $2 RETURNING id",
    )
    .bind(project.id)
    .bind(&name)
    .bind(git_url.as_ref().map(GitUrl::as_str))
    .bind(git_ref.as_ref().map(GitRef::as_str))
    .bind(body.build.map(Value::Object))
    .bind(body.runtime.map(Value::Object))
    .bind(target_id.is_some())
    .bind(target_id.flatten())
    .fetch_optional(&mut *tx)
    .await?;
    let id = id.ok_or(ApiError::NotFound("app"))?;
    if let Some(env) = &body.env {
        replace_env(&mut tx, id, env).await?;
    }
    if let Some(secrets) = &body.secrets {
        replace_secrets(&mut tx, &state.secrets, id, secrets).await?;
    }
    if let Some(domains) = &domains {
        domains::replace(&mut tx, id, domains).await?;
    }
    match &credential {
        Some(Some(credential)) => {
            sources::set_git_credential(&mut tx, &state.secrets, id, credential).await?
        }
        Some(None) => sources::clear_git_credential(&mut tx, id).await?,
        None => {}
    }
    // The URL and the credential may each have changed: check the pair as
    // it now stands (an error drops the transaction).
    let (url, kind): (Option<String>, Option<String>) = sqlx::query_as(
        "SELECT a.git_url, c.kind FROM apps a LEFT JOIN app_git_credentials c ON c.app_id = a.id
         WHERE a.id = $1",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    credentials::check_fits_url(url.as_deref(), kind.as_deref())?;
    let app = read(&mut tx, project.id, &name).await?;
    tx.commit().await?;
    Ok(axum::Json(app))
}
