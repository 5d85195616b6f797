//! An install as the API shows it: its status (its server's state while
//! the server is being made), its four steps and their operations, where
//! the app answers and the DNS record a domain needs. Built here from one
//! row, so the rules for steps and statuses live in one place.

use crate::error::ApiError;
use chrono::{DateTime, Utc};
use serde::Serialize;
use slipway_shared::db::installs::{Phase, Step};
use slipway_shared::db::servers::ServerState;
use slipway_shared::DeploymentState;
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

/// Where an install is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InstallStatus {
    /// Accepted; the server's create waits for a worker.
    Pending,
    /// The server is being bought and booted.
    Provisioning,
    /// Slipway sets the server up.
    Configuring,
    /// The app's first deployment runs on the server.
    Deploying,
    /// Slipway checks that the app answers at the server's address.
    Verifying,
    /// The app answers at `app_url`.
    Completed,
    /// A step failed; `error` says which and why.
    Failed,
    /// The app, then the server, are being destroyed.
    Destroying,
    /// Nothing of it is left.
    Destroyed,
}

impl InstallStatus {
    /// A stream of the install ends after one of these.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Destroyed)
    }
}

/// Where a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Pending,
    Running,
    Done,
    Failed,
    /// Its operation was stopped: the install failed at an earlier step
    /// (the app's build, queued with the install, has no server to go
    /// to) or was destroyed.
    Cancelled,
}

impl StepState {
    /// A step that is one operation, from that operation's state.
    fn of_operation(state: Option<&str>) -> StepState {
        match state.and_then(|s| s.parse::<DeploymentState>().ok()) {
            None => StepState::Pending,
            Some(DeploymentState::Live) => StepState::Done,
            Some(DeploymentState::Cancelled) => StepState::Cancelled,
            Some(s) if s.is_terminal() => StepState::Failed,
            Some(_) => StepState::Running,
        }
    }
}

/// One of the four steps.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstallStep {
    /// `provision`, `configure`, `deploy` or `verify`.
    #[schema(example = "provision")]
    pub name: &'static str,
    pub state: StepState,
    /// The deployment that runs the step (its logs at
    /// `/v1/deployments/{id}/logs`): the server's create for `provision`
    /// and `configure`, the app's first deployment, the verify.
    pub operation: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InstallServer {
    pub id: Uuid,
    pub name: String,
    /// The server's own state (`pending` … `ready`, `destroyed`).
    #[schema(example = "ready")]
    pub state: String,
    pub ipv4: Option<String>,
    #[schema(example = "/v1/servers/shop")]
    pub url: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InstallApp {
    pub name: String,
    #[schema(example = "/v1/apps/shop")]
    pub url: String,
}

/// The DNS record that sends the install's domain to its server.
#[derive(Debug, Serialize, ToSchema)]
pub struct DnsRecord {
    #[schema(example = "A")]
    pub r#type: &'static str,
    #[schema(example = "shop.example.com")]
    pub name: String,
    /// The server's address, once it has one.
    pub value: Option<String>,
    pub note: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InstallError {
    #[schema(example = "provider_error")]
    pub code: String,
    pub message: String,
}

/// A one-click install: a server bought for an app, the app deployed on
/// it and checked over HTTP.
#[derive(Debug, Serialize, ToSchema)]
pub struct Install {
    pub id: Uuid,
    pub status: InstallStatus,
    #[schema(example = "hetzner")]
    pub provider: String,
    /// The cloud account's name.
    #[schema(example = "main")]
    pub account: String,
    #[schema(example = "fsn1")]
    pub region: String,
    #[schema(example = "cx22")]
    pub size: String,
    #[schema(example = "production")]
    pub environment: String,
    /// The server's monthly cost as estimated when it was bought, in EUR
    /// with two decimals.
    #[schema(example = "4.35")]
    pub estimated_cost_eur: String,
    pub domain: Option<String>,
    pub server: InstallServer,
    pub app: InstallApp,
    /// `provision`, `configure`, `deploy`, `verify`, in order.
    pub steps: Vec<InstallStep>,
    /// Where the app answers, once completed: `http://DOMAIN/`, or the
    /// server's address for an install without a domain.
    pub app_url: Option<String>,
    /// The record to create for the domain (none without a domain).
    pub dns: Option<DnsRecord>,
    pub error: Option<InstallError>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// What a view is built from: the install, its server and operations.
#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    phase: String,
    failed_step: Option<String>,
    error_code: Option<String>,
    error_message: Option<String>,
    domain: Option<String>,
    environment: String,
    app_name: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
    server_id: Uuid,
    server_name: String,
    server_state: String,
    ipv4: Option<String>,
    provider: String,
    region: String,
    size: String,
    monthly_cost_eur_e4: i64,
    account: String,
    server_operation_id: Option<Uuid>,
    server_operation_state: Option<String>,
    deploy_id: Option<Uuid>,
    deploy_state: Option<String>,
    verify_id: Option<Uuid>,
    verify_state: Option<String>,
}

const SELECT: &str = "SELECT i.id, i.phase, i.failed_step, i.error_code, i.error_message, i.domain,
        i.environment, i.app_name, i.created_at, i.updated_at, i.completed_at,
        s.id AS server_id, s.name AS server_name, s.state AS server_state, s.ipv4, s.provider,
        s.region, s.size, s.monthly_cost_eur_e4, a.name AS account,
        i.server_operation_id, so.state AS server_operation_state,
        i.deploy_id, dd.state AS deploy_state, i.verify_id, vd.state AS verify_state
    FROM installs i JOIN servers s ON s.id = i.server_id
    JOIN cloud_accounts a ON a.id = s.account_id
    LEFT JOIN deployments so ON so.id = i.server_operation_id
    LEFT JOIN deployments dd ON dd.id = i.deploy_id
    LEFT JOIN deployments vd ON vd.id = i.verify_id";

/// The project's install `id`; 404 `not_found` for none.
pub async fn read(
    conn: &mut PgConnection,
    project_id: Uuid,
    id: Uuid,
) -> Result<Install, ApiError> {
    let row: Option<Row> =
        sqlx::query_as(&format!("{SELECT} WHERE i.project_id = $1 AND i.id = $2"))
            .bind(project_id)
            .bind(id)
            .fetch_optional(conn)
            .await?;
    row.map(Row::view)
        .transpose()?
        .ok_or(ApiError::NotFound("install"))
}

/// The project's installs, newest first (one query however many).
pub async fn list(conn: &mut PgConnection, project_id: Uuid) -> Result<Vec<Install>, ApiError> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "{SELECT} WHERE i.project_id = $1 ORDER BY i.created_at DESC LIMIT 500"
    ))
    .bind(project_id)
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(Row::view).collect()
}

impl Row {
    fn view(self) -> Result<Install, ApiError> {
        let phase = Phase::parse(&self.phase)
            .ok_or_else(|| anyhow::anyhow!("an install in unknown phase {}", self.phase))?;
        let server_state = ServerState::parse(&self.server_state);
        let status = match phase {
            Phase::Server => match server_state {
                Some(ServerState::Pending) => InstallStatus::Pending,
                Some(ServerState::Configuring) => InstallStatus::Configuring,
                _ => InstallStatus::Provisioning,
            },
            Phase::Deploying => InstallStatus::Deploying,
            Phase::Verifying => InstallStatus::Verifying,
            Phase::Completed => InstallStatus::Completed,
            Phase::Failed => InstallStatus::Failed,
            Phase::Destroying => InstallStatus::Destroying,
            Phase::Destroyed => InstallStatus::Destroyed,
        };
        let (provision, configure) = self.server_steps(server_state);
        let steps = vec![
            InstallStep {
                name: Step::Provision.as_str(),
                state: provision,
                operation: self.server_operation_id,
            },
            InstallStep {
                name: Step::Configure.as_str(),
                state: configure,
                operation: self.server_operation_id,
            },
            InstallStep {
                name: Step::Deploy.as_str(),
                state: StepState::of_operation(self.deploy_state.as_deref()),
                operation: self.deploy_id,
            },
            InstallStep {
                name: Step::Verify.as_str(),
                state: StepState::of_operation(self.verify_state.as_deref()),
                operation: self.verify_id,
            },
        ];
        let app_url = (status == InstallStatus::Completed)
            .then(|| self.domain.as_ref().or(self.ipv4.as_ref()))
            .flatten()
            .map(|host| format!("http://{host}/"));
        let dns = self.domain.as_ref().map(|domain| DnsRecord {
            r#type: "A",
            name: domain.clone(),
            value: self.ipv4.clone(),
            note: format!(
                "create this record at {domain}'s DNS provider so that the name reaches the server"
            ),
        });
        let error = self.error_code.clone().map(|code| InstallError {
            code,
            message: self.error_message.clone().unwrap_or_default(),
        });
        Ok(Install {
            id: self.id,
            status,
            provider: self.provider,
            account: self.account,
            region: self.region,
            size: self.size,
            environment: self.environment,
            estimated_cost_eur: cents(self.monthly_cost_eur_e4),
            domain: self.domain,
            server: InstallServer {
                id: self.server_id,
                url: format!("/v1/servers/{}", self.server_name),
                name: self.server_name,
                state: self.server_state,
                ipv4: self.ipv4,
            },
            app: InstallApp {
                url: format!("/v1/apps/{}", self.app_name),
                name: self.app_name,
            },
            steps,
            app_url,
            dns,
            error,
            created_at: self.created_at,
            updated_at: self.updated_at,
            completed_at: self.completed_at,
        })
    }

    /// `provision` and `configure`: two parts of the server's create, told
    /// apart by the server's state while it runs and, once it failed, by
    /// the step the install recorded.
    fn server_steps(&self, server_state: Option<ServerState>) -> (StepState, StepState) {
        use StepState::*;
        match StepState::of_operation(self.server_operation_state.as_deref()) {
            Done => (Done, Done),
            // A create stopped by the install's destroy ended it unmade.
            Failed | Cancelled => {
                let configure_failed = match self.failed_step.as_deref().and_then(Step::parse) {
                    Some(step) => step == Step::Configure,
                    // Ended by a destroy: the address says how far it got.
                    None => self.ipv4.is_some(),
                };
                if configure_failed {
                    (Done, Failed)
                } else {
                    (Failed, Pending)
                }
            }
            Pending | Running => match server_state {
                Some(ServerState::Pending) => (Pending, Pending),
                Some(ServerState::Configuring) => (Done, Running),
                _ => (Running, Pending),
            },
        }
    }
}

/// EUR with two decimals from ten-thousandths, rounded half up.
fn cents(e4: i64) -> String {
    let cents = (e4 + 50) / 100;
    format!("{}.{:02}", cents / 100, cents % 100)
}

#[cfg(test)]
mod tests {
    #[test]
    fn costs_show_two_decimals() {
        assert_eq!(super::cents(43_500), "4.35");
        assert_eq!(super::cents(43_549), "4.35");
        assert_eq!(super::cents(43_550), "4.36");
        assert_eq!(super::cents(0), "0.00");
    }
}
