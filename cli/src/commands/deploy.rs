//! `slipway deploy [APP] [--ref REF | --dir PATH]`: a git ref, the app's
//! default ref, or a directory packed (see [`crate::pack`]) and uploaded as
//! a version, then followed until live or failed.

use super::{follow, Ctx};
use crate::args::Deploy;
use crate::client::deployments::Create;
use crate::error::{CliError, Result};
use crate::output::Paint;

pub async fn run(ctx: &Ctx, args: Deploy) -> Result<()> {
    let app = match &args.app {
        Some(app) => app.clone(),
        None => default_app(args.dir.as_deref())?,
    };
    let mut what = Create {
        git_ref: args.r#ref.clone(),
        ..Create::default()
    };
    let label;
    if let Some(dir) = &args.dir {
        let dir = dir.clone();
        let packed = tokio::task::spawn_blocking(move || crate::pack::pack(&dir))
            .await
            .map_err(|e| CliError::Other(e.into()))??;
        let size = packed.bytes.len();
        let files = packed.files;
        let version = ctx.client.upload_version(&app, packed.bytes).await?;
        if !ctx.out.json {
            println!(
                "{} {files} files, {size} bytes → version {} {}",
                ctx.out.paint(Paint::Cyan, "packed"),
                version.id,
                ctx.out
                    .paint(Paint::Dim, &format!("(sha256 {})", &version.sha256[..12])),
            );
        }
        what.version = Some(version.id);
        label = format!("{app}: version {}", version.id);
    } else {
        label = match &args.r#ref {
            Some(r) => format!("{app}: {r}"),
            None => format!("{app}: its default ref"),
        };
    }
    let accepted = ctx.client.deploy(&app, &what).await?;
    let follow = !args.no_follow && (args.follow || ctx.out.interactive);
    follow::maybe_follow(ctx, accepted, follow, &label).await
}

/// Without a name: the directory's (or the working directory's) name.
fn default_app(dir: Option<&std::path::Path>) -> Result<String> {
    let dir = match dir {
        Some(dir) => dir.canonicalize().ok(),
        None => std::env::current_dir().ok(),
    };
    dir.as_deref()
        .and_then(|d| d.file_name())
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| CliError::local("no_app", "name the app: slipway deploy APP"))
}
