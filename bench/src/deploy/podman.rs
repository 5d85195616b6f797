//! The podman commands of the `deploy` scenario: counting the app's running
//! containers, removing an image so that the next deploy pulls it, and
//! removing what the run left behind.

use crate::build::images;

pub async fn running_containers(app_id: &str) -> anyhow::Result<usize> {
    let filter = format!("label=io.slipway.app={app_id}");
    let ids = images::engine("podman", &["ps", "-q", "--filter", &filter]).await?;
    Ok(ids.split_whitespace().count())
}

/// Removes the image (every name of it) from local storage, and checks it
/// is gone, so the next deploy of it really pulls.
pub async fn remove_image(reference: &str) -> anyhow::Result<()> {
    let id = images::engine(
        "podman",
        &["image", "inspect", "--format", "{{.Id}}", reference],
    )
    .await?;
    images::engine("podman", &["rmi", "--force", &id]).await?;
    let gone = images::engine("podman", &["image", "exists", reference])
        .await
        .is_err();
    anyhow::ensure!(gone, "{reference} is still in local storage");
    Ok(())
}

pub async fn remove_containers(app_id: &str) {
    let filter = format!("label=io.slipway.app={app_id}");
    if let Ok(ids) = images::engine("podman", &["ps", "-aq", "--filter", &filter]).await {
        for id in ids.split_whitespace() {
            let _ = images::engine("podman", &["rm", "--force", "--time", "0", id]).await;
        }
    }
}

/// Every image of this run's registry (its address has a port of its own).
pub async fn remove_leftovers(registry: &str) {
    let listed = images::engine(
        "podman",
        &[
            "images",
            "--noheading",
            "--format",
            "{{.ID}} {{.Repository}}",
        ],
    )
    .await
    .unwrap_or_default();
    let mut ids: Vec<&str> = listed
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, repo)| repo.starts_with(registry))
        .map(|(id, _)| id)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        let _ = images::engine("podman", &["rmi", "--force", id]).await;
    }
}
