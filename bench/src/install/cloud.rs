//! The Hetzner fake of the `install` scenario, whose created servers are
//! real test hosts, run on an OS thread with a Tokio runtime of its own.
//!
//! Why not on the bench's runtime: the fake's create hook boots a test host
//! with blocking calls (`podman run`, `nsenter` and a `thread::sleep` loop
//! for the host's apt repository, a blocking TCP connect for sshd's
//! banner), and its delete drops the host (`podman rm`) inside the handler
//! while the fake's state mutex is held, so every other request to it
//! waits on a blocked thread. On the bench's two-worker runtime those
//! calls take the threads the bench's own polling and child processes
//! need. An earlier session's server scenario hung with the fake inside
//! the bench process; its code is gone, so that cause is likely, not
//! confirmed (one run of this scenario with the fake on the bench's
//! runtime did complete). Here the blocking stays on the fake's threads,
//! and the bench talks to it over HTTP like the fleet does.
//!
//! The create hook is wrapped to record, per server name, when the fake got
//! the create and when its test host answered SSH: the host's boot happens
//! inside the fake's create, so that span is the fake's, not Slipway's.

use chrono::{DateTime, Utc};
use slipway_testkit::cloud_fake::hetzner::FakeHetzner;
use slipway_testkit::cloud_fake::hosts::FakeHosts;
use slipway_testkit::cloud_fake::{AddressHook, CreatedServer};
use std::collections::HashMap;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use tokio::sync::oneshot;

pub const TOKEN: &str = "bench-hetzner-token";

/// When the fake got a server's create and when its host answered SSH.
#[derive(Debug, Clone, Copy)]
pub struct HostMarks {
    pub create_received: DateTime<Utc>,
    pub host_up: DateTime<Utc>,
}

type Marks = Arc<Mutex<HashMap<String, HostMarks>>>;

pub struct FakeCloud {
    /// The API base, `http://127.0.0.1:PORT/v1`.
    pub url: String,
    fake: Option<Arc<FakeHetzner>>,
    hosts: Option<Arc<FakeHosts>>,
    marks: Marks,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeCloud {
    pub fn start() -> anyhow::Result<FakeCloud> {
        let marks = Marks::default();
        let (started_tx, started_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let recorded = marks.clone();
        let thread = std::thread::Builder::new()
            .name("fake-hetzner".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("fake-hetzner-rt")
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = started_tx.send(Err(anyhow::Error::from(error)));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let hosts = FakeHosts::new();
                    let started = FakeHetzner::start_with(TOKEN, marked(&hosts, recorded)).await;
                    let fake = match started {
                        Ok(fake) => Arc::new(fake),
                        Err(error) => {
                            let _ = started_tx.send(Err(error));
                            return;
                        }
                    };
                    let released = hosts.clone();
                    fake.on_delete(Arc::new(move |ip| released.release(ip)));
                    fake.on_images(hosts.image_hooks());
                    if started_tx.send(Ok((fake.clone(), hosts))).is_err() {
                        return;
                    }
                    // Served until the bench is done; the hosts left (none
                    // after a clean run) are removed when the last holder
                    // drops them, here on this thread.
                    let _ = stop_rx.await;
                    drop(fake);
                });
            })?;
        let (fake, hosts) = started_rx
            .recv()
            .map_err(|_| anyhow::anyhow!("the fake's thread ended before it served"))??;
        Ok(FakeCloud {
            url: fake.url(),
            fake: Some(fake),
            hosts: Some(hosts),
            marks,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// What the fake recorded for server `name`'s latest create.
    pub fn marks(&self, name: &str) -> Option<HostMarks> {
        self.marks.lock().unwrap().get(name).copied()
    }

    /// Servers, SSH keys and firewalls the account holds; test hosts running.
    pub fn holdings(&self) -> ((usize, usize, usize), usize) {
        let held = self.fake.as_ref().map_or((0, 0, 0), |f| f.holdings());
        let running = self.hosts.as_ref().map_or(0, |h| h.running());
        (held, running)
    }

    /// Why test hosts failed to boot, if any did.
    /// How many images (snapshots) the fake holds.
    pub fn images(&self) -> usize {
        self.fake.as_ref().map_or(0, |f| f.images())
    }

    pub fn boot_failures(&self) -> Vec<String> {
        self.hosts
            .as_ref()
            .map(|h| h.failures.lock().unwrap().clone())
            .unwrap_or_default()
    }

    /// Stops the fake and removes any host still running (on the fake's
    /// thread, waited for off the bench's runtime).
    pub async fn stop(mut self) {
        self.fake.take();
        self.hosts.take();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

impl Drop for FakeCloud {
    fn drop(&mut self) {
        // Not stopped (an early error): the thread still removes its hosts.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The hosts' create hook, recording when each create began and ended.
fn marked(hosts: &Arc<FakeHosts>, marks: Marks) -> AddressHook {
    let boot = hosts.hook();
    Arc::new(move |created: CreatedServer| {
        let (boot, marks) = (boot.clone(), marks.clone());
        Box::pin(async move {
            let name = created.name.clone();
            let create_received = Utc::now();
            let address = boot(created).await;
            let host_up = Utc::now();
            marks.lock().unwrap().insert(
                name,
                HostMarks {
                    create_received,
                    host_up,
                },
            );
            address
        })
    })
}
