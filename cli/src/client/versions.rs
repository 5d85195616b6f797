//! Versions: an uploaded `.tar.gz` of an app's source, stored by SHA-256
//! (`POST /v1/apps/{app}/versions`), deployed with `{"version": ID}`.

use super::{segment, Client};
use crate::error::Result;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Deserialize, Serialize)]
pub struct Version {
    pub id: uuid::Uuid,
    pub sha256: String,
    pub size: i64,
    pub files: i64,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl Client {
    pub async fn upload_version(&self, app: &str, tar_gz: Vec<u8>) -> Result<Version> {
        let path = format!("/v1/apps/{}/versions", segment(app));
        let request = self
            .request(Method::POST, &path)
            .header(reqwest::header::CONTENT_TYPE, "application/gzip")
            .body(tar_gz);
        let response = self.send(request).await?;
        self.decode(response).await
    }
}
