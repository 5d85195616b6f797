//! Reusing an image instead of building: a build is keyed by everything
//! that shapes its image (source revision, plan, build variables, engine),
//! and a deployment whose key matches an earlier successful build of the
//! same app takes that build's digest, provided the registry still has it.

use crate::config::RegistrySettings;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use slipway_shared::job::JobError;
use sqlx::PgPool;
use std::time::Duration;
use uuid::Uuid;

/// The hex SHA-256 of the build's inputs. Variable values are part of it
/// (they can change the image) but only as a hash, never stored.
pub fn build_key(
    revision: &str,
    plan: &serde_json::Value,
    build_vars: &[(String, String)],
    engine: &str,
) -> String {
    let mut hasher = Sha256::new();
    let input = serde_json::json!({
        "revision": revision,
        "plan": plan,
        "build_vars": build_vars,
        "engine": engine,
        // Bump when the way images are built changes.
        "format": 1,
    });
    hasher.update(input.to_string().as_bytes());
    hex::encode(hasher.finalize())
}

pub struct PreviousBuild {
    pub deployment_id: Uuid,
    pub digest: String,
    pub reference: String,
}

/// The newest deployment of the app with this build key and an image.
pub async fn find(
    pool: &PgPool,
    app_id: Uuid,
    build_key: &str,
) -> Result<Option<PreviousBuild>, JobError> {
    let row: Option<(Uuid, String, String)> = sqlx::query_as(
        "SELECT id, image_digest, image_ref FROM deployments
         WHERE app_id = $1 AND build_key = $2 AND image_digest IS NOT NULL AND image_ref IS NOT NULL
         ORDER BY created_at DESC LIMIT 1",
    )
    .bind(app_id)
    .bind(build_key)
    .fetch_optional(pool)
    .await
    .map_err(|e| JobError::Retryable(format!("database: {e}")))?;
    Ok(row.map(|(deployment_id, digest, reference)| PreviousBuild {
        deployment_id,
        digest,
        reference,
    }))
}

/// Whether the registry still serves the manifest of `reference`
/// (`HOST/REPO@sha256:…`). Any doubt (unreachable, auth required) answers
/// false: building again is always safe.
pub async fn registry_has(registry: &RegistrySettings, reference: &str) -> bool {
    let Some((repository, digest)) = reference.split_once('@') else {
        return false;
    };
    let Some(path) = repository.strip_prefix(&format!("{}/", registry.address)) else {
        return false;
    };
    let scheme = if registry.tls_verify { "https" } else { "http" };
    let url = format!(
        "{scheme}://{}/v2/{path}/manifests/{digest}",
        registry.address
    );
    let Ok(client) = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
    else {
        return false;
    };
    let mut request = client.head(&url).header(
        reqwest::header::ACCEPT,
        "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, \
         application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json",
    );
    if let (Some(user), Some(password)) = (&registry.username, &registry.password) {
        request = request.basic_auth(user, Some(password.expose_secret()));
    }
    matches!(request.send().await, Ok(answer) if answer.status().is_success())
}

#[cfg(test)]
mod tests {
    use super::build_key;
    use serde_json::json;

    #[test]
    fn the_key_changes_with_every_input_and_only_then() {
        let plan = json!({"stack": "node"});
        let vars = vec![("A".to_owned(), "1".to_owned())];
        let key = build_key("commit abc", &plan, &vars, "buildah");
        assert_eq!(key, build_key("commit abc", &plan, &vars, "buildah"));
        assert_ne!(key, build_key("commit abd", &plan, &vars, "buildah"));
        assert_ne!(
            key,
            build_key("commit abc", &json!({"stack": "go"}), &vars, "buildah")
        );
        let other_vars = vec![("A".to_owned(), "2".to_owned())];
        assert_ne!(key, build_key("commit abc", &plan, &other_vars, "buildah"));
        assert_ne!(key, build_key("commit abc", &plan, &vars, "podman"));
    }
}
