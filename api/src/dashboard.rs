//! The web dashboard's static files, served at `/` from
//! `SLIPWAY_WEB_DIR` (what `npm run build` in `web/` writes).
//!
//! It is the router's fallback, so it never shadows an API route, and the
//! API's own namespaces (`/v1/…`, `/openapi.json`, `/metrics`, the health
//! routes) keep answering JSON 404s for paths they do not have. Any other
//! `GET` that names no file is a client-side route and gets `index.html`.
//! Hashed assets (`/assets/NAME-HASH.EXT`) are cached for a year, every
//! other answer is revalidated; `NAME.gz` beside a file is sent to a client
//! that accepts gzip. Every answer carries a Content-Security-Policy that
//! allows no inline script or style, and no framing.

use crate::error::ApiError;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Paths that belong to the API even when no route matches them.
const API_PATHS: [&str; 4] = ["/openapi.json", "/metrics", "/healthz", "/readyz"];

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Where the built dashboard lives.
#[derive(Clone, Debug)]
pub struct Dashboard {
    dir: Arc<PathBuf>,
}

impl Dashboard {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: Arc::new(dir.into()),
        }
    }

    /// The router's fallback: a dashboard file, `index.html` for a client
    /// route, or the API's JSON 404.
    pub async fn serve(self, request: Request) -> Response {
        let path = request.uri().path().to_owned();
        if is_api(&path) || !matches!(*request.method(), Method::GET | Method::HEAD) {
            return ApiError::NotFound("route").into_response();
        }
        let Some(relative) = safe_relative(&path) else {
            return with_headers(not_found(), None);
        };
        let gzip = accepts_gzip(request.headers());
        if !relative.as_os_str().is_empty() {
            let file = self.dir.join(&relative);
            if let Some(response) = send_file(&file, gzip).await {
                let cache = if path.starts_with("/assets/") {
                    IMMUTABLE
                } else {
                    "no-cache"
                };
                return with_headers(response, Some(cache));
            }
            // A missing asset is a 404, not the app: a stale index.html
            // asking for an old bundle must fail visibly.
            if path.starts_with("/assets/") || relative.extension().is_some() {
                return with_headers(not_found(), None);
            }
        }
        match send_file(&self.dir.join("index.html"), gzip).await {
            Some(response) => with_headers(response, Some("no-cache")),
            None => with_headers(not_built(&self.dir), Some("no-cache")),
        }
    }
}

fn is_api(path: &str) -> bool {
    API_PATHS.contains(&path) || path == "/v1" || path.starts_with("/v1/")
}

/// The request path as a path inside the assets directory, or `None` when
/// it tries to leave it (`..`, absolute parts, backslashes, NUL).
fn safe_relative(path: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        if part == "." || part == ".." || part.contains(['\\', '\0']) || part.starts_with('.') {
            return None;
        }
        out.push(part);
    }
    Some(out)
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            parts.next() == Some("gzip") && !parts.any(|q| q == "q=0" || q == "q=0.0")
        })
}

/// The file (or its `.gz` twin for a client that takes gzip), if it is a
/// regular file.
async fn send_file(file: &Path, gzip: bool) -> Option<Response> {
    let content_type = content_type(file);
    let mut headers = vec![
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::VARY, HeaderValue::from_static("accept-encoding")),
    ];
    if gzip {
        let mut zipped = file.as_os_str().to_owned();
        zipped.push(".gz");
        if let Some(bytes) = read_regular(Path::new(&zipped)).await {
            headers.push((header::CONTENT_ENCODING, HeaderValue::from_static("gzip")));
            return Some(respond(StatusCode::OK, headers, bytes));
        }
    }
    let bytes = read_regular(file).await?;
    Some(respond(StatusCode::OK, headers, bytes))
}

async fn read_regular(file: &Path) -> Option<Vec<u8>> {
    let meta = tokio::fs::metadata(file).await.ok()?;
    if !meta.is_file() {
        return None;
    }
    tokio::fs::read(file).await.ok()
}

fn respond(
    status: StatusCode,
    headers: Vec<(header::HeaderName, HeaderValue)>,
    body: Vec<u8>,
) -> Response {
    let mut response = (status, body).into_response();
    for (name, value) in headers {
        response.headers_mut().insert(name, value);
    }
    response
}

fn content_type(file: &Path) -> &'static str {
    match file.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The security headers every dashboard answer carries.
fn with_headers(mut response: Response, cache: Option<&'static str>) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if let Some(cache) = cache {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    }
    response
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "not found\n",
    )
        .into_response()
}

/// A 503 page, never a 500: the API works, only the dashboard is missing.
fn not_built(dir: &Path) -> Response {
    let shown = html_escape(&dir.display().to_string());
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Slipway: the dashboard is not built</title></head><body>\
         <h1>The Slipway dashboard is not built</h1>\
         <p>The API is running (see <a href=\"/openapi.json\">/openapi.json</a>), \
         but it found no <code>index.html</code> in <code>{shown}</code>.</p>\
         <p>Build the dashboard with <code>cd web &amp;&amp; npm ci &amp;&amp; npm run build</code> \
         (it writes <code>web/dist</code>), or point <code>SLIPWAY_WEB_DIR</code> at a built copy, \
         then reload this page.</p></body></html>\n"
    );
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
#[path = "dashboard_tests.rs"]
mod tests;
