//! The typed client of the Slipway API, written against its OpenAPI
//! document (`/openapi.json`): one module per resource, all over one HTTP
//! layer here that sends the bearer token, turns error answers into
//! [`CliError::Api`] with the API's `code` and `message`, and reads
//! server-sent event streams.

pub mod addons;
pub mod apps;
pub mod deployments;
pub mod logs;
pub mod projects;
pub mod sse;
pub mod targets;
pub mod versions;

use crate::config::Endpoint;
use crate::error::{CliError, Result};
use reqwest::{Method, RequestBuilder, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Duration;

/// A page of a list: `items` (and `next`, a cursor, where the list pages).
#[derive(Debug, serde::Deserialize, Serialize)]
pub struct Items<T> {
    pub items: Vec<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<uuid::Uuid>,
}

/// How long a read keeps retrying a server that is briefly unavailable.
const READ_RETRY_FOR: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    endpoint: Endpoint,
}

impl Client {
    pub fn new(endpoint: Endpoint) -> Result<Client> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("slipway-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CliError::Other(e.into()))?;
        Ok(Client { http, endpoint })
    }

    pub fn base(&self) -> &reqwest::Url {
        &self.endpoint.url
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.endpoint.url.as_str().trim_end_matches('/'))
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(&self.endpoint.token)
    }

    /// Sends the request; an answer outside 2xx becomes the API's error.
    pub async fn send(&self, request: RequestBuilder) -> Result<Response> {
        let response = request.send().await.map_err(|e| self.transport(e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        #[derive(serde::Deserialize)]
        struct Body {
            code: String,
            message: String,
        }
        Err(match serde_json::from_str::<Body>(&text) {
            Ok(body) => CliError::Api {
                status,
                code: body.code,
                message: body.message,
            },
            Err(_) => CliError::Transport {
                url: self.endpoint.url.to_string(),
                detail: format!("HTTP {status} that is not an API error: {}", excerpt(&text)),
            },
        })
    }

    fn transport(&self, error: reqwest::Error) -> CliError {
        let mut detail = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            detail = format!("{detail}: {cause}");
            source = cause.source();
        }
        CliError::Transport {
            url: self.endpoint.url.to_string(),
            detail,
        }
    }

    async fn decode<T: DeserializeOwned>(&self, response: Response) -> Result<T> {
        let bytes = response.bytes().await.map_err(|e| self.transport(e))?;
        serde_json::from_slice(&bytes).map_err(|e| CliError::Transport {
            url: self.endpoint.url.to_string(),
            detail: format!(
                "an answer this client does not understand ({e}): {}",
                excerpt(&String::from_utf8_lossy(&bytes))
            ),
        })
    }

    /// A read. Reads are safe to repeat, so a `503` (the API's database
    /// briefly away; it names a `Retry-After`) or a refused connection (an
    /// API restarting) is retried for up to [`READ_RETRY_FOR`]: a
    /// follower should not fail a deployment that is going fine.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let started = std::time::Instant::now();
        loop {
            let error = match self.send(self.request(Method::GET, path)).await {
                Ok(response) => return self.decode(response).await,
                Err(error) => error,
            };
            let wait = match &error {
                CliError::Api { status: 503, .. } => Duration::from_secs(1),
                CliError::Transport { .. } => Duration::from_millis(500),
                _ => return Err(error),
            };
            if started.elapsed() + wait > READ_RETRY_FOR {
                return Err(error);
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// A request with an optional JSON body whose answer is JSON.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T> {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = self.send(request).await?;
        self.decode(response).await
    }

    /// A request whose answer may be empty (204): `None` then.
    pub async fn call_maybe<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
    ) -> Result<Option<T>> {
        let response = self.send(self.request(method, path)).await?;
        if response.status() == reqwest::StatusCode::NO_CONTENT {
            return Ok(None);
        }
        self.decode(response).await.map(Some)
    }
}

/// Path segments are names and ids, but a user can type anything.
pub fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn excerpt(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}
