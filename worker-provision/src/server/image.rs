//! Server images at the create: a server whose account saves them is
//! created from the image of its kind when one is available (its setup then
//! finds everything done); otherwise, once it is set up and before anything
//! of an app reaches it, its disk is saved as that image. Saving is the
//! account's choice and never fails the server: an image that cannot be
//! saved is deleted, marked failed with the provider's words, and the
//! server goes on.

use super::cloud::failed;
use slipway_cloud::catalog::tables::image_storage_per_gb_month;
use slipway_cloud::driver::{CloudDriver, Labels};
use slipway_shared::config::ServerSettings;
use slipway_shared::db::server_images::{self, ImageState, ServerImageRow, LABEL};
use slipway_shared::db::servers::ServerRow;
use slipway_shared::job::{JobContext, JobError};

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
    settings: &ServerSettings,
) -> Result<(), JobError> {
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
