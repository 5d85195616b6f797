//! Operations on a deployed app (stop, start, restart, scale) and cancel:
//! each is a deployment of its own, followed until done unless
//! `--no-follow`.

use super::{follow, Ctx};
use crate::args::{Operate, Scale};
use crate::client::apps::Action;
use crate::error::Result;

pub async fn act(ctx: &Ctx, op: Operate, action: Action) -> Result<()> {
    let accepted = ctx.client.operate(&op.app, action).await?;
    let label = format!("{}: {}", op.app, action.as_str());
    follow::maybe_follow(ctx, accepted, !op.no_follow, &label).await
}

pub async fn scale(ctx: &Ctx, scale: Scale) -> Result<()> {
    let accepted = ctx.client.scale(&scale.app, scale.replicas).await?;
    let label = format!("{}: scale to {}", scale.app, scale.replicas);
    follow::maybe_follow(ctx, accepted, !scale.no_follow, &label).await
}

pub async fn cancel(ctx: &Ctx, id: uuid::Uuid) -> Result<()> {
    let cancelled = ctx.client.cancel(id).await?;
    if ctx.out.json {
        ctx.out.json(&cancelled);
    } else {
        println!("deployment {id} {}", ctx.out.state(&cancelled.state));
    }
    Ok(())
}
