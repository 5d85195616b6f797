//! Old images of an app on an ssh target. Each deploy pulls the release's
//! image there by digest, and nothing else would ever remove it: after a
//! deploy, the images of the app's releases on that target beyond the
//! newest `SLIPWAY_IMAGES_KEPT` (and beyond any release that serves or is
//! starting) lose their names there, and the engine drops an image with its
//! last name. Only names of the app's own repository go, so an image other
//! apps (or their containers) still use stays; a rollback to a pruned
//! release pulls it again from the registry, which keeps it. On the local
//! target the build worker's own pruning covers the same storage.

use crate::site::Site;
use slipway_shared::job::JobContext;
use std::collections::HashSet;
use uuid::Uuid;

/// The digests to remove: those of releases past the newest `kept`
/// distinct images, unless a live or starting release uses them. `rows`
/// are `(image_ref, state)`, newest first.
fn digests_to_remove(rows: &[(String, String)], kept: usize) -> HashSet<String> {
    let digest = |image_ref: &str| image_ref.rsplit_once('@').map(|(_, d)| d.to_owned());
    let mut keep: HashSet<String> = rows
        .iter()
        .filter(|(_, state)| state == "live" || state == "starting")
        .filter_map(|(image_ref, _)| digest(image_ref))
        .collect();
    let mut newest = Vec::new();
    for d in rows.iter().filter_map(|(image_ref, _)| digest(image_ref)) {
        if !newest.contains(&d) {
            newest.push(d);
        }
    }
    keep.extend(newest.iter().take(kept).cloned());
    newest.into_iter().filter(|d| !keep.contains(d)).collect()
}

/// The repository path of a reference (`HOST:PORT/slipway/p-app@…` →
/// `/slipway/p-app`), which is the same under every registry address.
fn repository_path(reference: &str) -> Option<&str> {
    let name = reference.split('@').next()?;
    name.find('/').map(|at| &name[at..])
}

/// Removes the app's old images from the site's engine (ssh sites only);
/// what it could not do is logged, never fatal: the release serves.
pub async fn old_images(site: &Site, ctx: &JobContext, app_id: Uuid, kept: usize) {
    let Some(target_id) = site.target_id() else {
        return;
    };
    let (mut removed, failures) = match remove_old(site, ctx, app_id, target_id, kept).await {
        Ok(done) => done,
        Err(error) => {
            ctx.logs
                .info(format!("old images not pruned: {error:#}"))
                .await;
            return;
        }
    };
    for failure in failures {
        ctx.logs.info(failure).await;
    }
    if !removed.is_empty() {
        removed.sort();
        removed.dedup();
        ctx.logs
            .info(format!(
                "pruned {} old image(s) of the app on {} (keeping the newest {kept}): {}",
                removed.len(),
                site.describe(),
                removed.join(", ")
            ))
            .await;
    }
}

/// The digests removed, and a line for each image that could not be.
async fn remove_old(
    site: &Site,
    ctx: &JobContext,
    app_id: Uuid,
    target_id: Uuid,
    kept: usize,
) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT image_ref, state FROM releases WHERE app_id = $1 AND target_id = $2
         ORDER BY created_at DESC",
    )
    .bind(app_id)
    .bind(target_id)
    .fetch_all(&ctx.pool)
    .await
    .map_err(|error| anyhow::anyhow!("database: {error}"))?;
    let remove = digests_to_remove(&rows, kept);
    let Some(repository) = rows.first().and_then(|(r, _)| repository_path(r)) else {
        return Ok(Default::default());
    };
    if remove.is_empty() {
        return Ok(Default::default());
    }
    let (mut removed, mut failures) = (Vec::new(), Vec::new());
    for (repo, digest) in site.engine.image_digests().await? {
        if !remove.contains(&digest) || !repo.ends_with(repository) {
            continue;
        }
        match site.engine.remove_image(&format!("{repo}@{digest}")).await {
            Ok(()) => removed.push(digest),
            Err(error) => failures.push(format!(
                "could not remove old image {repo}@{digest}: {error}"
            )),
        }
    }
    Ok((removed, failures))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(digest: &str, state: &str) -> (String, String) {
        (
            format!("127.0.0.1:5000/slipway/p-a@sha256:{digest}"),
            state.into(),
        )
    }

    #[test]
    fn the_newest_and_the_serving_images_stay() {
        let rows = vec![
            row("5", "live"),
            row("4", "failed"),
            row("3", "stopped"),
            row("2", "stopped"),
            row("1", "stopped"),
        ];
        let mut gone: Vec<String> = digests_to_remove(&rows, 2).into_iter().collect();
        gone.sort();
        assert_eq!(gone, ["sha256:1", "sha256:2", "sha256:3"]);
        // A rollback: the newest release runs an old image, which stays,
        // and a repeated image counts once.
        let rows = vec![row("1", "live"), row("3", "stopped"), row("1", "stopped")];
        assert_eq!(
            digests_to_remove(&rows, 1),
            HashSet::from(["sha256:3".to_string()])
        );
        // A live release older than the kept ones keeps its image.
        let rows = vec![row("3", "failed"), row("2", "stopped"), row("1", "live")];
        assert_eq!(
            digests_to_remove(&rows, 1),
            HashSet::from(["sha256:2".to_string()])
        );
    }

    #[test]
    fn repositories_are_compared_without_the_registry_address() {
        assert_eq!(
            repository_path("127.0.0.1:41234/slipway/p-a@sha256:1"),
            Some("/slipway/p-a")
        );
        assert_eq!(
            repository_path("127.0.0.1:5000/slipway/p-a"),
            Some("/slipway/p-a")
        );
    }
}
