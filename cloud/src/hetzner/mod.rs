//! Hetzner Cloud (`https://api.hetzner.cloud/v1`, bearer token): servers,
//! SSH keys and firewalls, their actions (`running` → `success` | `error`)
//! polled through `GET /actions/{id}`, pages followed through
//! `meta.pagination.next_page`, labels selected by `label_selector`; and
//! the reads the catalog prices from (`/locations`, `/server_types`,
//! `/pricing`).

use crate::driver::{Labels, Polling, ProviderKind};
use crate::error::CloudError;
use crate::http::{Http, RetryPolicy};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::time::Instant;

const PROVIDER: ProviderKind = ProviderKind::Hetzner;
const PER_PAGE: u32 = 50;

mod driver;

pub struct Hetzner {
    http: Http,
    base: String,
    token: SecretString,
    polling: Polling,
}

impl Hetzner {
    pub const ENDPOINT: &'static str = "https://api.hetzner.cloud/v1";

    /// `endpoint`: the API's base URL, `…/v1` (the public one when `None`).
    pub fn new(
        endpoint: Option<&str>,
        token: SecretString,
        retry: RetryPolicy,
        polling: Polling,
    ) -> Result<Hetzner, CloudError> {
        Ok(Hetzner {
            http: Http::new(PROVIDER, retry)?,
            base: endpoint
                .unwrap_or(Self::ENDPOINT)
                .trim_end_matches('/')
                .to_owned(),
            token,
            polling,
        })
    }

    /// The same client, resolving names through `guard` ([`crate::guard`]).
    pub fn with_guard(self, guard: crate::guard::AddressGuard) -> Result<Hetzner, CloudError> {
        Ok(Hetzner {
            http: Http::guarded(PROVIDER, self.http.retry(), Some(guard))?,
            ..self
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, CloudError> {
        let url = format!("{}{path}", self.base);
        self.http
            .json(|client| {
                let request = client
                    .request(method.clone(), &url)
                    .bearer_auth(self.token.expose_secret())
                    .query(query);
                match body {
                    Some(body) => request.json(body),
                    None => request,
                }
            })
            .await
    }

    async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, CloudError> {
        self.call(reqwest::Method::GET, path, query, None).await
    }

    /// Every item under `key` of every page.
    pub async fn pages(
        &self,
        path: &str,
        key: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<Value>, CloudError> {
        let mut items = Vec::new();
        let mut page = 1u64;
        loop {
            let mut query = query.to_vec();
            query.push(("page", page.to_string()));
            query.push(("per_page", PER_PAGE.to_string()));
            let body = self.get(path, &query).await?;
            let list = body[key].as_array().ok_or_else(|| decode(key))?;
            items.extend(list.iter().cloned());
            match body["meta"]["pagination"]["next_page"].as_u64() {
                Some(next) if next > page => page = next,
                _ => return Ok(items),
            }
        }
    }

    /// Polls an action until it ends; its error in Hetzner's words.
    async fn wait_action(
        &self,
        id: u64,
        deadline: Instant,
        limit: Duration,
    ) -> Result<(), CloudError> {
        loop {
            let action = self.get(&format!("/actions/{id}"), &[]).await?["action"].clone();
            let command = action["command"].as_str().unwrap_or("action").to_owned();
            match action["status"].as_str() {
                Some("success") => return Ok(()),
                Some("error") => {
                    return Err(CloudError::Failed {
                        provider: PROVIDER,
                        what: command,
                        message: action["error"]["message"]
                            .as_str()
                            .unwrap_or("the action failed")
                            .to_owned(),
                    })
                }
                _ if Instant::now() >= deadline => {
                    return Err(CloudError::Timeout {
                        provider: PROVIDER,
                        what: command,
                        limit,
                    })
                }
                _ => tokio::time::sleep(self.polling.interval).await,
            }
        }
    }

    pub async fn locations(&self) -> Result<Vec<Value>, CloudError> {
        self.pages("/locations", "locations", &[]).await
    }

    pub async fn server_types(&self) -> Result<Vec<Value>, CloudError> {
        self.pages("/server_types", "server_types", &[]).await
    }

    pub async fn pricing(&self) -> Result<Value, CloudError> {
        Ok(self.get("/pricing", &[]).await?["pricing"].clone())
    }
}

fn decode(what: &str) -> CloudError {
    CloudError::Decode {
        provider: PROVIDER,
        detail: format!("no `{what}` in the answer"),
    }
}

/// Hetzner ids are integers; the trait carries them as text.
fn numeric(id: &str) -> Value {
    id.parse::<u64>().map_or_else(|_| json!(id), |n| json!(n))
}

fn id_of(value: &Value) -> Result<String, CloudError> {
    value["id"]
        .as_u64()
        .map(|id| id.to_string())
        .ok_or_else(|| decode("id"))
}

fn labels_of(value: &Value) -> Labels {
    value["labels"]
        .as_object()
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}
