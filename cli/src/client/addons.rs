//! An app's add-ons (`/v1/apps/{app}/addons`): a Postgres database or a
//! volume, made by the workers; passwords come back masked.

use super::{segment, Client, Items};
use crate::error::Result;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Deserialize, Serialize)]
pub struct Addon {
    pub id: uuid::Uuid,
    pub kind: String,
    pub name: String,
    pub state: String,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl Client {
    pub async fn addons(&self, app: &str) -> Result<Items<Addon>> {
        self.get(&format!("/v1/apps/{}/addons", segment(app))).await
    }

    /// `body`: `{"kind": "postgres", "name"}` or `{"kind": "volume", "name", "mount"}`.
    pub async fn create_addon(&self, app: &str, body: &Value) -> Result<Addon> {
        let path = format!("/v1/apps/{}/addons", segment(app));
        self.call(Method::POST, &path, Some(body)).await
    }

    /// Detach (data kept) or, with `purge`, drop the data at the next deploy.
    pub async fn delete_addon(&self, app: &str, name: &str, purge: bool) -> Result<Value> {
        let mut path = format!("/v1/apps/{}/addons/{}", segment(app), segment(name));
        if purge {
            path.push_str("?purge=true");
        }
        Ok(self
            .call_maybe(Method::DELETE, &path)
            .await?
            .unwrap_or(Value::Null))
    }
}
