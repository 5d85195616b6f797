//! What the listening check looks at, read on the engine's host (this one,
//! or an ssh target through the same session as every engine command):
//! the container's state and main PID from `inspect`, then that PID's
//! `/proc` files — the TCP tables of the container's network namespace and
//! the process's age. Not a connection to the published port: a port
//! forward or a userspace proxy accepts connections before the app does.

use super::{says_missing, strings, Engine, EngineError, COMMAND_TIMEOUT};
use crate::health::proc_net;
use crate::health::verdict::Observation;

/// Prints each `/proc` file the check reads after a `==> NAME` marker; a
/// file that cannot be read (the process just exited) is left empty.
const READ_PROC: &str = r#"for f in uptime "$1/stat" "$1/net/tcp" "$1/net/tcp6"; do echo "==> $f"; cat "/proc/$f" 2>/dev/null; done"#;

impl Engine {
    /// One look at the container `name` for the listening check.
    pub async fn observe(&self, name: &str) -> Result<Observation, EngineError> {
        let args = strings(&[
            "container",
            "inspect",
            "--format",
            "{{.State.Status}} {{.State.Pid}} {{.State.ExitCode}}",
            name,
        ]);
        let out = self.exec(&args, &[], COMMAND_TIMEOUT).await?;
        if !out.success {
            if says_missing(&out.stderr) {
                return Ok(Observation::Gone);
            }
            return Err(self.failed(&args, &out));
        }
        let bad_output = || EngineError::BadOutput {
            command: format!("{} {}", self.program(), args.join(" ")),
            detail: format!("expected STATUS PID EXITCODE, got {:?}", out.stdout.trim()),
        };
        let mut fields = out.stdout.split_whitespace();
        let (Some(state), Some(pid), Some(code)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(bad_output());
        };
        let (pid, code): (u32, i32) = match (pid.parse(), code.parse()) {
            (Ok(pid), Ok(code)) => (pid, code),
            _ => return Err(bad_output()),
        };
        match state {
            "running" if pid > 0 => {}
            "exited" | "stopped" | "dead" => return Ok(Observation::Exited { code }),
            other => {
                return Ok(Observation::Other {
                    state: other.to_owned(),
                })
            }
        }
        let script = vec!["-c".into(), READ_PROC.into(), "sh".into(), pid.to_string()];
        let out = self
            .exec_program("sh", &script, &[], COMMAND_TIMEOUT)
            .await?;
        let files = proc_files(&out.stdout);
        let file = |suffix: &str| {
            files
                .iter()
                .find(|(name, _)| name.ends_with(suffix))
                .map_or("", |(_, text)| text.as_str())
        };
        let Some(age) = proc_net::process_age(file("uptime"), file("/stat")) else {
            // The process went away between the inspect and the read.
            return Ok(Observation::Other {
                state: "exiting".into(),
            });
        };
        let mut listening = proc_net::listening(file("/net/tcp"));
        listening.extend(proc_net::listening(file("/net/tcp6")));
        Ok(Observation::Running { age, listening })
    }
}

/// Splits [`READ_PROC`]'s output into `(file, text)`.
fn proc_files(stdout: &str) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = Vec::new();
    for line in stdout.lines() {
        match (line.strip_prefix("==> "), files.last_mut()) {
            (Some(name), _) => files.push((name.to_owned(), String::new())),
            (None, Some((_, text))) => {
                text.push_str(line);
                text.push('\n');
            }
            (None, None) => {}
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_output_is_split_by_file() {
        let out = "==> uptime\n12.0 3.0\n==> 42/stat\n42 (x) S\n==> 42/net/tcp\n  sl local\n   0: row\n==> 42/net/tcp6\n";
        let files = proc_files(out);
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["uptime", "42/stat", "42/net/tcp", "42/net/tcp6"]);
        assert_eq!(files[2].1, "  sl local\n   0: row\n");
        assert_eq!(files[3].1, "");
    }
}
