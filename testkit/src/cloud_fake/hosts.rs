//! Created servers that are real test hosts ([`crate::host::TestHost`]):
//! a fake's create boots one at a loopback address of its own
//! (`127.x.y.z`, SSH on 22, HTTP on 80), with the key pair the create
//! named as root's key and the SSH host key from the cloud-init user data
//! (`ssh_keys: ed25519_private/ed25519_public`), and reports that address
//! as the server's IPv4; its delete stops the host. So Slipway's setup
//! runs for real over SSH, pinned to the key it handed over.

use super::{AddressHook, CreatedServer, ImageHooks};
use crate::host::{HostOptions, SavedHost, TestHost};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct FakeHosts {
    hosts: Mutex<BTreeMap<Ipv4Addr, TestHost>>,
    /// Why a boot failed, for the test to show.
    pub failures: Mutex<Vec<String>>,
    boots: Mutex<Vec<std::time::Duration>>,
    /// Saved hosts (the fake's images), by handle.
    saved: Mutex<BTreeMap<String, Arc<SavedHost>>>,
}

impl FakeHosts {
    pub fn new() -> Arc<FakeHosts> {
        Arc::new(FakeHosts::default())
    }

    /// The fake's create hook.
    pub fn hook(self: &Arc<Self>) -> AddressHook {
        let hosts = self.clone();
        Arc::new(move |created: CreatedServer| {
            let hosts = hosts.clone();
            Box::pin(async move { hosts.boot(created).await })
        })
    }

    /// The fake's image hooks: a snapshot saves the host at its address
    /// ([`TestHost::save`]), a server created from it boots from that, the
    /// image's delete removes it.
    pub fn image_hooks(self: &Arc<Self>) -> ImageHooks {
        let saver = self.clone();
        let forgetter = self.clone();
        ImageHooks {
            snapshot: Some(Arc::new(move |ip| {
                let hosts = saver.clone();
                Box::pin(async move {
                    tokio::task::spawn_blocking(move || hosts.save(ip))
                        .await
                        .map_err(|e| e.to_string())?
                })
            })),
            forget: Some(Arc::new(move |handle| {
                let saved = forgetter.saved.lock().unwrap().remove(&handle);
                drop(saved);
            })),
        }
    }

    /// How many saved hosts (images) are kept.
    pub fn saved(&self) -> usize {
        self.saved.lock().unwrap().len()
    }

    fn save(&self, ip: Ipv4Addr) -> Result<String, String> {
        let hosts = self.hosts.lock().unwrap();
        let host = hosts.get(&ip).ok_or_else(|| format!("no host at {ip}"))?;
        let saved = host.save().map_err(|e| e.to_string())?;
        drop(hosts);
        let handle = saved.image.clone();
        self.saved
            .lock()
            .unwrap()
            .insert(handle.clone(), Arc::new(saved));
        Ok(handle)
    }

    /// The fake's delete hook: the host at `ip` goes.
    pub fn release(&self, ip: Ipv4Addr) {
        let host = self.hosts.lock().unwrap().remove(&ip);
        drop(host);
    }

    /// How long each host took from `podman run` to sshd answering.
    pub fn boot_times(&self) -> Vec<std::time::Duration> {
        self.boots.lock().unwrap().clone()
    }

    /// How many hosts run.
    pub fn running(&self) -> usize {
        self.hosts.lock().unwrap().len()
    }

    /// The names of the hosts' containers.
    pub fn containers(&self) -> Vec<String> {
        self.hosts
            .lock()
            .unwrap()
            .values()
            .map(|h| h.name.clone())
            .collect()
    }

    async fn boot(&self, created: CreatedServer) -> Ipv4Addr {
        let address = loopback_address();
        let saved = created
            .snapshot
            .as_ref()
            .and_then(|handle| self.saved.lock().unwrap().get(handle).cloned());
        let options = HostOptions {
            address: Some(address),
            host_key: host_key(&created.user_data),
            authorized_key: created.ssh_keys.first().cloned(),
            saved,
            ..HostOptions::default()
        };
        match TestHost::boot(options).await {
            Ok(host) => {
                self.boots.lock().unwrap().push(host.boot_time);
                self.hosts.lock().unwrap().insert(address, host);
            }
            // The server then never answers SSH: the create times out.
            Err(e) => self.failures.lock().unwrap().push(e.to_string()),
        }
        address
    }
}

/// A loopback address no other host uses: 127.x.y.z with x in 100..200.
pub fn loopback_address() -> Ipv4Addr {
    let n = u32::from_be_bytes(*uuid::Uuid::new_v4().as_bytes().first_chunk().unwrap());
    Ipv4Addr::new(
        127,
        100 + (n % 100) as u8,
        (n >> 8) as u8,
        2 + ((n >> 16) % 250) as u8,
    )
}

/// The host key a cloud-config hands over, if it does.
pub fn host_key(user_data: &str) -> Option<(String, String)> {
    let mut private = String::new();
    let mut public = None;
    let mut in_private = false;
    for line in user_data.lines() {
        if in_private {
            if let Some(content) = line.strip_prefix("    ") {
                private.push_str(content);
                private.push('\n');
                continue;
            }
            in_private = false;
        }
        let trimmed = line.trim_start();
        if trimmed.starts_with("ed25519_private: |") {
            in_private = true;
        } else if let Some(key) = trimmed.strip_prefix("ed25519_public: ") {
            public = Some(key.trim().to_owned());
        }
    }
    Some((private, public?)).filter(|(p, _)| !p.is_empty())
}

/// A hook that gives every server an unused loopback address where
/// nothing answers (a server that never becomes reachable).
pub fn silent_addresses() -> AddressHook {
    Arc::new(|_| Box::pin(async { loopback_address() }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_host_key_is_read_from_cloud_config() {
        let data = "#cloud-config\nssh_keys:\n  ed25519_private: |\n    -----BEGIN-----\n    abc\n    -----END-----\n  ed25519_public: ssh-ed25519 AAAA x\n";
        let (private, public) = super::host_key(data).unwrap();
        assert_eq!(private, "-----BEGIN-----\nabc\n-----END-----\n");
        assert_eq!(public, "ssh-ed25519 AAAA x");
        assert!(super::host_key("#cloud-config\n").is_none());
    }
}
