//! The Slipway API: a thin axum service that validates requests, writes to
//! Postgres and enqueues work through the outbox; it also runs an outbox
//! relay so jobs it creates are published even with no worker up.

pub mod audit;
pub mod auth;
pub mod bootstrap;
pub mod cloud_account;
pub mod credentials;
pub mod dashboard;
pub mod error;
pub mod events;
pub mod extract;
pub mod log_stream;
pub mod mail;
pub mod openapi;
pub mod outbound;
mod retry;
pub mod routes;
pub mod startup;
pub mod state;
pub mod webhook;

use secrecy::ExposeSecret;
use slipway_shared::config::{ApiSettings, ArchiveSettings};
use slipway_shared::db;
use slipway_shared::queue::{relay, topology::QueueNames};
use std::net::SocketAddr;
use tokio_util::sync::CancellationToken;

pub struct Application {
    listener: tokio::net::TcpListener,
    router: axum::Router,
    pool: sqlx::PgPool,
    settings: ApiSettings,
    shutdown: CancellationToken,
}

impl Application {
    /// Migrates the database and binds the listener (port 0 picks one);
    /// archive uploads get the default limits.
    pub async fn build(
        settings: ApiSettings,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Application> {
        Self::build_with(settings, ArchiveSettings::default(), shutdown).await
    }

    pub async fn build_with(
        settings: ApiSettings,
        archives: ArchiveSettings,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Application> {
        let pool = db::pool_with_acquire_timeout(
            &settings.common.database_url,
            32,
            db::API_ACQUIRE_TIMEOUT,
        )?;
        db::migrate(&pool).await?;
        bootstrap::from_env(&pool, &settings.accounts).await?;
        let logs = log_stream::LogHub::start(pool.clone(), shutdown.clone());
        let state = state::AppState {
            pool: pool.clone(),
            names: QueueNames::new(settings.common.queue_prefix.clone()),
            admin_token_hash: auth::hash(settings.admin_token.expose_secret()),
            amqp_url: settings.common.amqp_url.clone(),
            logs: logs.clone(),
            installs: log_stream::LogHub::start_on(
                pool.clone(),
                "slipway_installs",
                shutdown.clone(),
            ),
            events: events::EventHub::start(
                pool.clone(),
                &logs,
                settings.common.log_retention,
                shutdown.clone(),
            ),
            secrets: slipway_shared::secrets::SecretBox::from_hex(&settings.secret_key)?,
            archives,
            outbound: std::sync::Arc::new(settings.outbound.clone()),
            accounts: std::sync::Arc::new(settings.accounts.clone()),
            cloud: state::CloudState {
                endpoints: slipway_shared::config::cloud_endpoints(),
                // Prices change rarely; every read costs rate-limit tokens.
                live_prices: slipway_cloud::catalog::hetzner_live::LiveCache::new(
                    std::time::Duration::from_secs(3600),
                ),
            },
        };
        let listener = tokio::net::TcpListener::bind(settings.api_addr).await?;
        Ok(Application {
            listener,
            router: startup::router_serving(
                state,
                dashboard::Dashboard::new(settings.web.dir.clone()),
            ),
            pool,
            settings,
            shutdown,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until the shutdown token fires.
    pub async fn run(self) -> anyhow::Result<()> {
        tokio::spawn(audit::prune_periodically(
            self.pool.clone(),
            self.settings.accounts.audit_retention,
            self.shutdown.clone(),
        ));
        let relay = tokio::spawn(relay::run(
            self.pool.clone(),
            self.settings.common.amqp_url.clone(),
            self.shutdown.clone(),
        ));
        tracing::info!(addr = %self.listener.local_addr()?, "api listening");
        // The peer's address is the client's (or a trusted proxy's): the
        // audit log and the sign-in limits need it.
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(self.listener, service)
            .with_graceful_shutdown(self.shutdown.cancelled_owned())
            .await?;
        let _ = relay.await;
        Ok(())
    }
}
