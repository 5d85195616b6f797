//! The one HTTP layer every provider client sends through: reqwest with
//! rustls, no redirects followed (an endpoint that passed the outbound
//! policy must not hand the request on to one that did not), JSON bodies,
//! the provider's error body read into [`CloudError::Api`], and retries
//! with backoff (backon) on 429, and for requests other than POST also on
//! 502/503/504 and connection failures, waiting what `Retry-After` (or Hetzner's `RateLimit-Reset`)
//! asks when the provider says.

use crate::driver::ProviderKind;
use crate::error::CloudError;
use backon::{ExponentialBuilder, Retryable};
use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, StatusCode};
use serde_json::Value;
use std::time::Duration;

/// How often and how patiently a request is sent again.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub retries: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// The longest `Retry-After` honoured; a longer one is cut to this.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 4,
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
            max_wait: Duration::from_secs(60),
        }
    }
}

#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
    provider: ProviderKind,
    retry: RetryPolicy,
}

impl Http {
    pub fn new(provider: ProviderKind, retry: RetryPolicy) -> Result<Http, CloudError> {
        Self::guarded(provider, retry, None)
    }

    /// With `guard`, every name is resolved through it ([`crate::guard`]).
    pub fn guarded(
        provider: ProviderKind,
        retry: RetryPolicy,
        guard: Option<crate::guard::AddressGuard>,
    ) -> Result<Http, CloudError> {
        let mut builder = reqwest::Client::builder();
        if let Some(guard) = guard {
            builder =
                builder.dns_resolver(std::sync::Arc::new(crate::guard::GuardedResolver(guard)));
        }
        let client = builder
            .user_agent(concat!("slipway/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| CloudError::Transport {
                provider,
                detail: e.to_string(),
            })?;
        Ok(Http {
            client,
            provider,
            retry,
        })
    }

    pub fn retry(&self) -> RetryPolicy {
        self.retry
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends the request `build` makes, again while the failure is
    /// transient; a 2xx answer's headers and JSON body (`Null` if empty).
    pub async fn send(
        &self,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<(HeaderMap, Value), CloudError> {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.retry.min_delay)
            .with_max_delay(self.retry.max_delay)
            .with_max_times(self.retry.retries)
            .with_jitter();
        let max_wait = self.retry.max_wait;
        // A POST that failed on the way (a 502, a reset connection) may
        // have been carried out: sending it again could make a second
        // server. A 429 was refused before any work, so it is sent again.
        let repeatable = build(&self.client)
            .build()
            .is_ok_and(|r| r.method() != reqwest::Method::POST);
        (|| self.once(&build))
            .retry(backoff)
            .when(|e| e.status() == Some(429) || (repeatable && e.is_transient()))
            .adjust(|error, delay| {
                // The provider's own wait wins over the backoff's guess,
                // while the backoff still counts the attempts.
                delay.map(|d| error.retry_after().map_or(d, |w| w.min(max_wait)))
            })
            .notify(|error, delay| {
                tracing::info!(provider = %self.provider, %error, ?delay, "provider call retried")
            })
            .await
    }

    /// The JSON body of a 2xx answer.
    pub async fn json(
        &self,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Value, CloudError> {
        Ok(self.send(build).await?.1)
    }

    async fn once(
        &self,
        build: &impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<(HeaderMap, Value), CloudError> {
        let provider = self.provider;
        let response = build(&self.client)
            .send()
            .await
            .map_err(|e| CloudError::Transport {
                provider,
                detail: format!("{e:#}"),
            })?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.map_err(|e| CloudError::Transport {
            provider,
            detail: format!("reading the answer: {e}"),
        })?;
        let body: Option<Value> = serde_json::from_slice(&bytes).ok();
        if status.is_success() {
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok((headers, Value::Null));
            }
            let body = body.ok_or_else(|| CloudError::Decode {
                provider,
                detail: format!("a {status} answer that is not JSON"),
            })?;
            return Ok((headers, body));
        }
        let (code, message) = body
            .as_ref()
            .and_then(error_words)
            .unwrap_or_else(|| reason(status, &bytes));
        Err(CloudError::Api {
            provider,
            status: status.as_u16(),
            code,
            message,
            retry_after: retry_after(&headers),
        })
    }
}

/// The code and message of a provider's error body: Hetzner's
/// `{"error": {"code", "message"}}`, Keystone's `{"error": {"code": 401,
/// "title", "message"}}`, Nova's `{"itemNotFound": {"code": 404,
/// "message"}}`, Neutron's `{"NeutronError": {"type", "message"}}`.
pub fn error_words(body: &Value) -> Option<(String, String)> {
    let object = body.as_object()?;
    let (key, inner) = object.iter().find(|(_, v)| v.get("message").is_some())?;
    let message = inner["message"].as_str()?.to_owned();
    let text = |field: &str| inner.get(field).and_then(Value::as_str).map(str::to_owned);
    let code = text("code")
        .or_else(|| text("type"))
        .or_else(|| (key == "error").then(|| text("title")).flatten())
        .unwrap_or_else(|| key.clone());
    Some((code, message))
}

fn reason(status: StatusCode, bytes: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(bytes);
    let text: String = text.trim().chars().take(300).collect();
    let code = status
        .canonical_reason()
        .unwrap_or("error")
        .to_lowercase()
        .replace(' ', "_");
    (
        code,
        if text.is_empty() {
            status.to_string()
        } else {
            text
        },
    )
}

/// `Retry-After` in seconds or as an HTTP date, else Hetzner's
/// `RateLimit-Reset` (a Unix time).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let now = chrono::Utc::now();
    if let Some(value) = header("retry-after") {
        if let Ok(seconds) = value.trim().parse::<u64>() {
            return Some(Duration::from_secs(seconds));
        }
        if let Ok(when) = chrono::DateTime::parse_from_rfc2822(value.trim()) {
            return Some((when.to_utc() - now).to_std().unwrap_or_default());
        }
    }
    let reset: i64 = header("ratelimit-reset")?.trim().parse().ok()?;
    Some(Duration::from_secs(
        u64::try_from(reset - now.timestamp()).unwrap_or(0),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn provider_error_bodies_keep_their_words() {
        let cases = [
            (
                json!({"error": {"code": "uniqueness_error", "message": "SSH key with the same fingerprint already exists", "details": {}}}),
                (
                    "uniqueness_error",
                    "SSH key with the same fingerprint already exists",
                ),
            ),
            (
                json!({"error": {"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}}),
                (
                    "Unauthorized",
                    "The request you have made requires authentication.",
                ),
            ),
            (
                json!({"itemNotFound": {"code": 404, "message": "Instance x could not be found."}}),
                ("itemNotFound", "Instance x could not be found."),
            ),
            (
                json!({"NeutronError": {"type": "SecurityGroupNotFound", "message": "Security group y does not exist", "detail": ""}}),
                ("SecurityGroupNotFound", "Security group y does not exist"),
            ),
        ];
        for (body, (code, message)) in cases {
            assert_eq!(
                error_words(&body),
                Some((code.to_owned(), message.to_owned())),
                "{body}"
            );
        }
        assert_eq!(error_words(&json!({"servers": []})), None);
    }

    #[test]
    fn waits_come_from_the_headers() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        let mut headers = HeaderMap::new();
        let reset = chrono::Utc::now().timestamp() + 30;
        headers.insert("ratelimit-reset", reset.to_string().parse().unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!((Duration::from_secs(28)..=Duration::from_secs(30)).contains(&wait));
        let mut headers = HeaderMap::new();
        headers.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
    }
}
