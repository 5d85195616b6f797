//! What every scenario sets up and tears down: a fresh migrated database, a
//! unique queue prefix on the broker (so nothing here can see or
//! disturb anyone else's queues), settings built directly rather than from
//! the environment, a project with a token, probe deployments created
//! through the real `deployments::create`, and the cleanup that deletes the
//! prefix's queues and drops the database.

use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::{Connection, ConnectionProperties};
use slipway_shared::config::{ApiSettings, CommonSettings, WorkerSettings};
use slipway_shared::db::deployments::{self, NewDeployment};
use slipway_shared::egress::OutboundPolicy;
use slipway_shared::job::Stage;
use slipway_shared::probe::ProbeSpec;
use slipway_shared::queue::topology::{self, QueueNames};
use slipway_testkit::TestDb;
use sqlx::PgPool;
use std::net::SocketAddr;
use std::time::Duration;
use uuid::Uuid;

/// The retry tiers the workers use by default; their delay queues are
/// declared per stage and deleted again in [`Env::cleanup`].
pub const RETRY_TIERS: [Duration; 5] = [
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(120),
    Duration::from_secs(600),
];

const AMQP_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Env {
    pub db: TestDb,
    pub prefix: String,
    pub names: QueueNames,
    pub amqp_url: String,
    /// Extra queues a scenario declared outside the topology.
    pub extra_queues: Vec<String>,
}

impl Env {
    pub async fn new(amqp_url: &str) -> anyhow::Result<Env> {
        let db = slipway_testkit::fresh_database().await?;
        let prefix = format!("bench-{}.", slipway_testkit::unique_prefix());
        eprintln!("[bench] database {} queue prefix {prefix}", db.name);
        Ok(Env {
            names: QueueNames::new(prefix.clone()),
            db,
            prefix,
            amqp_url: amqp_url.to_owned(),
            extra_queues: Vec::new(),
        })
    }

    pub fn common(&self) -> CommonSettings {
        CommonSettings {
            database_url: self.db.url.clone().into(),
            amqp_url: self.amqp_url.clone().into(),
            queue_prefix: self.prefix.clone(),
            log_retention: Duration::from_secs(30 * 24 * 3600),
            log_json: false,
        }
    }

    /// The same values `WorkerSettings::from_env` would produce for these
    /// variables, without touching the process environment.
    pub fn worker_settings(&self, worker_id: &str, concurrency: u16) -> WorkerSettings {
        WorkerSettings {
            common: self.common(),
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            concurrency,
            prefetch: concurrency,
            worker_id: worker_id.to_owned(),
            heartbeat_interval: Duration::from_secs(2),
            lease_timeout: Duration::from_secs(12),
            sweep_interval: Duration::from_secs(3),
            stage_timeout: Duration::from_secs(3600),
            max_attempts: 5,
            retry_tiers: RETRY_TIERS.to_vec(),
            shutdown_grace: Duration::from_secs(5),
            probe_command: "sleep".into(),
        }
    }

    pub fn api_settings(&self) -> ApiSettings {
        ApiSettings {
            common: self.common(),
            api_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_token: format!("bench-admin-{}", Uuid::new_v4().simple()).into(),
            secret_key: "ab".repeat(32).into(),
            // The benchmarks' git daemons listen on loopback.
            outbound: OutboundPolicy::new(
                OutboundPolicy::parse_allow("loopback").expect("a known class"),
                Vec::new(),
            ),
            accounts: Default::default(),
            web: Default::default(),
        }
    }

    /// Declares the stages' queues (idempotent, same arguments as the
    /// workers), so the relay can route jobs for a stage nobody consumes.
    pub async fn declare(&self, stages: &[Stage]) -> anyhow::Result<()> {
        let connection = self.connect().await?;
        let channel = connection.create_channel().await?;
        for stage in stages {
            topology::declare_stage(&channel, &self.names, *stage, &RETRY_TIERS).await?;
        }
        let _ = connection.close(200, "declared".into()).await;
        Ok(())
    }

    /// A broker connection; fails after 10 s instead of hanging on a broker
    /// that accepts TCP but never answers the AMQP handshake.
    pub async fn connect(&self) -> anyhow::Result<Connection> {
        let connecting = Connection::connect(&self.amqp_url, ConnectionProperties::default());
        match tokio::time::timeout(AMQP_TIMEOUT, connecting).await {
            Ok(connection) => Ok(connection?),
            Err(_) => anyhow::bail!(
                "RabbitMQ did not complete the AMQP handshake within {AMQP_TIMEOUT:?}"
            ),
        }
    }

    /// Deletes every queue and exchange under this prefix, then drops the
    /// database (terminating any session still connected to it).
    pub async fn cleanup(self) {
        let mut queues = self.extra_queues.clone();
        for stage in Stage::ALL {
            queues.push(self.names.stage(stage));
            queues.push(self.names.dead(stage));
            queues.extend(RETRY_TIERS.iter().map(|t| self.names.delay(stage, *t)));
        }
        let deleting = async {
            let connection = self.connect().await?;
            let channel = connection.create_channel().await?;
            for queue in &queues {
                // Deleting an absent queue is a no-op on RabbitMQ.
                channel
                    .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                    .await?;
            }
            let dlx = self.names.dead_letter_exchange();
            channel
                .exchange_delete(dlx.as_str().into(), ExchangeDeleteOptions::default())
                .await?;
            let _ = connection.close(200, "cleanup".into()).await;
            anyhow::Ok(())
        };
        match tokio::time::timeout(Duration::from_secs(30), deleting).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("[bench] cleanup of queues {}*: {error:#}", self.prefix),
            Err(_) => eprintln!("[bench] cleanup of queues {}* timed out", self.prefix),
        }
        let name = self.db.name.clone();
        self.db.drop_database().await;
        eprintln!(
            "[bench] dropped database {name} and queues {}*",
            self.prefix
        );
    }
}

/// A project row, as `POST /v1/projects` would create it.
pub async fn create_project(pool: &PgPool) -> anyhow::Result<Uuid> {
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO projects (id, name) VALUES ($1, $2)")
        .bind(id)
        .bind(format!("bench-{}", id.simple()))
        .execute(pool)
        .await?;
    Ok(id)
}

/// A project token, stored as its hash like `POST /v1/projects/{id}/tokens`.
pub async fn create_token(pool: &PgPool, project_id: Uuid) -> anyhow::Result<String> {
    let token = slipway_api::auth::new_token();
    sqlx::query(
        "INSERT INTO api_tokens (id, project_id, name, token_sha256, role) VALUES ($1, $2, 'bench', $3, 'owner')",
    )
    .bind(Uuid::now_v7())
    .bind(project_id)
    .bind(slipway_api::auth::hash(&token))
    .execute(pool)
    .await?;
    Ok(token)
}

/// One probe deployment through the real path (as `POST /v1/probes`
/// without an app: one statement, committed on its own).
pub async fn create_probe(
    pool: &PgPool,
    names: &QueueNames,
    project_id: Uuid,
    spec: &ProbeSpec,
) -> anyhow::Result<Uuid> {
    let created = deployments::create_unlaned(
        pool,
        names,
        NewDeployment {
            kind: "probe",
            probe: Some(serde_json::to_value(spec)?),
            app_id: None,
            project_id,
            source: serde_json::json!({}),
        },
    )
    .await?;
    // As the API does: wake this process' relay after the commit.
    slipway_shared::db::outbox::committed();
    Ok(created.id)
}

/// A pool on the scenario's database, sized by the caller.
pub async fn pool(env: &Env, max: u32) -> anyhow::Result<PgPool> {
    // Named like every Slipway process' pool, so the outbox trigger knows
    // this process wakes its own relay.
    let options: sqlx::postgres::PgConnectOptions = env.db.url.parse()?;
    Ok(sqlx::postgres::PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options.application_name(slipway_shared::db::APPLICATION_NAME))
        .await?)
}
