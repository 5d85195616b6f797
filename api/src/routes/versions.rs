//! Uploaded source archives, the "versions" of an app: upload (checked
//! entry by entry, stored content-addressed in Postgres), list, read,
//! download the original bytes.

use crate::auth::{Member, Project, Viewer};
use crate::error::ApiError;
use crate::extract::{Path, Query};
use crate::openapi::{formats, views, ErrorBody};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use slipway_shared::archive::{self, ArchiveError, Format};
use sqlx::PgConnection;
use uuid::Uuid;

/// Content types an upload may declare; the bytes decide in the end.
fn declared_format(headers: &HeaderMap) -> Result<Option<Format>, ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(None);
    };
    let essence = value
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/octet-stream" => Ok(None),
        "application/gzip"
        | "application/x-gzip"
        | "application/x-tar+gzip"
        | "application/x-compressed-tar" => Ok(Some(Format::TarGz)),
        "application/zip" | "application/x-zip-compressed" => Ok(Some(Format::Zip)),
        other => Err(ApiError::refused(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("send a .tar.gz (application/gzip) or a .zip (application/zip), not `{other}`"),
        )),
    }
}

fn too_large(limit: u64) -> ApiError {
    ApiError::refused(
        StatusCode::PAYLOAD_TOO_LARGE,
        "archive_too_large",
        format!("archives are limited to {limit} bytes"),
    )
}

fn archive_error(error: ArchiveError) -> ApiError {
    match error {
        ArchiveError::TooLarge(_) => ApiError::refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            "archive_too_large",
            error.to_string(),
        ),
        ArchiveError::Io { .. } => ApiError::Unexpected(error.into()),
        _ => ApiError::Invalid {
            code: error.code(),
            message: error.to_string(),
        },
    }
}

async fn app_id(conn: &mut PgConnection, project: Project, app: &str) -> Result<Uuid, ApiError> {
    sqlx::query_scalar("SELECT id FROM apps WHERE project_id = $1 AND name = $2")
        .bind(project.id)
        .bind(app)
        .fetch_optional(conn)
        .await?
        .ok_or(ApiError::NotFound("app"))
}

/// Upload a .tar.gz or .zip of the app's source.
///
/// `application/gzip`, `application/zip`, or `application/octet-stream`
/// (detected from the bytes); every entry is checked (no absolute paths,
/// `..`, links out, devices); stored by SHA-256. Deploy it with
/// `POST /v1/apps/{app}/deployments {"version": ID}`.
#[utoipa::path(post, path = "/v1/apps/{app}/versions", tag = "versions", operation_id = "upload_version",
    security(("project_token" = ["member"])), params(("app" = crate::openapi::formats::Name, Path, description = "The app's name")),
    request_body(description = "The archive's bytes", content(
        (formats::Binary = "application/gzip"),
        (formats::Binary = "application/zip"),
        (formats::Binary = "application/octet-stream"),
    )),
    responses(
        (status = 201, description = "The version; `Location` is its URL", body = views::Version,
            headers(("Location" = String, description = "The version's URL"))),
        (status = 404, description = "`not_found`: no such app", body = ErrorBody),
        (status = 413, description = "`archive_too_large` (`SLIPWAY_MAX_ARCHIVE_SIZE`, or unpacked \
            beyond `SLIPWAY_MAX_UNPACKED_SIZE` / `SLIPWAY_MAX_ARCHIVE_ENTRIES`)", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`archive_unsafe` (names the entry) or `archive_invalid`", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(app = %app))]
pub async fn upload(
    Member(project): Member,
    State(state): State<AppState>,
    Path(app): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let limit = state.archives.max_archive_bytes;
    let declared = declared_format(&headers)?;
    let claimed = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if claimed.is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    let id = app_id(&mut *state.pool.acquire().await?, project, &app).await?;
    let bytes = crate::extract::limited_body(body, limit, "archive_too_large").await?;
    let format = Format::detect(&bytes).ok_or_else(|| ApiError::Invalid {
        code: "archive_invalid",
        message: "the upload is neither a .tar.gz nor a .zip archive".into(),
    })?;
    if declared.is_some_and(|d| d != format) {
        return Err(ApiError::Invalid {
            code: "archive_invalid",
            message: format!(
                "the content type says one format, but the bytes are {}",
                format.as_str()
            ),
        });
    }
    let limits = state.archives.unpack;
    let (bytes, summary) = tokio::task::spawn_blocking(move || {
        archive::inspect(&bytes, &limits).map(|summary| (bytes, summary))
    })
    .await
    .map_err(anyhow::Error::from)?
    .map_err(archive_error)?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let version_id = Uuid::now_v7();
    let mut tx = state.pool.begin().await?;
    store_blob(&mut tx, &sha256, &bytes).await?;
    sqlx::query(
        "INSERT INTO app_versions (id, app_id, sha256, format, size, entries, files, unpacked_bytes)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(version_id)
    .bind(id)
    .bind(&sha256)
    .bind(format.as_str())
    .bind(bytes.len() as i64)
    .bind(summary.entries as i64)
    .bind(summary.files as i64)
    .bind(summary.unpacked_bytes as i64)
    .execute(&mut *tx)
    .await?;
    let version = read(&mut tx, id, &app, version_id).await?;
    tx.commit().await?;
    let location = format!("/v1/apps/{app}/versions/{version_id}");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(version),
    )
        .into_response())
}

/// Stores the bytes under their hash unless they are there already; either
/// way the row is locked against a concurrent clean-up until commit.
async fn store_blob(conn: &mut PgConnection, sha256: &str, bytes: &[u8]) -> sqlx::Result<()> {
    for _ in 0..3 {
        let present = sqlx::query("SELECT 1 FROM source_blobs WHERE sha256 = $1 FOR KEY SHARE")
            .bind(sha256)
            .fetch_optional(&mut *conn)
            .await?
            .is_some();
        if present {
            return Ok(());
        }
        let inserted = sqlx::query(
            "INSERT INTO source_blobs (sha256, size, bytes) VALUES ($1, $2, $3)
             ON CONFLICT (sha256) DO NOTHING",
        )
        .bind(sha256)
        .bind(bytes.len() as i64)
        .bind(bytes)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(());
        }
    }
    Err(sqlx::Error::Protocol(format!(
        "blob {sha256} kept appearing and vanishing"
    )))
}

/// Removes the given blobs if no version names them any more.
pub async fn drop_unused_blobs(conn: &mut PgConnection, sha256s: &[String]) -> sqlx::Result<()> {
    if sha256s.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "DELETE FROM source_blobs b WHERE b.sha256 = ANY($1)
         AND NOT EXISTS (SELECT 1 FROM app_versions v WHERE v.sha256 = b.sha256)",
    )
    .bind(sha256s)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(serde::Serialize, sqlx::FromRow)]
struct VersionRow {
    id: Uuid,
    sha256: String,
    format: String,
    size: i64,
    entries: i64,
    files: i64,
    unpacked_bytes: i64,
    created_at: chrono::DateTime<chrono::Utc>,
}

const COLUMNS: &str = "id, sha256, format, size, entries, files, unpacked_bytes, created_at";

fn view(app: &str, row: &VersionRow) -> Result<Value, ApiError> {
    let mut value = serde_json::to_value(row).map_err(anyhow::Error::from)?;
    value["archive_url"] = json!(format!("/v1/apps/{app}/versions/{}/archive", row.id));
    Ok(value)
}

async fn read(
    conn: &mut PgConnection,
    app_id: Uuid,
    app: &str,
    version_id: Uuid,
) -> Result<Value, ApiError> {
    let row: Option<VersionRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM app_versions WHERE app_id = $1 AND id = $2"
    ))
    .bind(app_id)
    .bind(version_id)
    .fetch_optional(conn)
    .await?;
    view(app, &row.ok_or(ApiError::NotFound("version"))?)
}

/// The version of this app, for a deployment's source.
pub async fn for_deployment(
    conn: &mut PgConnection,
    app_id: Uuid,
    version_id: Uuid,
) -> Result<Value, ApiError> {
    let found: Option<(String, String)> =
        sqlx::query_as("SELECT sha256, format FROM app_versions WHERE app_id = $1 AND id = $2")
            .bind(app_id)
            .bind(version_id)
            .fetch_optional(conn)
            .await?;
    let (sha256, format) = found.ok_or(ApiError::NotFound("version"))?;
    Ok(json!({"version": version_id, "sha256": sha256, "format": format}))
}

/// A version of the app.
#[utoipa::path(get, path = "/v1/apps/{app}/versions/{id}", tag = "versions", operation_id = "get_version",
    security(("project_token" = ["viewer"])), params(("app" = crate::openapi::formats::Name, Path, description = "The app's name"), ("id" = Uuid, Path, description = "The version's id")),
    responses(
        (status = 200, description = "The version", body = views::Version),
        (status = 404, description = "`not_found`: no such app or version", body = ErrorBody),
    ))]
pub async fn get(
    Viewer(project): Viewer,
    State(state): State<AppState>,
    Path((app, version_id)): Path<(String, Uuid)>,
) -> Result<axum::Json<Value>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let id = app_id(&mut conn, project, &app).await?;
    Ok(axum::Json(read(&mut conn, id, &app, version_id).await?))
}

/// The app's versions, newest first.
#[utoipa::path(get, path = "/v1/apps/{app}/versions", tag = "versions", operation_id = "list_versions",
    security(("project_token" = ["viewer"])), params(("app" = crate::openapi::formats::Name, Path, description = "The app's name"), crate::extract::PageQuery),
    responses(
        (status = 200, description = "A page of versions", body = views::Page<views::Version>),
        (status = 404, description = "`not_found`: no such app", body = ErrorBody),
    ))]
pub async fn list(
    Viewer(project): Viewer,
    State(state): State<AppState>,
    Path(app): Path<String>,
    Query(query): Query<crate::extract::PageQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    let limit = query.limit()?;
    let mut conn = state.pool.acquire().await?;
    let id = app_id(&mut conn, project, &app).await?;
    let rows: Vec<VersionRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM app_versions WHERE app_id = $1 AND ($2::uuid IS NULL OR id < $2)
         ORDER BY id DESC LIMIT $3"
    ))
    .bind(id)
    .bind(query.before)
    .bind(limit + 1)
    .fetch_all(&mut *conn)
    .await?;
    let more = rows.len() as i64 > limit;
    let items = rows
        .iter()
        .take(limit as usize)
        .map(|row| view(&app, row))
        .collect::<Result<Vec<_>, _>>()?;
    let next = if more {
        rows.get(limit as usize - 1).map(|r| r.id)
    } else {
        None
    };
    Ok(axum::Json(json!({"items": items, "next": next})))
}

/// The uploaded bytes, unchanged (the ETag is their SHA-256).
#[utoipa::path(get, path = "/v1/apps/{app}/versions/{id}/archive", tag = "versions",
    operation_id = "download_version", security(("project_token" = ["viewer"])), params(("app" = crate::openapi::formats::Name, Path, description = "The app's name"), ("id" = Uuid, Path, description = "The version's id")),
    responses(
        (status = 200, description = "The archive", content(
            (formats::Binary = "application/gzip"), (formats::Binary = "application/zip")),
            headers(("ETag" = String, description = "The SHA-256 of the bytes, quoted"))),
        (status = 404, description = "`not_found`: no such app or version", body = ErrorBody),
    ))]
pub async fn download(
    Viewer(project): Viewer,
    State(state): State<AppState>,
    Path((app, version_id)): Path<(String, Uuid)>,
) -> Result<Response, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let id = app_id(&mut conn, project, &app).await?;
    let found: Option<(String, String, Vec<u8>)> = sqlx::query_as(
        "SELECT v.sha256, v.format, b.bytes FROM app_versions v
         JOIN source_blobs b ON b.sha256 = v.sha256 WHERE v.app_id = $1 AND v.id = $2",
    )
    .bind(id)
    .bind(version_id)
    .fetch_optional(&mut *conn)
    .await?;
    let (sha256, format, bytes) = found.ok_or(ApiError::NotFound("version"))?;
    let content_type = match format.as_str() {
        "zip" => "application/zip",
        _ => "application/gzip",
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{app}-{version_id}.{format}\""),
            ),
            (header::ETAG, format!("\"{sha256}\"")),
        ],
        bytes,
    )
        .into_response())
}
