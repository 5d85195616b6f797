//! Deployments: create one (a git ref, an uploaded version or a rollback),
//! list an app's, read one (state, timeline, error), cancel, and read its
//! build and deploy log lines.

use super::{segment, Client, Items};
use crate::error::Result;
use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// A `202` of a create or an operation.
#[derive(Debug, Deserialize, Serialize)]
pub struct Accepted {
    pub id: Uuid,
    pub state: String,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// What to deploy (`POST /v1/apps/{app}/deployments`).
#[derive(Debug, Default, Serialize)]
pub struct Create {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback_to: Option<Uuid>,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct Summary {
    pub id: Uuid,
    pub state: String,
    #[serde(default)]
    pub source: Value,
    #[serde(default)]
    pub error_code: Option<String>,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct Deployment {
    pub id: Uuid,
    #[serde(default)]
    pub app: Option<String>,
    pub state: String,
    #[serde(default)]
    pub source: Value,
    #[serde(default)]
    pub image_digest: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub error_message: Option<String>,
    #[serde(default)]
    pub events: Vec<Event>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// One step of the timeline: the state it went to, when, and why.
#[derive(Debug, Deserialize, Serialize)]
pub struct Event {
    #[serde(default)]
    pub from: Option<String>,
    pub to: String,
    pub at: DateTime<Utc>,
    #[serde(default)]
    pub detail: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct LogLine {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub stage: String,
    pub stream: String,
    pub line: String,
}

#[derive(Debug, Deserialize)]
pub struct Logs {
    pub lines: Vec<LogLine>,
    pub next: i64,
    pub state: String,
}

/// The states a deployment ends in.
pub const TERMINAL: &[&str] = &["live", "failed", "cancelled", "superseded"];

impl Client {
    pub async fn deploy(&self, app: &str, what: &Create) -> Result<Accepted> {
        let path = format!("/v1/apps/{}/deployments", segment(app));
        self.call(Method::POST, &path, Some(what)).await
    }

    /// The app's deployments, newest first (one page of up to `limit`).
    pub async fn deployments(&self, app: &str, limit: u8) -> Result<Items<Summary>> {
        let path = format!("/v1/apps/{}/deployments?limit={limit}", segment(app));
        self.get(&path).await
    }

    pub async fn deployment(&self, id: Uuid) -> Result<Deployment> {
        self.get(&format!("/v1/deployments/{id}")).await
    }

    pub async fn cancel(&self, id: Uuid) -> Result<Accepted> {
        let path = format!("/v1/deployments/{id}/cancel");
        self.call(Method::POST, &path, None::<&Value>).await
    }

    /// Log lines after `after`.
    pub async fn deployment_logs(&self, id: Uuid, after: i64) -> Result<Logs> {
        self.get(&format!(
            "/v1/deployments/{id}/logs?after={after}&limit=10000"
        ))
        .await
    }
}
