//! Named volumes that outlive releases stay writable when the image's user
//! changes: generated images run as `1000:1000`, and a volume an earlier
//! release (running as root) made holds root's files.
//!
//! podman mounts each volume with `:U`, which chowns its contents to the
//! container's user at the start (a walk over every file of the volume on
//! each start, so its cost grows with the file count). Docker has no such
//! option: before the start a one-shot container of the same image, run as
//! root, chowns the volumes to the image's user — only when that user is
//! not root, since root writes anywhere.

use super::{strings, Engine, EngineError, EngineKind, COMMAND_TIMEOUT, RUN_TIMEOUT};

/// The `--volume` value for `volume` mounted at `path`.
pub(super) fn volume_arg(kind: EngineKind, volume: &str, path: &str) -> String {
    match kind {
        EngineKind::Podman => format!("{volume}:{path}:U"),
        EngineKind::Docker => format!("{volume}:{path}"),
    }
}

/// Whether the image's `User` (`""`, `root`, `0`, `0:0`, `1000:1000`,
/// `app`) is someone other than root.
fn runs_unprivileged(user: &str) -> bool {
    let name = user.split(':').next().unwrap_or_default();
    !matches!(name, "" | "root" | "0")
}

/// The argv of Docker's one-shot chown of `volumes` to `user`.
fn chown_argv(image: &str, user: &str, volumes: &[(String, String)]) -> Vec<String> {
    let mut args = strings(&["run", "--rm", "--user", "0:0", "--entrypoint", "chown"]);
    let mounts: Vec<String> = (0..volumes.len())
        .map(|i| format!("/slipway-volume-{i}"))
        .collect();
    for ((volume, _), mount) in volumes.iter().zip(&mounts) {
        args.extend(["--volume".into(), format!("{volume}:{mount}")]);
    }
    args.extend([image.to_owned(), "-R".into(), user.to_owned()]);
    args.extend(mounts);
    args
}

impl Engine {
    /// On Docker, hands the spec's volumes to the image's user (see the
    /// module comment); podman's `:U` does it at the start itself.
    pub(super) async fn own_volumes(
        &self,
        image: &str,
        volumes: &[(String, String)],
    ) -> Result<(), EngineError> {
        if !self.is_docker() || volumes.is_empty() {
            return Ok(());
        }
        let args = strings(&["image", "inspect", "--format", "{{.Config.User}}", image]);
        let user = self.exec_ok(&args, COMMAND_TIMEOUT).await?;
        let user = user.trim();
        if !runs_unprivileged(user) {
            return Ok(());
        }
        let args = chown_argv(image, user, volumes);
        let out = self.exec(&args, &[], RUN_TIMEOUT).await?;
        if out.success {
            Ok(())
        } else {
            Err(self.failed(&args, &out))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_are_handed_to_the_images_user() {
        assert_eq!(
            volume_arg(EngineKind::Podman, "slipway-a-data", "/data"),
            "slipway-a-data:/data:U"
        );
        assert_eq!(
            volume_arg(EngineKind::Docker, "slipway-a-data", "/data"),
            "slipway-a-data:/data"
        );
        for (user, unprivileged) in [
            ("", false),
            ("root", false),
            ("0", false),
            ("0:0", false),
            ("1000:1000", true),
            ("1000", true),
            ("app", true),
        ] {
            assert_eq!(runs_unprivileged(user), unprivileged, "{user:?}");
        }
        let argv = chown_argv(
            "r@sha256:1",
            "1000:1000",
            &[
                ("v1".into(), "/data".into()),
                ("v2".into(), "/cache".into()),
            ],
        );
        assert_eq!(
            argv.join(" "),
            "run --rm --user 0:0 --entrypoint chown --volume v1:/slipway-volume-0 \
             --volume v2:/slipway-volume-1 r@sha256:1 -R 1000:1000 /slipway-volume-0 /slipway-volume-1"
        );
    }
}
