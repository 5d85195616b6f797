//! Deployment targets (`/v1/targets`): the local one and ssh servers.

use super::{segment, Client, Items};
use crate::error::Result;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Deserialize, Serialize)]
pub struct Target {
    pub id: uuid::Uuid,
    pub name: String,
    pub kind: String,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub engine: Option<String>,
    #[serde(default)]
    pub apps: Vec<String>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl Client {
    pub async fn targets(&self) -> Result<Items<Target>> {
        self.get("/v1/targets").await
    }

    pub async fn target(&self, key: &str) -> Result<Target> {
        self.get(&format!("/v1/targets/{}", segment(key))).await
    }
}
