//! How the deploy worker's background tasks (the reconciler, the health
//! monitor, the runtime-log collector) reach the apps they look after: each
//! round groups the apps by target and reaches each target through one
//! [`Site`], the local target first. An ssh target's site is over the
//! target's persistent session (see `session`) while it is up, so a round
//! opens no connection; while it is down, one `ssh -N` process (see
//! [`Site::ssh`]) opened for the round and closed after it. A target
//! that cannot be reached is logged by the caller and skipped for the
//! round; the others go on, and the next round tries it again.

use crate::caddy::CaddyAdmin;
use crate::engine::Engine;
use crate::session::Sessions;
use crate::site::Site;
use slipway_shared::db::targets;
use slipway_shared::job::JobError;
use slipway_shared::local_target::LocalTarget;
use slipway_shared::secrets::SecretBox;
use sqlx::PgPool;
use uuid::Uuid;

/// SQL select item naming the ssh target a release `r` runs on (`NULL`
/// on the local target), as `ssh_target`; needs [`TARGET_JOIN`].
pub const SSH_TARGET_COLUMN: &str = "CASE WHEN t.kind = 'ssh' THEN t.id END AS ssh_target";
/// SQL join of a release `r` to the target it runs on, for
/// [`SSH_TARGET_COLUMN`]. The release's own target, not its app's: an app
/// moved to another target still runs there until its next deploy.
pub const TARGET_JOIN: &str = "LEFT JOIN targets t ON t.id = r.target_id";
/// SQL condition: the release's target still exists (a target may be
/// deleted once no app uses it; what an app left there is not reached).
pub const TARGET_EXISTS: &str = "(r.target_id IS NULL OR t.id IS NOT NULL)";

/// What a background task needs to open the site of any target: the local
/// target's settings, engine and Caddy, and the key that opens the ssh
/// targets' private keys.
#[derive(Clone)]
pub struct Sites {
    pub local: LocalTarget,
    pub engine: Engine,
    pub caddy: CaddyAdmin,
    pub secrets: Option<SecretBox>,
    /// The ssh targets' persistent sessions.
    pub sessions: Sessions,
}

impl Sites {
    pub fn new(local: LocalTarget, secrets: Option<SecretBox>) -> anyhow::Result<Sites> {
        Ok(Sites {
            engine: Engine::local(local.containers_conf.clone()),
            caddy: CaddyAdmin::new(&local.caddy_admin)?,
            local,
            secrets,
            sessions: Sessions::default(),
        })
    }

    /// The site of `ssh_target` (`None`: the local target), connected.
    pub async fn open(&self, pool: &PgPool, ssh_target: Option<Uuid>) -> Result<Site, JobError> {
        match ssh_target {
            None => Ok(Site::local(&self.local, &self.engine, &self.caddy)),
            Some(id) => {
                if let Some(session) = self.sessions.get(id) {
                    return Site::over_session(session, &self.local);
                }
                let target = targets::ssh_target(pool, id, self.secrets.as_ref()).await?;
                Site::ssh(&target, &self.local).await
            }
        }
    }
}

/// `items` grouped by target: the local target's group first, then one
/// group per ssh target; the order within a group is kept.
pub fn by_target<T>(
    items: Vec<T>,
    target: impl Fn(&T) -> Option<Uuid>,
) -> Vec<(Option<Uuid>, Vec<T>)> {
    let mut groups: Vec<(Option<Uuid>, Vec<T>)> = Vec::new();
    for item in items {
        let key = target(&item);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, group)) => group.push(item),
            None => groups.push((key, vec![item])),
        }
    }
    // Stable: the ssh targets keep the order they were first seen in.
    groups.sort_by_key(|(key, _)| key.is_some());
    groups
}

/// How a target is named in log lines.
pub fn describe(ssh_target: Option<Uuid>) -> String {
    match ssh_target {
        None => "the local target".into(),
        Some(id) => format!("ssh target {id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_grouped_by_target_local_first() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let items = vec![
            (1, Some(a)),
            (2, None),
            (3, Some(b)),
            (4, Some(a)),
            (5, None),
        ];
        let groups = by_target(items, |(_, t)| *t);
        let shape: Vec<(Option<Uuid>, Vec<i32>)> = groups
            .into_iter()
            .map(|(k, g)| (k, g.into_iter().map(|(n, _)| n).collect()))
            .collect();
        assert_eq!(
            shape,
            vec![
                (None, vec![2, 5]),
                (Some(a), vec![1, 4]),
                (Some(b), vec![3])
            ]
        );
        assert!(by_target(Vec::<(i32, Option<Uuid>)>::new(), |(_, t)| *t).is_empty());
    }
}
