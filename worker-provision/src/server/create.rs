//! `server_create.v1`: buys a server and makes it an ssh target. Named
//! steps: keys (made once, stored) → key pair → firewall → server (adopted
//! if an earlier attempt's is there, else created and its id recorded at
//! once) → running at the provider (`SLIPWAY_SERVER_RUNNING_TIMEOUT`) →
//! SSH answers with the pinned host key (`SLIPWAY_SERVER_SSH_TIMEOUT`) →
//! registered as a target → set up (the `target_setup` steps). The deploy
//! stage then checks the target as a target check does.
//!
//! A create that fails for good (or is cancelled) deletes everything it
//! made before it fails, unless a destroy has taken over (which removes it
//! all itself, after waiting for this create to end).

use super::cloud::{driver, failed};
use super::image;
use super::keys;
use super::resources::{firewall_name, key_name, labels, remove_all};
use super::target;
use super::Servers;
use async_trait::async_trait;
use secrecy::ExposeSecret;
use slipway_cloud::driver::{CloudDriver, InboundTcp, ServerRequest};
use slipway_shared::db::servers::{
    self, advance, of_operation, record, Recorded, ServerRow, ServerState, CREATE_JOB_KIND,
};
use slipway_shared::job::{Effects, JobContext, JobError, JobHandler};
use std::sync::Arc;

pub struct ServerCreate(pub Arc<Servers>);

#[async_trait]
impl JobHandler for ServerCreate {
    fn kind(&self) -> &'static str {
        CREATE_JOB_KIND
    }

    async fn run(&self, ctx: &JobContext) -> Result<Effects, JobError> {
        let servers = &self.0;
        let server = of_operation(&ctx.pool, ctx.info.deployment_id).await?;
        still_wanted(ctx, server.id).await?;
        advance(
            &ctx.pool,
            server.id,
            &[ServerState::Pending],
            ServerState::Provisioning,
        )
        .await?;
        let driver = driver(
            &ctx.pool,
            server.account_id,
            servers.secrets.as_ref(),
            &servers.settings,
            &servers.policy,
        )
        .await?;
        let outcome = self.create(ctx, &server, &*driver).await;
        match outcome {
            Ok(()) => Ok(Vec::new()),
            // A re-run adopts what this attempt made.
            Err(JobError::Retryable(message)) => Err(JobError::Retryable(message)),
            Err(error) => {
                self.give_up(ctx, server.id, &*driver).await?;
                Err(error)
            }
        }
    }
}

impl ServerCreate {
    async fn create(
        &self,
        ctx: &JobContext,
        server: &ServerRow,
        driver: &dyn CloudDriver,
    ) -> Result<(), JobError> {
        let settings = &self.0.settings;
        let server = self.ensure_keys(ctx, server).await?;
        let (host_private, client_private) = self.0.open_keys(&server)?;
        let host_public = server.host_public_key.clone().unwrap_or_default();
        let client_public = keys_public(&client_private).await?;

        ctx.logs.info("step 1/6: key pair and firewall").await;
        let key = match &server.key_provider_id {
            Some(id) => id.clone(),
            None => {
                let name = key_name(server.id);
                let found = driver.list_keys(&name).await.map_err(failed)?;
                let id = match found.into_iter().find(|k| k.name == name) {
                    Some(key) => key.id,
                    None => {
                        driver
                            .create_key(&name, &client_public, &labels(server.id))
                            .await
                            .map_err(failed)?
                            .id
                    }
                };
                record(&ctx.pool, server.id, Recorded::KeyId, Some(&id)).await?;
                id
            }
        };
        let firewall = match &server.firewall_provider_id {
            Some(id) => id.clone(),
            None => {
                let name = firewall_name(server.id);
                let found = driver.list_firewalls(&name).await.map_err(failed)?;
                let id = match found.into_iter().find(|f| f.name == name) {
                    Some(firewall) => firewall.id,
                    None => {
                        let rules = [
                            InboundTcp(settings.ssh_port),
                            InboundTcp(80),
                            InboundTcp(443),
                        ];
                        driver
                            .create_firewall(&name, &rules, &labels(server.id))
                            .await
                            .map_err(failed)?
                            .id
                    }
                };
                record(&ctx.pool, server.id, Recorded::FirewallId, Some(&id)).await?;
                id
            }
        };

        ctx.logs.info("step 2/6: the server at the provider").await;
        let from_image = image::choose(ctx, &server).await?;
        let provider_id = match &server.provider_id {
            Some(id) => {
                ctx.logs
                    .info(format!("adopting server {id} (recorded)"))
                    .await;
                id.clone()
            }
            None => {
                let found = driver
                    .list_servers(&labels(server.id))
                    .await
                    .map_err(failed)?;
                let id = match found.into_iter().next() {
                    Some(adopted) => {
                        ctx.logs
                            .info(format!(
                                "adopting server {} that an earlier attempt made",
                                adopted.id
                            ))
                            .await;
                        adopted.id
                    }
                    None => {
                        let image = match &from_image {
                            Some(saved) => {
                                ctx.logs
                                    .info(format!(
                                        "from server image {} (saved {}): its setup is done",
                                        saved.name(),
                                        saved.created_at.format("%Y-%m-%d %H:%M UTC")
                                    ))
                                    .await;
                                saved.provider_id.clone().unwrap_or_default()
                            }
                            None => server.image.clone(),
                        };
                        let request = ServerRequest {
                            name: server.name.clone(),
                            region: server.region.clone(),
                            size: server.size.clone(),
                            image,
                            ssh_key: key,
                            user_data: keys::user_data(&host_private, &host_public),
                            firewall: Some(firewall),
                            labels: labels(server.id),
                        };
                        let made = driver.create_server(&request).await.map_err(failed)?;
                        ctx.logs
                            .info(format!("the provider accepted server {}", made.id))
                            .await;
                        made.id
                    }
                };
                // Before anything else: a re-run must find it.
                record(&ctx.pool, server.id, Recorded::ProviderId, Some(&id)).await?;
                id
            }
        };
        still_wanted(ctx, server.id).await?;

        ctx.logs
            .info(format!(
                "step 3/6: wait for the server to run (at most {:?})",
                settings.running_timeout
            ))
            .await;
        let running = tokio::select! {
            running = driver.wait_running(&provider_id, settings.running_timeout) => running.map_err(failed)?,
            _ = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
        };
        let ipv4 = running.ipv4.ok_or_else(|| {
            JobError::permanent(
                "server_without_address",
                format!("the provider gave server {provider_id} no public IPv4"),
            )
        })?;
        record(
            &ctx.pool,
            server.id,
            Recorded::Ipv4,
            Some(&ipv4.to_string()),
        )
        .await?;
        let ipv6 = running.ipv6.map(|a| a.to_string());
        record(&ctx.pool, server.id, Recorded::Ipv6, ipv6.as_deref()).await?;
        still_wanted(ctx, server.id).await?;
        advance(
            &ctx.pool,
            server.id,
            &[ServerState::Provisioning],
            ServerState::Configuring,
        )
        .await?;

        let host = ipv4.to_string();
        ctx.logs
            .info(format!(
                "step 4/6: wait for SSH at {host}:{} with the host key Slipway gave it (at most {:?})",
                settings.ssh_port, settings.ssh_timeout
            ))
            .await;
        let known_hosts = keys::known_hosts(&host, settings.ssh_port, &host_public);
        tokio::select! {
            ready = target::wait_for_ssh(&host, settings.ssh_port, &client_private, &known_hosts, settings.ssh_timeout) => ready?,
            _ = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
        }

        ctx.logs
            .info("step 5/6: register it as an ssh target")
            .await;
        let target_id = target::register(
            &ctx.pool,
            ctx.info.deployment_id,
            &server,
            &host,
            settings.ssh_port,
            &known_hosts,
        )
        .await?;
        still_wanted(ctx, server.id).await?;

        ctx.logs.info("step 6/6: set it up").await;
        if let Some(saved) = &from_image {
            let script = image::forget_source_key(saved);
            target::run_as_root(
                ctx,
                &host,
                settings.ssh_port,
                &client_private,
                &known_hosts,
                &script,
            )
            .await?;
        }
        tokio::select! {
            done = target::set_up(ctx, target_id, self.0.secrets.as_ref(), settings) => done,
            _ = ctx.cancel.cancelled() => Err(JobError::Cancelled),
        }?;
        // Saved before the deploy stage lets anything of an app on it.
        still_wanted(ctx, server.id).await?;
        let server = of_operation(&ctx.pool, ctx.info.deployment_id).await?;
        image::save(ctx, driver, &server, &provider_id, &client_public, &self.0).await
    }

    /// The keys, made by the first attempt and kept.
    async fn ensure_keys(
        &self,
        ctx: &JobContext,
        server: &ServerRow,
    ) -> Result<ServerRow, JobError> {
        if server.host_key_sealed.is_some() {
            return Ok(server.clone());
        }
        let secrets = self.0.secrets()?;
        let host = keys::generate(&format!("slipway-server-{}", server.id)).await?;
        let client = keys::generate(&format!("slipway@{}", server.name)).await?;
        servers::store_keys(
            &ctx.pool,
            server.id,
            &secrets.seal(&host.private),
            &host.public,
            &secrets.seal(&client.private),
        )
        .await?;
        of_operation(&ctx.pool, ctx.info.deployment_id).await
    }

    /// Deletes what this create made, unless a destroy has taken over.
    async fn give_up(
        &self,
        ctx: &JobContext,
        id: uuid::Uuid,
        driver: &dyn CloudDriver,
    ) -> Result<(), JobError> {
        let server = of_operation(&ctx.pool, ctx.info.deployment_id).await?;
        if matches!(
            server.state(),
            Some(ServerState::Destroying | ServerState::Destroyed)
        ) {
            return Ok(());
        }
        ctx.logs
            .info("the create failed: deleting everything it made")
            .await;
        remove_all(ctx, driver, &server, self.0.settings.delete_timeout).await?;
        target::unregister(&ctx.pool, id).await
    }
}

/// Fails the create when a destroy of its server was asked for: the
/// destroy removes what the create made once the create has ended.
async fn still_wanted(ctx: &JobContext, id: uuid::Uuid) -> Result<(), JobError> {
    let state: Option<String> = sqlx::query_scalar("SELECT state FROM servers WHERE id = $1")
        .bind(id)
        .fetch_optional(&ctx.pool)
        .await
        .map_err(servers::database)?;
    match state.as_deref().and_then(ServerState::parse) {
        Some(ServerState::Destroying | ServerState::Destroyed) | None => Err(JobError::permanent(
            "server_destroyed",
            "the server is being destroyed; the destroy removes what this create made",
        )),
        _ => Ok(()),
    }
}

/// The public half of the client key, for the provider's key pair.
async fn keys_public(private: &secrecy::SecretString) -> Result<String, JobError> {
    target::public_half(private.expose_secret()).await
}
