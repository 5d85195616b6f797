//! What a deploy is for: the deployment's image, its app and project, the
//! app's runtime settings and its environment (secrets opened here, only
//! to be handed to the container).

use secrecy::ExposeSecret;
use slipway_shared::job::JobError;
use slipway_shared::operation::AppAction;
use slipway_shared::secrets::SecretBox;
use sqlx::PgPool;
use uuid::Uuid;

pub struct DeployTarget {
    pub app_id: Uuid,
    pub app: String,
    pub project: String,
    /// What the build stage recorded; an app operation that runs nothing
    /// (stop, destroy) has none.
    pub image_ref: Option<String>,
    /// The app operation this deployment performs, if it is one.
    pub action: Option<AppAction>,
    /// The app's custom domains, served besides its own host.
    pub domains: Vec<String>,
    pub runtime: RuntimeSettings,
    /// The container's environment: plain and secret variables.
    pub env: Vec<(String, String)>,
    /// Secret values, for redaction of log lines that echo them.
    pub secret_values: Vec<String>,
}

pub use slipway_shared::runtime_settings::{RuntimeSettings, MAX_DRAIN};

fn invalid_runtime(message: String) -> JobError {
    JobError::permanent("invalid_runtime_settings", message)
}

#[derive(sqlx::FromRow)]
struct TargetRow {
    app_id: Option<Uuid>,
    app: Option<String>,
    project: String,
    image_ref: Option<String>,
    runtime_settings: Option<serde_json::Value>,
    source: serde_json::Value,
}

#[derive(sqlx::FromRow)]
struct EnvRow {
    key: String,
    secret: bool,
    value_plain: Option<String>,
    value_sealed: Option<Vec<u8>>,
}

fn database(error: sqlx::Error) -> JobError {
    JobError::Retryable(format!("database: {error}"))
}

impl DeployTarget {
    /// The deployment's app with its environment (secrets opened).
    pub async fn load(
        pool: &PgPool,
        deployment_id: Uuid,
        secrets: Option<&SecretBox>,
    ) -> Result<DeployTarget, JobError> {
        Self::load_app(pool, deployment_id)
            .await?
            .with_env(pool, secrets)
            .await
    }

    /// Adds the app's environment, secrets opened.
    pub async fn with_env(
        mut self,
        pool: &PgPool,
        secrets: Option<&SecretBox>,
    ) -> Result<DeployTarget, JobError> {
        let (env, secret_values) = load_env(pool, self.app_id, secrets).await?;
        self.env = env;
        self.secret_values = secret_values;
        Ok(self)
    }

    /// The deployment's app, image, domains and runtime settings, without
    /// its environment (which a stop or a destroy does not need).
    pub async fn load_app(pool: &PgPool, deployment_id: Uuid) -> Result<DeployTarget, JobError> {
        let row: Option<TargetRow> = sqlx::query_as(
            "SELECT d.app_id, a.name AS app, p.name AS project, d.image_ref, a.runtime_settings,
                    d.source
             FROM deployments d JOIN projects p ON p.id = d.project_id
             LEFT JOIN apps a ON a.id = d.app_id WHERE d.id = $1",
        )
        .bind(deployment_id)
        .fetch_optional(pool)
        .await
        .map_err(database)?;
        let Some(TargetRow {
            app_id: Some(app_id),
            app: Some(app),
            project,
            image_ref,
            runtime_settings,
            source,
        }) = row
        else {
            return Err(JobError::permanent(
                "app_not_found",
                "the deployment's app no longer exists",
            ));
        };
        let runtime = RuntimeSettings::parse(&runtime_settings.unwrap_or_default())
            .map_err(invalid_runtime)?;
        let domains: Vec<String> =
            sqlx::query_scalar("SELECT host FROM app_domains WHERE app_id = $1 ORDER BY host")
                .bind(app_id)
                .fetch_all(pool)
                .await
                .map_err(database)?;
        Ok(DeployTarget {
            app_id,
            app,
            project,
            image_ref,
            action: AppAction::of_source(&source),
            domains,
            runtime,
            env: Vec::new(),
            secret_values: Vec::new(),
        })
    }

    /// The image to run; an error when the build stage recorded none.
    pub fn image(&self) -> Result<&str, JobError> {
        self.image_ref.as_deref().ok_or_else(|| {
            JobError::permanent(
                "no_image",
                "the build stage recorded no image for this deployment",
            )
        })
    }

    /// Every host name the app answers at: its own, then its domains.
    pub fn hosts(&self, base_domain: &str) -> Vec<String> {
        let mut hosts = vec![self.host(base_domain)];
        hosts.extend(self.domains.iter().cloned());
        hosts
    }

    /// The app's host name: `APP.PROJECT.BASE_DOMAIN`.
    pub fn host(&self, base_domain: &str) -> String {
        format!("{}.{}.{}", self.app, self.project, base_domain)
    }
}

/// What must never be stored in the app's logs: the values of its secret
/// variables and the passwords of its database add-ons.
pub async fn hidden_values(
    pool: &PgPool,
    app_id: Uuid,
    secrets: Option<&SecretBox>,
) -> Result<Vec<String>, JobError> {
    let (_, mut values) = load_env(pool, app_id, secrets).await?;
    let addons = slipway_shared::db::addons::for_app(pool, app_id)
        .await
        .map_err(database)?;
    for sealed in addons.iter().filter_map(|a| a.password_sealed.as_deref()) {
        let secrets = secrets.ok_or_else(|| {
            JobError::permanent(
                "secret_key_missing",
                "the app has a database add-on but this deploy worker has no SLIPWAY_SECRET_KEY",
            )
        })?;
        let password = secrets.open(sealed).map_err(|e| {
            JobError::permanent("secret_unreadable", format!("add-on password: {e}"))
        })?;
        values.push(password.expose_secret().to_owned());
    }
    Ok(values)
}

/// Every occurrence of a `hidden` value in `line` replaced.
pub fn redact(hidden: &[String], line: String) -> String {
    hidden
        .iter()
        .filter(|value| value.len() >= 3)
        .fold(line, |line, value| {
            if line.contains(value.as_str()) {
                line.replace(value.as_str(), "[REDACTED]")
            } else {
                line
            }
        })
}

/// The container's environment (plain and opened secret variables) and the
/// secret values, for redaction.
async fn load_env(
    pool: &PgPool,
    app_id: Uuid,
    secrets: Option<&SecretBox>,
) -> Result<(Vec<(String, String)>, Vec<String>), JobError> {
    let vars: Vec<EnvRow> = sqlx::query_as(
        "SELECT key, secret, value_plain, value_sealed FROM app_env_vars WHERE app_id = $1 ORDER BY key",
    )
    .bind(app_id)
    .fetch_all(pool)
    .await
    .map_err(database)?;
    let mut env = Vec::with_capacity(vars.len());
    let mut secret_values = Vec::new();
    for EnvRow {
        key,
        secret,
        value_plain: plain,
        value_sealed: sealed,
    } in vars
    {
        if !secret {
            env.push((key, plain.unwrap_or_default()));
            continue;
        }
        let secrets = secrets.ok_or_else(|| {
            JobError::permanent(
                "secret_key_missing",
                "the app has secret variables but this deploy worker has no SLIPWAY_SECRET_KEY",
            )
        })?;
        let value = secrets
            .open(&sealed.unwrap_or_default())
            .map_err(|e| JobError::permanent("secret_unreadable", format!("secret {key}: {e}")))?;
        secret_values.push(value.expose_secret().to_owned());
        env.push((key, value.expose_secret().to_owned()));
    }
    Ok((env, secret_values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_values_are_redacted_wherever_they_appear() {
        let hidden = vec!["s3cr3t-value".to_owned(), "pw".to_owned()];
        assert_eq!(
            redact(&hidden, "token=s3cr3t-value and again s3cr3t-value".into()),
            "token=[REDACTED] and again [REDACTED]"
        );
        // Values shorter than 3 characters would blank out ordinary text.
        assert_eq!(redact(&hidden, "pwd".into()), "pwd");
    }
}
