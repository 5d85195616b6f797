//! Server setup (`target_setup.v1`): makes a Debian or Ubuntu server an
//! ssh target, over SSH as the user the target was created with (root, or
//! a user with password-less sudo). Named steps, each logged: detect the
//! OS → install the packages missing (the engine, Caddy; from an apt
//! source the request names, or the server's own) → create the deploy
//! user with Slipway's key → prepare the data folder (these two while the
//! packages install, on the same SSH connection) → verify: the target
//! switches to the deploy user and is provisioned as that user (engine,
//! folder, its own Caddy started). Every step only changes what is not so
//! already, so a second run changes nothing and says so. Any other OS is a
//! permanent `unsupported_os`.

mod script;

use crate::ssh::{self, run_script_as};
use async_trait::async_trait;
use slipway_shared::db::target_setup::{self, SetupRequest, SETUP_JOB_KIND};
use slipway_shared::db::targets::{self, Placement, SshTarget};
use slipway_shared::job::{Effects, JobContext, JobError, JobHandler};
use slipway_shared::secrets::SecretBox;
use slipway_shared::ssh::{SshKeyFiles, Tunnel};
use slipway_shared::target::EngineKind;
use std::time::Duration;

/// Installing packages (apt-get update and install) may take minutes.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

pub struct TargetSetup {
    secrets: Option<SecretBox>,
}

impl TargetSetup {
    pub fn new(secrets: Option<SecretBox>) -> Self {
        TargetSetup { secrets }
    }
}

#[async_trait]
impl JobHandler for TargetSetup {
    fn kind(&self) -> &'static str {
        SETUP_JOB_KIND
    }

    async fn run(&self, ctx: &JobContext) -> Result<Effects, JobError> {
        let placement =
            targets::placement(&ctx.pool, ctx.info.deployment_id, self.secrets.as_ref()).await?;
        let Placement::Ssh(target) = placement else {
            return Err(JobError::permanent(
                "setup_unsupported",
                "setup runs on ssh targets; the local target is this host",
            ));
        };
        let request = target_setup::request(&ctx.pool, ctx.info.deployment_id).await?;
        let outcome = tokio::select! {
            outcome = setup(ctx, &target, &request) => outcome,
            _ = ctx.cancel.cancelled() => Err(JobError::Cancelled),
        };
        // The server's state is what it is now: an unreachable server fails
        // the setup at once, as a check does.
        match outcome {
            Err(JobError::Retryable(message)) => {
                Err(JobError::permanent("target_unreachable", message))
            }
            other => other.map(|()| Vec::new()),
        }
    }
}

/// The steps, each logging what it found and changed.
pub(crate) async fn setup(
    ctx: &JobContext,
    target: &SshTarget,
    request: &SetupRequest,
) -> Result<(), JobError> {
    // Setup connects as the user the target names: root the first time,
    // the deploy user on a later run (whose changes, if any are needed, go
    // through `sudo -n`; see `script`).
    let files = target.key_files()?;
    // One connection for the steps, each a session on it rather than a
    // new key exchange and login (~0.2 s apiece). Without it (it failed to
    // open) each step connects on its own and says why it cannot.
    let _connection = Tunnel::open_master(&files.host, &[], &[]).await.ok();
    let run = |script: String, limit: Duration| {
        let files: &SshKeyFiles = &files;
        async move { run_script_as(files, "sh -s", &script, limit).await }
    };
    let mut changes = Vec::new();
    let step = |n: usize, name: &str| format!("setup step {n}/5: {name}");

    ctx.logs.info(step(1, "detect the OS")).await;
    let os = script::Report::parse(&run(script::DETECT_OS.into(), STEP_TIMEOUT).await?);
    let (id, pretty) = (os.value("id"), os.value("name"));
    ctx.logs
        .info(format!(
            "{}: {pretty} (ID={id}, as uid {})",
            target.name,
            os.value("uid")
        ))
        .await;
    if !script::supported(id, os.value("like")) {
        return Err(JobError::permanent(
            "unsupported_os",
            format!(
                "{} runs {} (ID={}); setup supports Debian and Ubuntu",
                target.name,
                if pretty.is_empty() {
                    "an unknown OS"
                } else {
                    pretty
                },
                if id.is_empty() { "none" } else { id }
            ),
        ));
    }

    let engine = target.settings.engine.unwrap_or(EngineKind::Podman);
    let packages = script::packages(engine);
    ctx.logs
        .info(step(
            2,
            &format!("install what is missing of {}", packages.join(" ")),
        ))
        .await;
    let install = async {
        let install = script::install(&packages, request.apt_source.as_deref());
        let report = script::Report::parse(&run(install, INSTALL_TIMEOUT).await?);
        report.fail_on("install_failed")?;
        Ok::<_, JobError>(report)
    };
    // The deploy user and the data folder need none of the packages: they
    // are made while the packages install (the shadow tools and dpkg's
    // own user creations take /etc/passwd's lock in turn).
    let user_and_folder = async {
        let mut changed = Vec::new();
        ctx.logs
            .info(step(
                3,
                &format!("create the deploy user {}", request.deploy_user),
            ))
            .await;
        let key = public_key(&files).await?;
        let user = script::user(&request.deploy_user, &key);
        let report = script::Report::parse(&run(user, STEP_TIMEOUT).await?);
        report.fail_on("user_failed")?;
        report.log(ctx, &mut changed).await;
        ctx.logs
            .info(step(4, &format!("prepare {}", target.settings.data_dir)))
            .await;
        let prepare = script::prepare(&request.deploy_user, &target.settings.data_dir, engine);
        let report = script::Report::parse(&run(prepare, STEP_TIMEOUT).await?);
        report.fail_on("prepare_failed")?;
        report.log(ctx, &mut changed).await;
        Ok::<_, JobError>(changed)
    };
    let (installed, user_and_folder) = tokio::join!(install, user_and_folder);
    // The install's failure first: a user step failing beside it is
    // likelier its consequence than its cause.
    installed?.log(ctx, &mut changes).await;
    changes.extend(user_and_folder?);
    drop(files);

    ctx.logs
        .info(step(5, &format!("verify as {}", request.deploy_user)))
        .await;
    if target_setup::use_deploy_user(&ctx.pool, target.id, &request.deploy_user).await? {
        changes.push(format!(
            "the target now connects as {}",
            request.deploy_user
        ));
    }
    let as_deploy_user = SshTarget {
        id: target.id,
        name: target.name.clone(),
        host: target.host.clone(),
        port: target.port,
        user: request.deploy_user.clone(),
        private_key: target.private_key.clone(),
        known_hosts: target.known_hosts.clone(),
        settings: target.settings.clone(),
        engine_found: target.engine_found,
    };
    ssh::provision(ctx, &as_deploy_user).await?;

    if changes.is_empty() {
        ctx.logs
            .info(format!("setup of {}: nothing to change", target.name))
            .await;
    } else {
        ctx.logs
            .info(format!(
                "setup of {}: changed: {}",
                target.name,
                changes.join(", ")
            ))
            .await;
    }
    Ok(())
}

/// The public half of the target's key (`ssh-keygen -y`), which the
/// deploy user's `authorized_keys` gets.
async fn public_key(files: &SshKeyFiles) -> Result<String, JobError> {
    let out = tokio::process::Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(&files.host.identity_file)
        .output()
        .await
        .map_err(|e| {
            JobError::permanent("ssh_unavailable", format!("cannot run ssh-keygen: {e}"))
        })?;
    let key = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || key.is_empty() || key.contains('\'') || key.contains('\n') {
        return Err(JobError::permanent(
            "target_invalid",
            format!(
                "the target's key has no readable public half: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    Ok(key)
}
