//! The bodies of app creates and updates, with their schemas for the
//! document (field rules the handlers check are described there too).

use crate::credentials::{self, GitCredentialInput};
use crate::openapi::formats;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApp {
    /// Unique in the project.
    #[schema(value_type = formats::Name)]
    pub(super) name: String,
    /// The repository deployments build from by default.
    #[schema(value_type = Option<formats::GitUrl>)]
    pub(super) git_url: Option<String>,
    /// The branch, tag or commit deployed by default (`HEAD` if absent).
    #[schema(value_type = Option<formats::GitRefName>)]
    pub(super) git_ref: Option<String>,
    /// Build settings (Containerfile, build arguments, install, build and
    /// start commands), read by the build worker; unknown keys answer 422.
    #[serde(default)]
    #[schema(value_type = formats::BuildSettings)]
    pub(super) build: Map<String, Value>,
    /// Runtime settings, checked now: `replicas` (1 to 16) is the number of
    /// containers per release; also port, health check, memory and others.
    #[serde(default)]
    #[schema(value_type = formats::RuntimeSettings)]
    pub(super) runtime: Map<String, Value>,
    #[serde(default)]
    #[schema(value_type = formats::EnvVars)]
    pub(super) env: BTreeMap<String, String>,
    /// Secret env vars: stored encrypted, never shown again.
    #[serde(default)]
    #[schema(value_type = formats::EnvVars)]
    pub(super) secrets: BTreeMap<String, String>,
    /// A private repository's token or deploy key: stored encrypted, never shown again.
    pub(super) git_credential: Option<GitCredentialInput>,
    /// The target (id or name) the app runs on; absent: the local target.
    pub(super) target: Option<String>,
    /// Host names the app answers at besides `APP.PROJECT.BASE_DOMAIN`
    /// (at most 20, unique on the platform: 409 `domain_taken`), applied by
    /// the next deploy, start or restart.
    #[serde(default)]
    #[schema(value_type = Vec<formats::HostName>, max_items = 20)]
    pub(super) domains: Vec<String>,
}

/// Changes to an app; an absent field keeps its value. `env`, `secrets`,
/// `build` and `runtime` merge per key: a value sets the key, `null`
/// deletes it (from the side that names it), an absent key is kept; a key
/// set in `env` or `secrets` moves there from the other side.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateApp {
    #[schema(value_type = Option<formats::GitUrl>)]
    pub(super) git_url: Option<String>,
    #[schema(value_type = Option<formats::GitRefName>)]
    pub(super) git_ref: Option<String>,
    #[schema(value_type = Option<formats::BuildSettings>)]
    pub(super) build: Option<Map<String, Value>>,
    #[schema(value_type = Option<formats::RuntimeSettings>)]
    pub(super) runtime: Option<Map<String, Value>>,
    #[schema(value_type = Option<formats::EnvPatch>)]
    pub(super) env: Option<super::vars::VarPatch>,
    #[schema(value_type = Option<formats::EnvPatch>)]
    pub(super) secrets: Option<super::vars::VarPatch>,
    /// Absent keeps the credential, `null` removes it.
    #[serde(default, deserialize_with = "credentials::present_or_null")]
    #[schema(value_type = Option<GitCredentialInput>)]
    pub(super) git_credential: Option<Option<GitCredentialInput>>,
    /// Absent keeps the target, `null` puts the app on the local target.
    #[serde(default, deserialize_with = "credentials::present_or_null")]
    #[schema(value_type = Option<String>)]
    pub(super) target: Option<Option<String>>,
    /// Replaces the app's custom domains (`[]` removes them).
    #[schema(value_type = Option<Vec<formats::HostName>>, max_items = 20)]
    pub(super) domains: Option<Vec<String>>,
}
