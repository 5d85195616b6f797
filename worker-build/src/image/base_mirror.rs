//! The plan's base image mirrored to the registry as `slipway-base/…`
//! ([`base_mirror_path`]): the provision worker pulls it onto a server
//! before saving that server as an image, so the first pull of an app onto
//! a server made from the image finds the base layers there and fetches
//! only the app's own. The layers are the app image's own blobs (the same
//! layers, compressed alike), so the registry stores nothing twice. It is
//! pushed without a local tag of the registry's (see `push_as`). Pushed
//! once per worker process, registry and base; a failure is logged and
//! never fails the build.

use crate::config::BuildSettings;
use slipway_shared::db::server_images::base_mirror_path;
use slipway_shared::logsink::LogHandle;
use std::collections::BTreeSet;
use std::sync::Mutex;
use tokio_util::sync::CancellationToken;

static PUSHED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

pub async fn mirror(
    settings: &BuildSettings,
    base: &str,
    logs: &LogHandle,
    cancel: &CancellationToken,
) {
    let mirror = format!("{}/{}", settings.registry.address, base_mirror_path(base));
    if PUSHED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .contains(&mirror)
    {
        return;
    }
    match super::push_as(settings, base, &mirror, logs, cancel).await {
        Ok(_) => {
            PUSHED.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(mirror);
        }
        Err(error) => {
            logs.info(format!(
                "mirroring the base image {base} to the registry failed ({error}); servers saved as images will not hold its layers"
            ))
            .await
        }
    }
}
