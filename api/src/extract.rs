//! Extractors whose rejections are JSON `{code, message}` errors instead of
//! axum's plain-text ones.

use crate::error::ApiError;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};

#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let code = match rejection {
            JsonRejection::JsonDataError(_) => "validation_failed",
            JsonRejection::MissingJsonContentType(_) => "unsupported_media_type",
            _ => "malformed_json",
        };
        ApiError::Invalid {
            code,
            message: rejection.body_text(),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::Invalid {
            code: "bad_path",
            message: rejection.body_text(),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::Invalid {
            code: "bad_query",
            message: rejection.body_text(),
        }
    }
}

/// A JSON body that may be absent (empty body means `T::default()`).
pub struct OptionalJson<T>(pub T);

impl<T, S> FromRequest<S> for OptionalJson<T>
where
    T: serde::de::DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|e| ApiError::Invalid {
                code: "malformed_json",
                message: e.body_text(),
            })?;
        // No body, or JSON `null`, is no input.
        if bytes.iter().all(u8::is_ascii_whitespace) || bytes.trim_ascii() == b"null" {
            return Ok(OptionalJson(T::default()));
        }
        let mut value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| ApiError::Invalid {
                code: if e.is_data() {
                    "validation_failed"
                } else {
                    "malformed_json"
                },
                message: format!("invalid body: {e}"),
            })?;
        whole_floats_as_integers(&mut value);
        serde_path_to_error::deserialize(value)
            .map(OptionalJson)
            .map_err(|e| {
                let code = if e.inner().is_data() {
                    "validation_failed"
                } else {
                    "malformed_json"
                };
                ApiError::Invalid {
                    code,
                    message: format!("invalid body: {e}"),
                }
            })
    }
}

/// JSON Schema counts `5.0` as an integer, and so do clients that write
/// every number as a float: whole floats become integers before the typed
/// parse (which would refuse `5.0` for a `u32`).
pub fn whole_floats_as_integers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|f| n.is_f64() && f.fract() == 0.0) {
                if f >= 0.0 && f < u64::MAX as f64 {
                    *value = Value::from(f as u64);
                } else if f < 0.0 && f >= i64::MIN as f64 {
                    *value = Value::from(f as i64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_floats_as_integers),
        Value::Object(map) => map.values_mut().for_each(whole_floats_as_integers),
        _ => {}
    }
}

/// For a typed body field: a whole number, also when written `5.0`.
pub fn whole_number<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    use serde::Deserialize;
    let mut value = serde_json::Value::deserialize(deserializer)?;
    whole_floats_as_integers(&mut value);
    T::deserialize(value).map_err(serde::de::Error::custom)
}

/// Reads a whole body of at most `limit` bytes; past it, 413 with `code`.
/// For routes that take more (uploads) or other bodies (webhooks) than the
/// router-wide limit allows, with a JSON error either way.
pub async fn limited_body(
    body: axum::body::Body,
    limit: u64,
    code: &'static str,
) -> Result<axum::body::Bytes, ApiError> {
    use http_body_util::BodyExt;
    let limited = http_body_util::Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::refused(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            code,
            format!("the body is larger than {limit} bytes"),
        )),
        Err(e) => Err(ApiError::Invalid {
            code: "bad_body",
            message: format!("the body could not be read: {e}"),
        }),
    }
}

/// `?limit=&before=` of a list answered newest first, cursor-paginated.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// The page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// The `next` cursor of the previous page.
    pub before: Option<uuid::Uuid>,
}

impl PageQuery {
    /// The page size: 20 unless given, 1 to 100.
    pub fn limit(&self) -> Result<i64, crate::error::ApiError> {
        let limit = self.limit.unwrap_or(20);
        if !(1..=100).contains(&limit) {
            return Err(crate::error::ApiError::validation(
                "limit: must be 1 to 100",
            ));
        }
        Ok(limit)
    }
}
