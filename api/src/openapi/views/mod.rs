//! Schemas of the JSON the handlers answer, for the document. Most handlers
//! build their answers as `serde_json::Value`; these types are their shapes
//! (the fuzz test checks every answer against them), never constructed.

#![allow(dead_code)]

use chrono::{DateTime, Utc};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

mod accounts;
mod apps;
mod cloud;
mod dashboard;
mod deployments;

pub use accounts::*;
pub use apps::*;
pub use cloud::*;
pub use dashboard::*;
pub use deployments::*;

/// A list of items.
#[derive(ToSchema)]
pub struct Items<T> {
    pub items: Vec<T>,
}

/// A page of a list answered newest first.
#[derive(ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The cursor of the next page (`?before=`); `null` on the last page.
    pub next: Option<Uuid>,
}

/// A page of a list answered in name order.
#[derive(ToSchema)]
pub struct NamePage<T> {
    pub items: Vec<T>,
    /// The cursor of the next page (`?after=`); `null` on the last page.
    pub next: Option<String>,
}

#[derive(ToSchema)]
pub struct Project {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// The caller's role in the project.
    #[schema(value_type = crate::auth::Role)]
    pub role: String,
}

/// A target: never its key, only whether one is set and its fingerprint.
#[derive(ToSchema)]
pub struct Target {
    pub id: Uuid,
    pub name: String,
    /// `local` or `ssh`.
    pub kind: String,
    pub host: Option<String>,
    pub port: Option<i32>,
    pub user: Option<String>,
    pub has_key: bool,
    pub key_fingerprint: Option<String>,
    pub known_hosts: Option<String>,
    #[schema(value_type = Object)]
    pub settings: Value,
    pub engine: Option<String>,
    pub created_at: String,
    /// The apps that run on the target.
    pub apps: Vec<String>,
    pub last_check: Option<TargetCheck>,
}

#[derive(ToSchema)]
pub struct TargetCheck {
    pub deployment: Uuid,
    pub state: String,
    pub error_code: Option<String>,
    pub error: Option<String>,
    pub requested_at: String,
    pub finished_at: Option<String>,
}

#[derive(ToSchema)]
pub struct Readiness {
    pub postgres: bool,
    pub rabbitmq: bool,
}
