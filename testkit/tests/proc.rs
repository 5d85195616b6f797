//! Checks `Proc` against a stand-in "workspace binary" (a shell script that
//! starts a grandchild), and the polling helpers' timeout messages. Kept in
//! its own test binary because it sets `SLIPWAY_BIN_DIR` process-wide.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use slipway_testkit::{bin_path, process_group_alive, wait_http_ok, wait_until, Proc};

fn fake_bin_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("slipway-fakebin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("fake-worker");
    std::fs::write(
        &script,
        "#!/bin/sh\ntrap 'echo bye; exit 0' TERM\nsleep 300 &\necho \"started with FOO=$FOO\"\nwait\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

#[tokio::test]
async fn proc_lifecycle_and_helpers() {
    let dir = fake_bin_dir();
    std::env::set_var("SLIPWAY_BIN_DIR", &dir);
    assert_eq!(bin_path("fake-worker"), dir.join("fake-worker"));
    assert!(Proc::spawn("no-such-binary", &[]).is_err());

    let envs = [("FOO".to_string(), "bar".to_string())];
    let mut p = Proc::spawn("fake-worker", &envs).unwrap();
    assert!(p.is_running());
    let log = p.log_path().to_path_buf();
    wait_until(Duration::from_secs(5), "startup line in log", || {
        let log = log.clone();
        async move {
            std::fs::read_to_string(log)
                .unwrap_or_default()
                .contains("FOO=bar")
        }
    })
    .await
    .unwrap();
    // SIGKILL takes the whole group down, grandchild `sleep` included.
    let pgid = p.pid() as i32;
    p.sigkill().unwrap();
    assert!(p.wait_exit(Duration::from_secs(5)).await.is_some());
    wait_until(Duration::from_secs(5), "group to die", || async move {
        !process_group_alive(pgid)
    })
    .await
    .unwrap();

    // SIGTERM reaches the process itself, which exits cleanly.
    let mut p = Proc::spawn("fake-worker", &envs).unwrap();
    wait_until(Duration::from_secs(5), "startup", || {
        let log = p.log_path().to_path_buf();
        async move {
            std::fs::read_to_string(log)
                .unwrap_or_default()
                .contains("FOO")
        }
    })
    .await
    .unwrap();
    p.sigterm().unwrap();
    let status = p.wait_exit(Duration::from_secs(5)).await.expect("exits");
    assert!(status.success(), "{status:?}: {}", p.log_tail(5));
    assert!(p.log_tail(1).contains("bye"));
    let pgid = p.pid() as i32;
    drop(p); // kills the orphaned `sleep` left in the group
    wait_until(Duration::from_secs(5), "group to die", || async move {
        !process_group_alive(pgid)
    })
    .await
    .unwrap();

    let err = wait_until(Duration::from_millis(200), "the impossible", || async {
        false
    })
    .await
    .unwrap_err();
    assert!(err.to_string().contains("the impossible"), "{err}");
    let port = slipway_testkit::free_port();
    let err = wait_http_ok(
        &format!("http://127.0.0.1:{port}/"),
        Duration::from_millis(300),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("last:"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}
