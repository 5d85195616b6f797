//! Apps of a project: name, default source (with its private-repository
//! credential), build and runtime settings, env vars, custom domains, and
//! the app's status.

mod bodies;
mod domains;
mod query;
mod settings;
mod status;
mod vars;

pub use bodies::{CreateApp, UpdateApp};

use slipway_shared::operation::DomainName;

use crate::auth::{Member, Viewer};
use crate::credentials;
use crate::error::ApiError;
use crate::extract::{Json, Path, Query};
use crate::openapi::{views, ErrorBody};
use crate::routes::targets;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{json, Map, Value};
use slipway_shared::build_settings::AppBuildSettings;
use slipway_shared::db::sources::{self, StoredGitCredential};
use slipway_shared::domain::{GitRef, GitUrl, Slug};
use slipway_shared::runtime_settings::RuntimeSettings;
use sqlx::PgConnection;
use uuid::Uuid;

const MASK: &str = "********";

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

async fn parse_source(
    state: &AppState,
    git_url: Option<&str>,
    git_ref: Option<&str>,
) -> Result<(Option<GitUrl>, Option<GitRef>), ApiError> {
    let git_url = git_url.map(GitUrl::parse).transpose()?;
    let git_ref = git_ref.map(GitRef::parse).transpose()?;
    if let Some(url) = &git_url {
        crate::outbound::check_git_url(&state.outbound, url).await?;
    }
    Ok((git_url, git_ref))
}

/// Create an app.
///
/// `target` is the target (id or name) the app runs on, absent for the
/// local target; `git_credential` is `{token, username?}` for http(s) URLs
/// or `{ssh_key, known_hosts?}` for SSH ones, stored encrypted and shown
/// only as `{kind, set}`; secrets are stored encrypted and shown masked.
#[utoipa::path(post, path = "/v1/apps", tag = "apps", operation_id = "create_app",
    security(("project_token" = ["member"])), request_body = CreateApp,
    responses(
        (status = 201, description = "The app", body = views::App),
        (status = 404, description = "`not_found`: no such target", body = ErrorBody),
        (status = 409, description = "`conflict` (an app of that name exists) or             `domain_taken` (a domain is another app's)", body = ErrorBody),
        (status = 422, description = "`validation_failed`, `invalid_runtime_settings`, `invalid_build_settings`,             `invalid_git_credential` or `git_credential_mismatch`; for a git URL the             platform may not reach, `address_not_allowed`", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn create(
    Member(project): Member,
    State(state): State<AppState>,
    Json(body): Json<CreateApp>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let target = body.target.clone();
    let app = NewApp::parse(&state, body).await?;
    let mut tx = state.pool.begin().await?;
    let target_id = match &target {
        Some(key) => Some(targets::resolve(&mut tx, project.id, key).await?),
        None => None,
    };
    app.insert(&mut tx, &state, project.id, target_id).await?;
    let app = read(&mut tx, project.id, app.name.as_str()).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(app)))
}

/// An app to create, checked as far as it can be before its transaction
/// (all but its name's and domains' uniqueness). An install creates its
/// app through this too.
pub struct NewApp {
    pub name: Slug,
    domains: Vec<DomainName>,
    pub git_url: Option<GitUrl>,
    git_ref: Option<GitRef>,
    credential: Option<StoredGitCredential>,
    body: CreateApp,
}

impl NewApp {
    pub async fn parse(state: &AppState, mut body: CreateApp) -> Result<NewApp, ApiError> {
        let name = Slug::parse("name", &body.name)?;
        let domains = domains::parse(&body.domains)?;
        let (git_url, git_ref) =
            parse_source(state, body.git_url.as_deref(), body.git_ref.as_deref()).await?;
        vars::validate(&body.env, &body.secrets)?;
        validate_runtime(&body.runtime)?;
        validate_build(&body.build)?;
        let credential = body
            .git_credential
            .take()
            .map(StoredGitCredential::try_from)
            .transpose()?;
        credentials::check_fits_url(
            git_url.as_ref().map(GitUrl::as_str),
            credential.as_ref().map(StoredGitCredential::kind),
        )?;
        Ok(NewApp {
            name,
            domains,
            git_url,
            git_ref,
            credential,
            body,
        })
    }

    /// One more of the app's domains (an install's).
    pub fn add_domain(&mut self, domain: DomainName) -> Result<(), ApiError> {
        if !self.domains.contains(&domain) {
            self.domains.push(domain);
        }
        if self.domains.len() > domains::MAX_DOMAINS {
            return Err(ApiError::validation(format!(
                "domains: at most {}",
                domains::MAX_DOMAINS
            )));
        }
        Ok(())
    }

    /// The target the body names (id or name); absent: the local target.
    pub fn target(&self) -> Option<&str> {
        self.body.target.as_deref()
    }

    /// Records the app on `target_id` (`None`: the local target); 409
    /// `conflict` when the name is taken, `domain_taken` for a domain.
    pub async fn insert(
        &self,
        tx: &mut PgConnection,
        state: &AppState,
        project_id: Uuid,
        target_id: Option<Uuid>,
    ) -> Result<Uuid, ApiError> {
        let id = Uuid::now_v7();
        let body = &self.body;
        let inserted = sqlx::query(
            "INSERT INTO apps (id, project_id, name, git_url, git_ref, build_settings, runtime_settings, target_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (project_id, name) DO NOTHING",
        )
        .bind(id)
        .bind(project_id)
        .bind(self.name.as_str())
        .bind(self.git_url.as_ref().map(GitUrl::as_str))
        .bind(self.git_ref.as_ref().map(GitRef::as_str))
        .bind(Value::Object(body.build.clone()))
        .bind(Value::Object(body.runtime.clone()))
        .bind(target_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Err(ApiError::conflict(
                "conflict",
                format!("app `{}` exists in this project", self.name),
            ));
        }
        vars::upsert(tx, &state.secrets, id, &body.env, &body.secrets).await?;
        domains::replace(tx, id, &self.domains).await?;
        if let Some(credential) = &self.credential {
            sources::set_git_credential(tx, &state.secrets, id, credential).await?;
        }
        Ok(id)
    }
}

/// The app as the API shows it; `NotFound` for another project's app.
pub async fn read(
    conn: &mut PgConnection,
    project_id: Uuid,
    name: &str,
) -> Result<Value, ApiError> {
    query::fetch(conn, project_id, query::Filter::Name(name))
        .await?
        .pop()
        .ok_or(ApiError::NotFound("app"))
}

/// Read an app, with its `status` (`running`, `stopped`, `not_deployed` or
/// `destroying`; the current release, its URLs and last health check) and
/// the `live` release.
#[utoipa::path(get, path = "/v1/apps/{app}", tag = "apps", operation_id = "get_app",
    security(("project_token" = ["viewer"])), params(("app" = crate::openapi::formats::Name, Path, description = "The app's name")),
    responses(
        (status = 200, description = "The app", body = views::App),
        (status = 404, description = "`not_found`: no such app", body = ErrorBody),
    ))]
pub async fn get(
    Viewer(project): Viewer,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    Ok(axum::Json(read(&mut conn, project.id, &name).await?))
}

/// `?limit=&after=` of the app list, in name order.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AppPage {
    /// The page size, 1 to 200 (default 100).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// The `next` cursor of the previous page: the last app name it held.
    #[param(value_type = Option<crate::openapi::formats::Name>)]
    after: Option<String>,
}

/// List the project's apps, by name, a page at a time (one SQL statement
/// per page, whatever its size).
#[utoipa::path(get, path = "/v1/apps", tag = "apps", operation_id = "list_apps",
    security(("project_token" = ["viewer"])), params(AppPage),
    responses(
        (status = 200, description = "A page of apps, by name; `next` is the `after` of the next page", body = views::NamePage<views::App>),
        (status = 422, description = "`validation_failed`: `limit` out of range", body = ErrorBody),
    ))]
pub async fn list(
    Viewer(project): Viewer,
    State(state): State<AppState>,
    Query(page): Query<AppPage>,
) -> Result<axum::Json<Value>, ApiError> {
    let limit = page.limit.unwrap_or(100);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::validation("limit: must be 1 to 200"));
    }
    // The cursor is an app's name: anything else is no cursor this list gave.
    if let Some(after) = &page.after {
        slipway_shared::domain::Slug::parse("after", after)?;
    }
    let mut conn = state.pool.acquire().await?;
    let filter = query::Filter::Page {
        after: page.after.as_deref(),
        limit: limit + 1,
    };
    let mut items = query::fetch(&mut conn, project.id, filter).await?;
    let next = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|app| app["name"].clone())
    } else {
        None
    };
    Ok(axum::Json(json!({ "items": items, "next": next })))
}

/// Update an app.
///
/// `git_credential: null` removes the credential; `target: null` moves the
/// app to the local target; `domains` replaces the custom domains; `env`
/// and `secrets` replace the app's env vars of their kind.
#[utoipa::path(patch, path = "/v1/apps/{app}", tag = "apps", operation_id = "update_app",
    security(("project_token" = ["member"])), request_body = UpdateApp,
    params(("app" = crate::openapi::formats::Name, Path, description = "The app's name")),
    responses(
        (status = 200, description = "The app", body = views::App),
        (status = 404, description = "`not_found`: no such app or target", body = ErrorBody),
        (status = 409, description = "`domain_taken`: a domain is another app's", body = ErrorBody),
        (status = 422, description = "`validation_failed`, `invalid_runtime_settings`, `invalid_build_settings`,             `invalid_git_credential`, `git_credential_mismatch`; for a git URL the             platform may not reach, `address_not_allowed`", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn update(
    Member(project): Member,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(body): Json<UpdateApp>,
) -> Result<axum::Json<Value>, ApiError> {
    let (git_url, git_ref) =
        parse_source(&state, body.git_url.as_deref(), body.git_ref.as_deref()).await?;
    let domains = body.domains.as_deref().map(domains::parse).transpose()?;
    let var_changes = vars::VarChanges::from_patch(body.env.as_ref(), body.secrets.as_ref())?;
    let credential = body
        .git_credential
        .map(|c| c.map(StoredGitCredential::try_from).transpose())
        .transpose()?;
    let mut tx = state.pool.begin().await?;
    // The row is locked so that two PATCHes of different keys both land.
    let stored: Option<(Uuid, Value, Value)> = sqlx::query_as(
        "SELECT id, build_settings, runtime_settings FROM apps
         WHERE project_id = $1 AND name = $2 FOR UPDATE",
    )
    .bind(project.id)
    .bind(&name)
    .fetch_optional(&mut *tx)
    .await?;
    let (id, stored_build, stored_runtime) = stored.ok_or(ApiError::NotFound("app"))?;
    let build = body
        .build
        .as_ref()
        .map(|patch| settings::merge(&stored_build, patch));
    let runtime = body
        .runtime
        .as_ref()
        .map(|patch| settings::merge(&stored_runtime, patch));
    if let Some(runtime) = &runtime {
        validate_runtime(runtime)?;
    }
    if let Some(build) = &build {
        validate_build(build)?;
    }
    let target_id = match &body.target {
        Some(Some(key)) => Some(Some(targets::resolve(&mut tx, project.id, key).await?)),
        Some(None) => Some(None),
        None => None,
    };
    sqlx::query(
        "UPDATE apps SET git_url = COALESCE($2, git_url), git_ref = COALESCE($3, git_ref),
                build_settings = COALESCE($4, build_settings), runtime_settings = COALESCE($5, runtime_settings),
                target_id = CASE WHEN $6 THEN $7 ELSE target_id END,
                updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(git_url.as_ref().map(GitUrl::as_str))
    .bind(git_ref.as_ref().map(GitRef::as_str))
    .bind(build.map(Value::Object))
    .bind(runtime.map(Value::Object))
    .bind(target_id.is_some())
    .bind(target_id.flatten())
    .execute(&mut *tx)
    .await?;
    vars::apply(&mut tx, &state.secrets, id, &var_changes).await?;
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
