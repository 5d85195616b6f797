//! Smart HTTP: `git http-backend` run as a CGI program per request behind a
//! small axum server on `127.0.0.1:PORT`, on a thread and runtime of its own
//! so that it keeps serving whatever the test's runtime is doing.

use anyhow::{anyhow, Context};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;

const MAX_REQUEST: usize = 256 << 20;

#[derive(Debug, Clone, Default)]
pub struct HttpOptions {
    /// Basic-auth user and password every request must carry.
    pub credentials: Option<(String, String)>,
    /// Behave like an old or locked-down server: protocol v0 only and no
    /// fetching of unadvertised commits by id.
    pub legacy: bool,
}

/// A test-owned smart HTTP git server; stops on drop.
pub struct GitHttp {
    port: u16,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    base_dir: PathBuf,
    options: HttpOptions,
    /// The `Authorization` header value that is accepted.
    authorization: Option<String>,
    requests: AtomicUsize,
    refused: AtomicUsize,
}

impl GitHttp {
    /// Serves every repository under `base_dir`, requiring basic auth with
    /// `credentials` when given.
    pub fn start(base_dir: &Path, credentials: Option<(&str, &str)>) -> anyhow::Result<GitHttp> {
        GitHttp::start_with(
            base_dir,
            HttpOptions {
                credentials: credentials.map(|(u, p)| (u.to_owned(), p.to_owned())),
                legacy: false,
            },
        )
    }

    pub fn start_with(base_dir: &Path, options: HttpOptions) -> anyhow::Result<GitHttp> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let authorization = options.credentials.as_ref().map(|(user, password)| {
            let pair =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            format!("Basic {pair}")
        });
        let shared = Arc::new(Shared {
            base_dir: base_dir.to_owned(),
            options,
            authorization,
            requests: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let state = shared.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("building the git HTTP server's runtime")?;
        let thread = std::thread::Builder::new()
            .name(format!("git-http-{port}"))
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    let app = Router::new().fallback(handle).with_state(state);
                    // Not graceful: a test's server ends with the test, and
                    // dropping the runtime kills any http-backend still running.
                    tokio::select! {
                        _ = axum::serve(listener, app) => {}
                        _ = stopped => {}
                    }
                });
            })
            .context("spawning the git HTTP server thread")?;
        Ok(GitHttp {
            port,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT/<name>`.
    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}", self.port)
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// Requests answered 401 so far.
    pub fn refused(&self) -> usize {
        self.shared.refused.load(Ordering::Relaxed)
    }
}

impl Drop for GitHttp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    shared.requests.fetch_add(1, Ordering::Relaxed);
    if let Some(expected) = &shared.authorization {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if given != Some(expected.as_str()) {
            shared.refused.fetch_add(1, Ordering::Relaxed);
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Basic realm=\"slipway-test-git\"")],
                "authentication required\n",
            )
                .into_response();
        }
    }
    match cgi(&shared, request).await {
        Ok(response) => response,
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}\n")).into_response(),
    }
}

async fn cgi(shared: &Shared, request: Request) -> anyhow::Result<Response> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, MAX_REQUEST).await?;
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let mut command = tokio::process::Command::new("git");
    command
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_PROJECT_ROOT", &shared.base_dir)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("PATH_INFO", parts.uri.path())
        .env("QUERY_STRING", parts.uri.query().unwrap_or(""))
        .env("CONTENT_TYPE", header("content-type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("REMOTE_ADDR", "127.0.0.1");
    if let Some((user, _)) = &shared.options.credentials {
        command.env("REMOTE_USER", user);
    }
    let encoding = header("content-encoding");
    if !encoding.is_empty() {
        command.env("HTTP_CONTENT_ENCODING", encoding);
    }
    if !shared.options.legacy {
        let protocol = header("git-protocol");
        if !protocol.is_empty() {
            command.env("HTTP_GIT_PROTOCOL", protocol);
        }
        command
            .env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", "uploadpack.allowReachableSHA1InWant")
            .env("GIT_CONFIG_VALUE_0", "true");
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("spawning git http-backend")?;
    let stdin = child.stdin.take();
    // Fed while the output is read, so a large exchange cannot deadlock.
    let feed = async move {
        if let Some(mut stdin) = stdin {
            let _ = stdin.write_all(&body).await;
        }
    };
    let (_, output) = tokio::join!(feed, child.wait_with_output());
    let output = output.context("waiting for git http-backend")?;
    parse_cgi(&output.stdout).with_context(|| {
        format!(
            "git http-backend ({}) said: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )
    })
}

/// CGI output: headers (with an optional `Status:`), a blank line, the body.
fn parse_cgi(output: &[u8]) -> anyhow::Result<Response> {
    let (head, body) = find(output, b"\r\n\r\n")
        .map(|i| (&output[..i], &output[i + 4..]))
        .or_else(|| find(output, b"\n\n").map(|i| (&output[..i], &output[i + 2..])))
        .ok_or_else(|| anyhow!("no CGI header block in {} bytes", output.len()))?;
    let mut status = StatusCode::OK;
    let mut headers = HeaderMap::new();
    for line in String::from_utf8_lossy(head).lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().unwrap_or("500");
            status = StatusCode::from_bytes(code.as_bytes())?;
        } else {
            headers.append(
                HeaderName::from_bytes(name.trim().as_bytes())?,
                HeaderValue::from_str(value)?,
            );
        }
    }
    let mut response = Response::new(Body::from(body.to_vec()));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
