//! Server images at the create: a server whose account saves them is
//! created from the image of its kind when one is available (its setup then
//! finds everything done); otherwise, once it is set up and before anything
//! of an app reaches it, its disk is saved as that image. Saving is the
//! account's choice and never fails the server: an image that cannot be
//! saved is deleted, marked failed with the provider's words, and the
//! server goes on.

use super::cloud::failed;
use super::Servers;
use crate::ssh::run_script_as;
use slipway_cloud::catalog::tables::image_storage_per_gb_month;
use slipway_cloud::driver::{CloudDriver, Labels};
use slipway_shared::config::ServerSettings;
use slipway_shared::db::server_images::{
    self, base_mirror_path, ImageState, ServerImageRow, LABEL,
};
use slipway_shared::db::servers::ServerRow;
use slipway_shared::db::targets;
use slipway_shared::job::{JobContext, JobError};
use slipway_shared::ssh::Tunnel;
use slipway_shared::target::EngineKind;
use std::time::{Duration, Instant};

/// The most base images a server image holds (the project's newest).
const BASES_KEPT: i64 = 4;
/// How long pulling one base image onto the server may take.
const BASE_PULL_LIMIT: Duration = Duration::from_secs(600);

/// The labels of image `image`.
pub fn labels(image: &ServerImageRow) -> Labels {
    Labels::from([
        ("managed-by".to_owned(), "slipway".to_owned()),
        (LABEL.to_owned(), image.id.to_string()),
    ])
}

/// The image `server` is to be created from: the one recorded by an earlier
/// attempt, or the available image of its kind when its account saves
/// them (recorded before the create).
pub async fn choose(
    ctx: &JobContext,
    server: &ServerRow,
) -> Result<Option<ServerImageRow>, JobError> {
    let usable = |image: ServerImageRow| {
        (image.state() == Some(ImageState::Available) && image.provider_id.is_some())
            .then_some(image)
    };
    if let Some(id) = server.server_image_id {
        return Ok(server_images::get(&ctx.pool, id).await?.and_then(usable));
    }
    if !server_images::wanted(&ctx.pool, server).await? {
        return Ok(None);
    }
    let Some(image) = server_images::available_for(&ctx.pool, server).await? else {
        return Ok(None);
    };
    server_images::use_for(&ctx.pool, server.id, image.id).await?;
    Ok(Some(image))
}

/// Saves `server` (set up, at the provider as `provider_id`) as the image
/// of its kind, unless it came from one, its account saves none, or one of
/// its kind is saved or being saved.
pub async fn save(
    ctx: &JobContext,
    driver: &dyn CloudDriver,
    server: &ServerRow,
    provider_id: &str,
    public_key: &str,
    servers: &Servers,
) -> Result<(), JobError> {
    let settings = &servers.settings;
    if server.server_image_id.is_some() || !server_images::wanted(&ctx.pool, server).await? {
        return Ok(());
    }
    let Some(image) = server_images::claim(&ctx.pool, server, public_key).await? else {
        return Ok(());
    };
    ctx.logs
        .info(format!(
            "saving server image {} of it: the account's next {} servers in {} start set up (at most {:?})",
            image.name(),
            server.size,
            server.region,
            settings.image_timeout
        ))
        .await;
    if image.provider_id.is_none() {
        keep_bases(ctx, server, servers).await;
    }
    let saved = tokio::select! {
        saved = saving(ctx, driver, &image, provider_id, settings) => saved,
        _ = ctx.cancel.cancelled() => Err(JobError::Cancelled),
    };
    match saved {
        Ok(()) => Ok(()),
        // A crash or a retry: the re-run finds the image by its row.
        Err(JobError::Retryable(message)) => Err(JobError::Retryable(message)),
        Err(error) => {
            let words = error.to_string();
            ctx.logs
                .info(format!(
                    "the server image was not saved ({words}); deleting what there is of it, the server goes on"
                ))
                .await;
            forget(ctx, driver, &image).await?;
            server_images::end(&ctx.pool, image.id, ImageState::Failed, Some(&words)).await?;
            match error {
                JobError::Cancelled => Err(JobError::Cancelled),
                _ => Ok(()),
            }
        }
    }
}

/// Pulls the base images of the project's builds, mirrored in the
/// platform's registry, into the deploy user's storage, so servers made
/// from the image hold their layers. Whatever fails is said and skipped:
/// the image is then saved without it.
async fn keep_bases(ctx: &JobContext, server: &ServerRow, servers: &Servers) {
    let Some(registry) = &servers.settings.registry else {
        ctx.logs
            .info("no SLIPWAY_REGISTRY: the image holds no base image layers")
            .await;
        return;
    };
    let outcome = async {
        let bases = server_images::project_bases(&ctx.pool, server.project_id, BASES_KEPT).await?;
        if bases.is_empty() {
            ctx.logs
                .info("no build of this project names a base image yet: the image holds none")
                .await;
            return Ok(());
        }
        let target_id = server
            .target_id
            .ok_or_else(|| JobError::permanent("server_invalid", "the server has no target yet"))?;
        let target = targets::ssh_target(&ctx.pool, target_id, servers.secrets.as_ref()).await?;
        let files = target.key_files()?;
        let tunnel = Tunnel::open_master(&files.host, &[], std::slice::from_ref(registry))
            .await
            .map_err(|e| e.into_job_error())?;
        let port = tunnel.remote_port(0);
        let (program, tls) = match target.settings.engine.unwrap_or(EngineKind::Podman) {
            EngineKind::Podman => ("podman", " --tls-verify=false"),
            // Docker's daemon takes a registry on loopback without TLS.
            EngineKind::Docker => ("docker", ""),
        };
        for base in bases {
            let mirror = format!("127.0.0.1:{port}/{}", base_mirror_path(&base));
            let started = Instant::now();
            // The script's exit status is not the ssh's: it says how it went.
            let script = format!(
                "if out=$({program} pull --quiet{tls} '{mirror}' 2>&1); then echo pulled=yes; \
                 else echo \"fail=$(printf '%s' \"$out\" | tail -n 2 | tr '\\n' ' ')\"; fi"
            );
            let pulled = run_script_as(&files, "sh -s", &script, BASE_PULL_LIMIT)
                .await
                .and_then(|out| match out.lines().any(|l| l == "pulled=yes") {
                    true => Ok(()),
                    false => Err(JobError::permanent(
                        "pull_failed",
                        out.trim().trim_start_matches("fail=").to_owned(),
                    )),
                });
            match pulled {
                Ok(()) => {
                    ctx.logs
                        .info(format!(
                            "the image holds the layers of base image {base} (pulled in {:.1} s)",
                            started.elapsed().as_secs_f64()
                        ))
                        .await
                }
                Err(error) => {
                    ctx.logs
                        .info(format!("base image {base} not pulled: {error}"))
                        .await
                }
            }
        }
        drop(tunnel);
        Ok::<_, JobError>(())
    }
    .await;
    if let Err(error) = outcome {
        ctx.logs
            .info(format!("the image holds no base image layers: {error}"))
            .await;
    }
}

async fn saving(
    ctx: &JobContext,
    driver: &dyn CloudDriver,
    image: &ServerImageRow,
    provider_id: &str,
    settings: &ServerSettings,
) -> Result<(), JobError> {
    let id = match &image.provider_id {
        Some(id) => id.clone(),
        None => {
            let earlier = driver.list_images(&labels(image)).await.map_err(failed)?;
            let id = match earlier.into_iter().next() {
                Some(found) => found.id,
                None => {
                    driver
                        .create_image(provider_id, &image.name(), &labels(image))
                        .await
                        .map_err(failed)?
                        .id
                }
            };
            server_images::record_provider_id(&ctx.pool, image.id, &id).await?;
            id
        }
    };
    let saved = driver
        .wait_image(&id, settings.image_timeout)
        .await
        .map_err(failed)?;
    let cost = match (image_storage_per_gb_month(driver.provider()), saved.size_gb) {
        (Some((per_gb, _)), Some(gb)) => Some((per_gb.0 as f64 * gb).round() as i64),
        _ => None,
    };
    server_images::mark_available(&ctx.pool, image.id, saved.size_gb, cost).await?;
    ctx.logs
        .info(format!(
            "saved server image {id} ({}, {} a month)",
            saved.size_gb.map_or_else(
                || "size not reported".to_owned(),
                |gb| format!("{gb:.2} GB")
            ),
            cost.map_or_else(
                || "price unknown".to_owned(),
                |e4| format!("EUR {:.4}", e4 as f64 / 10_000.0)
            )
        ))
        .await;
    Ok(())
}

/// Deletes whatever the provider has of `image`.
async fn forget(
    ctx: &JobContext,
    driver: &dyn CloudDriver,
    image: &ServerImageRow,
) -> Result<(), JobError> {
    let mut ids: Vec<String> = image.provider_id.iter().cloned().collect();
    if let Ok(found) = driver.list_images(&labels(image)).await {
        ids.extend(found.into_iter().map(|i| i.id));
    }
    ids.sort();
    ids.dedup();
    for id in ids {
        if let Err(e) = driver.delete_image(&id).await {
            ctx.logs
                .info(format!("could not delete image {id}: {e}"))
                .await;
            return Err(failed(e));
        }
    }
    Ok(())
}

/// A root script that removes, from root's and every home's authorized
/// keys, the key Slipway used on the image's source server (the image
/// carries it; this server has a key of its own). Prints `change=` lines.
pub fn forget_source_key(image: &ServerImageRow) -> String {
    let blob = image
        .source_public_key
        .split_whitespace()
        .nth(1)
        .unwrap_or_default();
    // A key blob is base64: nothing in it needs quoting.
    let body = r#"set -u; k='@KEY@'
[ -n "$k" ] || exit 0
for f in /root/.ssh/authorized_keys /home/*/.ssh/authorized_keys; do
  [ -f "$f" ] && grep -qF "$k" "$f" || continue
  if { grep -vF "$k" "$f" || true; } > "$f.slipway" && cat "$f.slipway" > "$f"; then
    echo "change=removed the image's source server key from $f"
  else echo "fail=cannot rewrite $f"; fi
  rm -f "$f.slipway"
done
echo "found=checked authorized keys"
"#;
    body.replace("@KEY@", blob)
}
