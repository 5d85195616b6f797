//! One-click installs: a server and an app on it, deployed and checked.
//! The API records an install with its server's create and its app's
//! first deployment queued: the app builds while its server is made (a
//! first build takes minutes, a server about as long), and a build that
//! ends first waits, built, for the server ([`waits_for_server`]). From
//! then on the install moves on only when one of its operations ends, in
//! the transaction that ends it ([`follow`], called wherever a deployment
//! ends): the server's create going live places the app on the server's
//! target and sends its deployment on to the server (the provision stage,
//! at once if it is built, else when its build ends); that going live queues the
//! verify (a deployment of kind `install_verify`); the verify going live
//! completes the install. Any of them failing fails the install with that
//! operation's code and message. A destroy removes the app first (through
//! the workers, on the server), then the server.

use crate::db::deployments::{self, create_job, record_event, NewDeployment};
use crate::db::servers;
use crate::job::Stage;
use crate::queue::topology::QueueNames;
use crate::state::DeploymentState;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use std::fmt;
use uuid::Uuid;

/// The verify step's deployment kind, and its provision job (its deploy
/// stage has nothing left to do: `server_done.v1`).
pub const VERIFY_KIND: &str = "install_verify";
pub const VERIFY_JOB_KIND: &str = "install_verify.v1";

/// Where an install is, as stored. While it is [`Phase::Server`] its
/// status as shown is its server's state (`pending`, `provisioning`,
/// `configuring`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The server's create runs.
    Server,
    /// The app's first deployment runs on the new server.
    Deploying,
    /// Slipway checks that the app answers at the server's address.
    Verifying,
    /// The app answers; done.
    Completed,
    /// A step failed (`failed_step`, `error_code`, `error_message`).
    Failed,
    /// The app, then the server, are being destroyed.
    Destroying,
    /// Nothing of it is left.
    Destroyed,
}

impl Phase {
    pub const ALL: [Phase; 7] = [
        Self::Server,
        Self::Deploying,
        Self::Verifying,
        Self::Completed,
        Self::Failed,
        Self::Destroying,
        Self::Destroyed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Server => "server",
            Self::Deploying => "deploying",
            Self::Verifying => "verifying",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Destroying => "destroying",
            Self::Destroyed => "destroyed",
        }
    }

    pub fn parse(value: &str) -> Option<Phase> {
        Self::ALL.into_iter().find(|p| p.as_str() == value)
    }

    /// Nothing more happens to it unless asked (a DELETE).
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Destroyed)
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The steps of an install, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// The server is bought and boots (the server create, up to its
    /// address).
    Provision,
    /// Slipway connects and sets it up (the same operation, after).
    Configure,
    /// The app's first deployment.
    Deploy,
    /// The app answers over HTTP at the server's address.
    Verify,
    /// The teardown (not one of the four steps shown: its failure is the
    /// install's error).
    Destroy,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Provision => "provision",
            Self::Configure => "configure",
            Self::Deploy => "deploy",
            Self::Verify => "verify",
            Self::Destroy => "destroy",
        }
    }

    pub fn parse(value: &str) -> Option<Step> {
        [
            Self::Provision,
            Self::Configure,
            Self::Deploy,
            Self::Verify,
            Self::Destroy,
        ]
        .into_iter()
        .find(|s| s.as_str() == value)
    }
}

/// Which of its install's operations a deployment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    ServerCreate,
    Deploy,
    Verify,
    AppDestroy,
    ServerDestroy,
}

#[derive(sqlx::FromRow)]
struct Ended {
    install_id: Uuid,
    project_id: Uuid,
    server_id: Uuid,
    app_id: Option<Uuid>,
    deploy_id: Option<Uuid>,
    phase: String,
    role: String,
    state: String,
    error_code: Option<String>,
    error_message: Option<String>,
}

/// Moves the install of `ended` (a deployment that just ended, in this
/// transaction) on, if it is one of an install's operations; else nothing.
pub async fn follow(conn: &mut PgConnection, names: &QueueNames, ended: Uuid) -> sqlx::Result<()> {
    let found: Option<Ended> = sqlx::query_as(
        "SELECT i.id AS install_id, i.project_id, i.server_id, i.app_id, i.deploy_id, i.phase,
                CASE WHEN i.server_operation_id = d.id THEN 'server_create'
                     WHEN i.deploy_id = d.id THEN 'deploy'
                     WHEN i.verify_id = d.id THEN 'verify'
                     WHEN i.app_destroy_id = d.id THEN 'app_destroy'
                     ELSE 'server_destroy' END AS role,
                d.state, d.error_code, d.error_message
         FROM deployments d JOIN installs i
           ON i.server_operation_id = d.id OR i.deploy_id = d.id OR i.verify_id = d.id
              OR i.app_destroy_id = d.id OR (d.kind = 'server_destroy' AND i.server_id = d.server_id)
         WHERE d.id = $1
         FOR UPDATE OF i",
    )
    .bind(ended)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(ended) = found else { return Ok(()) };
    let role = match ended.role.as_str() {
        "server_create" => Role::ServerCreate,
        "deploy" => Role::Deploy,
        "verify" => Role::Verify,
        "app_destroy" => Role::AppDestroy,
        _ => Role::ServerDestroy,
    };
    let phase = Phase::parse(&ended.phase)
        .ok_or_else(|| sqlx::Error::Protocol(format!("install phase {}", ended.phase)))?;
    let live = ended.state == DeploymentState::Live.as_str();
    match (role, phase) {
        (Role::ServerCreate, Phase::Server) if live => {
            place_and_deploy(conn, names, &ended).await?;
        }
        (Role::Deploy, Phase::Deploying) if live => {
            let verify = create_verify(conn, names, ended.project_id).await?;
            sqlx::query(
                "UPDATE installs SET phase = 'verifying', verify_id = $2, updated_at = now() WHERE id = $1",
            )
            .bind(ended.install_id)
            .bind(verify)
            .execute(&mut *conn)
            .await?;
        }
        (Role::Verify, Phase::Verifying) if live => {
            sqlx::query(
                "UPDATE installs SET phase = 'completed', completed_at = now(), updated_at = now()
                 WHERE id = $1",
            )
            .bind(ended.install_id)
            .execute(&mut *conn)
            .await?;
        }
        (Role::ServerCreate, Phase::Server) => {
            // The create records the address just before it connects: with
            // one, the setup part failed.
            let ipv4: Option<String> = sqlx::query_scalar("SELECT ipv4 FROM servers WHERE id = $1")
                .bind(ended.server_id)
                .fetch_one(&mut *conn)
                .await?;
            let step = if ipv4.is_some() {
                Step::Configure
            } else {
                Step::Provision
            };
            fail(conn, &ended, step).await?;
            // The app's build, queued with the install, has no server to
            // go to: it ends (running, or waiting built) instead of
            // waiting for ever.
            // (Boxed: the cancel's end comes back here, to be ignored.)
            if let Some(deploy_id) = ended.deploy_id {
                Box::pin(deployments::cancel(
                    conn,
                    names,
                    ended.project_id,
                    deploy_id,
                ))
                .await?;
            }
        }
        // The build, run while the server is made, failed (or was
        // cancelled by the install's destroy, which then says so itself).
        (Role::Deploy, Phase::Deploying | Phase::Server) if !live => {
            fail(conn, &ended, Step::Deploy).await?
        }
        (Role::Verify, Phase::Verifying) => fail(conn, &ended, Step::Verify).await?,
        // The app is gone from the server (or its destroy failed there:
        // the server goes anyway, and what was on it with it).
        (Role::AppDestroy, Phase::Destroying) => {
            if let Some(app_id) = ended.app_id {
                sqlx::query("DELETE FROM apps WHERE id = $1")
                    .bind(app_id)
                    .execute(&mut *conn)
                    .await?;
            }
            servers::queue_destroy(conn, names, ended.project_id, ended.server_id).await?;
            settle(conn, ended.install_id).await?;
        }
        (Role::ServerDestroy, Phase::Destroying) if live => {
            settle(conn, ended.install_id).await?;
        }
        (Role::ServerDestroy, Phase::Destroying) => fail(conn, &ended, Step::Destroy).await?,
        // An operation the install no longer waits for (cancelled by its
        // destroy, or a server destroy asked for directly).
        _ => {}
    }
    Ok(())
}

/// The server is ready: the app goes on its target (a domain-less install
/// answers at the server's address, which becomes one of its hosts) and
/// its first deployment is queued, from its repository as a deploy of its
/// default source would be.
async fn place_and_deploy(
    conn: &mut PgConnection,
    names: &QueueNames,
    ended: &Ended,
) -> sqlx::Result<()> {
    let Some(app_id) = ended.app_id else {
        return fail_with(
            conn,
            ended.install_id,
            Step::Deploy,
            "app_missing",
            "the install's app was deleted",
        )
        .await;
    };
    sqlx::query(
        "UPDATE apps SET target_id = s.target_id, updated_at = now()
         FROM servers s WHERE apps.id = $1 AND s.id = $2",
    )
    .bind(app_id)
    .bind(ended.server_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO app_domains (host, app_id)
         SELECT s.ipv4, $1 FROM servers s, installs i
         WHERE s.id = $2 AND i.id = $3 AND i.domain IS NULL AND s.ipv4 IS NOT NULL
         ON CONFLICT (host) DO NOTHING",
    )
    .bind(app_id)
    .bind(ended.server_id)
    .bind(ended.install_id)
    .execute(&mut *conn)
    .await?;
    let deploy_id = match ended.deploy_id {
        Some(deploy_id) => {
            send_to_server(conn, names, deploy_id).await?;
            deploy_id
        }
        // An install recorded before its first deployment was queued with it.
        None => match first_deploy(conn, names, ended.project_id, app_id).await? {
            Some(deploy_id) => deploy_id,
            None => {
                return fail_with(
                    conn,
                    ended.install_id,
                    Step::Deploy,
                    "no_source",
                    "the install's app has no git_url",
                )
                .await
            }
        },
    };
    sqlx::query(
        "UPDATE installs SET phase = 'deploying', deploy_id = $2, updated_at = now() WHERE id = $1",
    )
    .bind(ended.install_id)
    .bind(deploy_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The app's first deployment, from its repository as a deploy of its
/// default source would be; `None` for an app with no repository. An
/// install queues it with itself (the build runs while the server is
/// made; its provision waits for the server).
pub async fn first_deploy(
    conn: &mut PgConnection,
    names: &QueueNames,
    project_id: Uuid,
    app_id: Uuid,
) -> sqlx::Result<Option<Uuid>> {
    let (git_url, git_ref): (Option<String>, Option<String>) =
        sqlx::query_as("SELECT git_url, git_ref FROM apps WHERE id = $1")
            .bind(app_id)
            .fetch_one(&mut *conn)
            .await?;
    let Some(git_url) = git_url else {
        return Ok(None);
    };
    let created = deployments::create(
        conn,
        names,
        NewDeployment {
            project_id,
            app_id: Some(app_id),
            kind: "app",
            source: deployments::git_source(&git_url, git_ref.as_deref()),
            probe: None,
        },
    )
    .await?;
    Ok(Some(created.id))
}

/// Whether `deployment` is an install's first deployment whose server is
/// still being made: its build ended, and it waits, built, until the
/// server's create going live sends it on ([`follow`]). Called as the
/// build ends, in that transaction; the install's row lock orders it with
/// [`follow`], so the deployment is sent on exactly once.
pub async fn waits_for_server(conn: &mut PgConnection, deployment_id: Uuid) -> sqlx::Result<bool> {
    let phase: Option<String> =
        sqlx::query_scalar("SELECT phase FROM installs WHERE deploy_id = $1 FOR UPDATE")
            .bind(deployment_id)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(phase.as_deref() == Some(Phase::Server.as_str()))
}

/// The server is ready: a deployment waiting built goes on to its
/// provision stage; one still building goes on when its build ends (its
/// [`waits_for_server`] now says no). Its row is read, not locked: the
/// build's end locks this install first, so what it wrote is committed.
async fn send_to_server(
    conn: &mut PgConnection,
    names: &QueueNames,
    deployment_id: Uuid,
) -> sqlx::Result<()> {
    let waiting: Option<(String, String)> = sqlx::query_as(
        "SELECT d.kind, d.trace_id FROM deployments d
         WHERE d.id = $1 AND d.state = 'built'
           AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.deployment_id = d.id AND j.stage = 'provision')",
    )
    .bind(deployment_id)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some((kind, traceparent)) = waiting {
        create_job(
            conn,
            names,
            deployment_id,
            Stage::Provision,
            &kind,
            &traceparent,
        )
        .await?;
    }
    Ok(())
}

/// Queues the verify: a deployment of no app that starts at the
/// provision stage (nothing to build).
async fn create_verify(
    conn: &mut PgConnection,
    names: &QueueNames,
    project_id: Uuid,
) -> sqlx::Result<Uuid> {
    let id = Uuid::now_v7();
    let traceparent = crate::telemetry::new_traceparent();
    sqlx::query(
        "INSERT INTO deployments (id, project_id, kind, state, dispatched, trace_id)
         VALUES ($1, $2, $3, 'built', true, $4)",
    )
    .bind(id)
    .bind(project_id)
    .bind(VERIFY_KIND)
    .bind(&traceparent)
    .execute(&mut *conn)
    .await?;
    record_event(
        conn,
        id,
        None,
        DeploymentState::Built,
        Some("install verify: no build"),
    )
    .await?;
    create_job(conn, names, id, Stage::Provision, VERIFY_KIND, &traceparent).await?;
    Ok(id)
}

async fn fail(conn: &mut PgConnection, ended: &Ended, step: Step) -> sqlx::Result<()> {
    let code = ended.error_code.as_deref().unwrap_or(&ended.state);
    let message = ended
        .error_message
        .clone()
        .unwrap_or_else(|| format!("the {} step was {}", step.as_str(), ended.state));
    fail_with(conn, ended.install_id, step, code, &message).await
}

async fn fail_with(
    conn: &mut PgConnection,
    install_id: Uuid,
    step: Step,
    code: &str,
    message: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE installs SET phase = 'failed', failed_step = $2, error_code = $3, error_message = $4,
                updated_at = now()
         WHERE id = $1",
    )
    .bind(install_id)
    .bind(step.as_str())
    .bind(code)
    .bind(message)
    .execute(conn)
    .await?;
    Ok(())
}

/// A destroying install whose app and server are both gone is destroyed.
pub async fn settle(conn: &mut PgConnection, install_id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE installs i SET phase = 'destroyed', destroyed_at = now(), updated_at = now()
         WHERE i.id = $1 AND i.phase = 'destroying' AND i.app_id IS NULL
           AND EXISTS (SELECT 1 FROM servers s WHERE s.id = i.server_id AND s.state = 'destroyed')",
    )
    .bind(install_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// The state of the server an app's install waits for, while it is not
/// ready (its deploys and starts must wait); `None` for an app of no
/// install or whose server is ready.
pub async fn server_not_ready(
    conn: &mut PgConnection,
    app_id: Uuid,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT s.state FROM installs i JOIN servers s ON s.id = i.server_id
         WHERE i.app_id = $1 AND s.state <> 'ready' LIMIT 1",
    )
    .bind(app_id)
    .fetch_optional(conn)
    .await
}
