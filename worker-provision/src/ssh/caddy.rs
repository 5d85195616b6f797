//! The target's own Caddy: its admin API must answer on the target's
//! `caddy_admin` address, checked through an SSH local forward with the
//! admin's own `Host` (Caddy refuses any other with 403). An installed
//! Caddy that does not run is started there, detached from the SSH session
//! (`setsid`), with its state under `DATA_DIR/caddy` and `--resume`, so a
//! Caddy started again after a reboot comes back with the routes it had.

use super::{run_script, Found};
use slipway_shared::db::targets::SshTarget;
use slipway_shared::job::{JobContext, JobError};
use slipway_shared::ssh::SshKeyFiles;
use std::time::{Duration, Instant};

/// How long a started Caddy has to answer.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// What was found, and the change made (a started Caddy), if any.
/// `admin_port`: the port here forwarded to the target's admin API.
pub(super) async fn check(
    files: &SshKeyFiles,
    admin_port: u16,
    target: &SshTarget,
    installed: bool,
    folder_ok: bool,
    ctx: &JobContext,
) -> Result<(Found, Option<String>), JobError> {
    let admin = &target.settings.caddy_admin;
    let what = format!("Caddy admin API {admin} on the target");
    let url = format!("http://127.0.0.1:{admin_port}/config/");
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default();
    let ask = || {
        client
            .get(&url)
            .header(reqwest::header::HOST, admin.as_str())
            .send()
    };
    let result = match ask().await {
        Ok(answer) if answer.status().is_success() => Ok(format!("answers {}", answer.status())),
        Ok(answer) => Err(format!("answers {}", answer.status())),
        Err(_) if installed && folder_ok => {
            ctx.logs
                .info(format!("Caddy does not answer at {admin}; starting it"))
                .await;
            let log = format!("{}/caddy/caddy.log", target.settings.data_dir);
            let pid = run_script(files, &start_script(target)).await?;
            let pid = pid
                .trim()
                .strip_prefix("pid=")
                .unwrap_or_default()
                .to_owned();
            let deadline = Instant::now() + START_TIMEOUT;
            loop {
                if ask().await.is_ok_and(|a| a.status().is_success()) {
                    let change = format!("started Caddy (pid {pid}, log {log})");
                    return Ok((
                        Found {
                            what,
                            result: Ok(format!("answers after {change}")),
                        },
                        Some(change),
                    ));
                }
                if Instant::now() > deadline {
                    break Err(format!(
                        "Caddy is installed but did not answer within {START_TIMEOUT:?} of being started (pid {pid}); see {log} on the target"
                    ));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Err(_) if installed => Err(format!(
            "Caddy is installed but its admin API does not answer; not started, for want of {}",
            target.settings.data_dir
        )),
        Err(_) => Err("Caddy is not installed (apt-get install caddy)".into()),
    };
    Ok((Found { what, result }, None))
}

/// Starts `caddy run` detached; prints `pid=N`. The settings were
/// validated as plain paths and addresses: quoting them is enough.
fn start_script(target: &SshTarget) -> String {
    format!(
        r#"d='{data}/caddy'
mkdir -p "$d" || exit 1
printf '%s' '{{"admin": {{"listen": "{admin}"}}}}' > "$d/caddy.json"
cd "$d" && XDG_DATA_HOME="$d/data" XDG_CONFIG_HOME="$d/config" HOME="$d" \
  setsid caddy run --config "$d/caddy.json" --resume > "$d/caddy.log" 2>&1 < /dev/null &
echo "pid=$!"
"#,
        data = target.settings.data_dir,
        admin = target.settings.caddy_admin
    )
}
