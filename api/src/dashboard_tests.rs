use super::*;
use axum::body::Body;

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn built() -> Dir {
    let dir = std::env::temp_dir().join(format!("slipway-web-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(dir.join("assets")).unwrap();
    std::fs::write(dir.join("index.html"), "<!doctype html><p>app</p>").unwrap();
    std::fs::write(dir.join("assets/app-ABC123.js"), "console.log(1)").unwrap();
    std::fs::write(dir.join("assets/app-ABC123.js.gz"), "zipped").unwrap();
    std::fs::write(dir.join("assets/app-ABC123.css"), "p{}").unwrap();
    std::fs::write(dir.join("favicon.svg"), "<svg/>").unwrap();
    Dir(dir)
}

async fn get(dir: &Path, path: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, String) {
    let mut request = Request::builder().uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = Dashboard::new(dir)
        .serve(request.body(Body::empty()).unwrap())
        .await;
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn has_security_headers(headers: &HeaderMap) {
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
}

#[tokio::test]
async fn files_have_their_types_and_hashed_assets_are_immutable() {
    let dir = built();
    let (status, headers, body) = get(&dir.0, "/assets/app-ABC123.css", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "p{}");
    assert_eq!(headers[header::CONTENT_TYPE], "text/css; charset=utf-8");
    assert_eq!(headers[header::CACHE_CONTROL], IMMUTABLE);
    has_security_headers(&headers);
    let (_, headers, body) = get(&dir.0, "/assets/app-ABC123.js", &[]).await;
    assert_eq!(body, "console.log(1)");
    assert_eq!(
        headers[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    // The gzip twin goes to a client that takes it, with its encoding.
    let (_, headers, body) = get(
        &dir.0,
        "/assets/app-ABC123.js",
        &[("accept-encoding", "br, gzip")],
    )
    .await;
    assert_eq!(body, "zipped");
    assert_eq!(headers[header::CONTENT_ENCODING], "gzip");
    let (_, headers, _) = get(&dir.0, "/favicon.svg", &[]).await;
    assert_eq!(headers[header::CONTENT_TYPE], "image/svg+xml");
    assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
}

#[tokio::test]
async fn client_routes_get_index_html_and_missing_assets_404() {
    let dir = built();
    for path in ["/", "/apps", "/apps/web/deployments/0190"] {
        let (status, headers, body) = get(&dir.0, path, &[]).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(body.contains("<p>app</p>"), "{path}: {body}");
        assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        has_security_headers(&headers);
    }
    for path in ["/assets/app-OLD.js", "/missing.png"] {
        let (status, _, _) = get(&dir.0, path, &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn the_api_namespaces_stay_json_404s() {
    let dir = built();
    for path in [
        "/v1",
        "/v1/nope",
        "/v1/apps/x/nope",
        "/metrics",
        "/openapi.json",
    ] {
        let (status, headers, body) = get(&dir.0, path, &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(body.contains("\"not_found\""), "{path}: {body}");
        assert!(
            headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn paths_cannot_leave_the_directory() {
    let dir = built();
    let outside = dir.0.parent().unwrap().join("slipway-web-secret.txt");
    std::fs::write(&outside, "secret").unwrap();
    for path in [
        "/../slipway-web-secret.txt",
        "/assets/../../slipway-web-secret.txt",
        "/.env",
        "/assets/..%2f..%2fslipway-web-secret.txt",
    ] {
        let (status, _, body) = get(&dir.0, path, &[]).await;
        assert!(!body.contains("secret"), "{path}: {status} {body}");
    }
    let _ = std::fs::remove_file(outside);
}

#[tokio::test]
async fn a_missing_build_answers_a_page_that_says_how_to_build_it() {
    let dir = std::env::temp_dir().join(format!("slipway-web-none-{}", uuid::Uuid::new_v4()));
    let (status, headers, body) = get(&dir, "/", &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("dashboard is not built"), "{body}");
    assert!(body.contains("npm run build"), "{body}");
    assert!(body.contains(&dir.display().to_string()), "{body}");
    has_security_headers(&headers);
    let (status, _, _) = get(&dir, "/apps", &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}
