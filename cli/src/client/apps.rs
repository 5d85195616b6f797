//! Apps (`/v1/apps`): create, list, read, change (PATCH merges `env`,
//! `secrets`, `build`, `runtime` per key; `null` deletes a key), destroy,
//! and the operations that act on the target (stop, start, restart, scale).

use super::deployments::Accepted;
use super::{segment, Client, Items};
use crate::error::Result;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

#[derive(Debug, Deserialize, Serialize)]
pub struct App {
    pub id: uuid::Uuid,
    pub name: String,
    #[serde(default)]
    pub git_url: Option<String>,
    #[serde(default)]
    pub git_ref: Option<String>,
    #[serde(default)]
    pub target: Option<String>,
    /// Plain variables (a value is `null` only in a PATCH).
    #[serde(default)]
    pub env: BTreeMap<String, Option<String>>,
    /// Secret variables, masked by the API (`********`).
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    #[serde(default)]
    pub domains: Vec<String>,
    #[serde(default)]
    pub live: Option<Live>,
    #[serde(default)]
    pub status: Option<Status>,
    /// The rest of the API's answer, kept for `--json`.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct Live {
    pub deployment: uuid::Uuid,
    pub image_ref: String,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct Status {
    /// `running`, `stopped`, `not_deployed`, `destroying`.
    pub state: String,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub health: Option<Health>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct Health {
    #[serde(default)]
    pub ok: Option<bool>,
    #[serde(default)]
    pub detail: Option<String>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// What `DELETE /v1/apps/{app}` answers: a destroy deployment, or nothing
/// (204) when the app had nothing on a target.
pub enum Destroyed {
    Queued(Accepted),
    Gone,
}

impl Client {
    pub async fn apps(&self) -> Result<Items<App>> {
        self.get("/v1/apps").await
    }

    pub async fn app(&self, name: &str) -> Result<App> {
        self.get(&format!("/v1/apps/{}", segment(name))).await
    }

    /// `body` is the create request (`name`, `git_url`, `target`, …).
    pub async fn create_app(&self, body: &Value) -> Result<App> {
        self.call(Method::POST, "/v1/apps", Some(body)).await
    }

    /// A PATCH with merge semantics: only the keys named change.
    pub async fn patch_app(&self, name: &str, body: &Value) -> Result<App> {
        let path = format!("/v1/apps/{}", segment(name));
        self.call(Method::PATCH, &path, Some(body)).await
    }

    pub async fn destroy_app(&self, name: &str, purge: bool) -> Result<Destroyed> {
        let mut path = format!("/v1/apps/{}", segment(name));
        if purge {
            path.push_str("?purge=true");
        }
        Ok(match self.call_maybe(Method::DELETE, &path).await? {
            Some(accepted) => Destroyed::Queued(accepted),
            None => Destroyed::Gone,
        })
    }

    /// `stop`, `start` or `restart`: a deployment of that action.
    pub async fn operate(&self, name: &str, action: Action) -> Result<Accepted> {
        let path = format!("/v1/apps/{}/{}", segment(name), action.as_str());
        self.call(Method::POST, &path, None::<&Value>).await
    }

    pub async fn scale(&self, name: &str, replicas: u8) -> Result<Accepted> {
        let path = format!("/v1/apps/{}/scale", segment(name));
        let body = serde_json::json!({ "replicas": replicas });
        self.call(Method::POST, &path, Some(&body)).await
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Action {
    Stop,
    Start,
    Restart,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Stop => "stop",
            Action::Start => "start",
            Action::Restart => "restart",
        }
    }
}
