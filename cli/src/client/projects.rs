//! Projects (`/v1/projects`, an admin token's).

use super::{Client, Items};
use crate::error::Result;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Deserialize, Serialize)]
pub struct Project {
    pub id: uuid::Uuid,
    pub name: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl Client {
    pub async fn projects(&self) -> Result<Items<Project>> {
        self.get("/v1/projects").await
    }
}
