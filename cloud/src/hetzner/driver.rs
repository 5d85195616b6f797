//! Hetzner Cloud as a [`CloudDriver`]: servers, SSH keys and firewalls,
//! each create followed by its action polled to the end.

use super::{decode, id_of, labels_of, numeric, Hetzner, PROVIDER};
use crate::driver::{
    gone_is_done, poll_image, CloudDriver, Firewall, Image, ImageStatus, InboundTcp, KeyPair,
    Labels, ProviderKind, Server, ServerRequest, ServerStatus,
};
use crate::error::CloudError;
use async_trait::async_trait;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::time::Instant;

fn server_from(value: &Value) -> Result<Server, CloudError> {
    let word = value["status"].as_str().unwrap_or("unknown").to_owned();
    let status = match word.as_str() {
        "initializing" | "starting" => ServerStatus::Creating,
        "running" => ServerStatus::Running,
        "off" | "stopping" => ServerStatus::Off,
        "deleting" => ServerStatus::Deleting,
        _ => ServerStatus::Other,
    };
    let net = &value["public_net"];
    Ok(Server {
        id: id_of(value)?,
        name: value["name"].as_str().unwrap_or_default().to_owned(),
        status,
        provider_status: word,
        ipv4: net["ipv4"]["ip"].as_str().and_then(|ip| ip.parse().ok()),
        // Hetzner names the server's /64; its first address is `::1`.
        ipv6: net["ipv6"]["ip"]
            .as_str()
            .and_then(|net| net.split('/').next()?.parse().ok())
            .map(|prefix: std::net::Ipv6Addr| (u128::from(prefix) | 1).into()),
        labels: labels_of(value),
    })
}

/// A snapshot: Hetzner gives it no name, its description is what Slipway
/// named it.
fn image_from(value: &Value) -> Result<Image, CloudError> {
    let word = value["status"].as_str().unwrap_or("unknown").to_owned();
    let status = match word.as_str() {
        "creating" => ImageStatus::Creating,
        "available" => ImageStatus::Available,
        _ => ImageStatus::Other,
    };
    Ok(Image {
        id: id_of(value)?,
        name: value["description"].as_str().unwrap_or_default().to_owned(),
        status,
        provider_status: word,
        size_gb: value["image_size"].as_f64(),
        labels: labels_of(value),
    })
}

fn selector(labels: &Labels) -> String {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join(",")
}

#[async_trait]
impl CloudDriver for Hetzner {
    fn provider(&self) -> ProviderKind {
        PROVIDER
    }

    async fn check_credentials(&self) -> Result<(), CloudError> {
        // Servers are the project's own: no token reads them but its own.
        self.get("/servers", &[("per_page", "1".into())])
            .await
            .map(drop)
    }

    async fn create_key(
        &self,
        name: &str,
        public_key: &str,
        labels: &Labels,
    ) -> Result<KeyPair, CloudError> {
        let body = json!({"name": name, "public_key": public_key, "labels": labels});
        let key = self
            .call(reqwest::Method::POST, "/ssh_keys", &[], Some(&body))
            .await?["ssh_key"]
            .clone();
        Ok(KeyPair {
            id: id_of(&key)?,
            name: key["name"].as_str().unwrap_or(name).to_owned(),
            fingerprint: key["fingerprint"].as_str().map(str::to_owned),
        })
    }

    async fn delete_key(&self, id: &str) -> Result<(), CloudError> {
        gone_is_done(
            self.call(
                reqwest::Method::DELETE,
                &format!("/ssh_keys/{id}"),
                &[],
                None,
            )
            .await,
        )
    }

    async fn list_keys(&self, prefix: &str) -> Result<Vec<KeyPair>, CloudError> {
        let keys = self.pages("/ssh_keys", "ssh_keys", &[]).await?;
        keys.iter()
            .filter(|k| k["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
            .map(|k| {
                Ok(KeyPair {
                    id: id_of(k)?,
                    name: k["name"].as_str().unwrap_or_default().to_owned(),
                    fingerprint: k["fingerprint"].as_str().map(str::to_owned),
                })
            })
            .collect()
    }

    async fn create_firewall(
        &self,
        name: &str,
        rules: &[InboundTcp],
        labels: &Labels,
    ) -> Result<Firewall, CloudError> {
        let rules: Vec<Value> = rules
            .iter()
            .map(|InboundTcp(port)| {
                json!({"direction": "in", "protocol": "tcp", "port": port.to_string(),
                       "source_ips": ["0.0.0.0/0", "::/0"]})
            })
            .collect();
        let body = json!({"name": name, "labels": labels, "rules": rules});
        let firewall = self
            .call(reqwest::Method::POST, "/firewalls", &[], Some(&body))
            .await?["firewall"]
            .clone();
        Ok(Firewall {
            id: id_of(&firewall)?,
            name: firewall["name"].as_str().unwrap_or(name).to_owned(),
        })
    }

    async fn delete_firewall(&self, id: &str) -> Result<(), CloudError> {
        gone_is_done(
            self.call(
                reqwest::Method::DELETE,
                &format!("/firewalls/{id}"),
                &[],
                None,
            )
            .await,
        )
    }

    async fn list_firewalls(&self, prefix: &str) -> Result<Vec<Firewall>, CloudError> {
        let firewalls = self.pages("/firewalls", "firewalls", &[]).await?;
        firewalls
            .iter()
            .filter(|f| f["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
            .map(|f| {
                Ok(Firewall {
                    id: id_of(f)?,
                    name: f["name"].as_str().unwrap_or_default().to_owned(),
                })
            })
            .collect()
    }

    async fn create_server(&self, request: &ServerRequest) -> Result<Server, CloudError> {
        let mut body = json!({
            "name": request.name, "server_type": request.size, "image": request.image,
            "location": request.region, "ssh_keys": [numeric(&request.ssh_key)],
            "user_data": request.user_data, "labels": request.labels,
            "start_after_create": true,
            "public_net": {"enable_ipv4": true, "enable_ipv6": true},
        });
        if let Some(firewall) = &request.firewall {
            body["firewalls"] = json!([{"firewall": numeric(firewall)}]);
        }
        let created = self
            .call(reqwest::Method::POST, "/servers", &[], Some(&body))
            .await?;
        server_from(&created["server"])
    }

    async fn get_server(&self, id: &str) -> Result<Option<Server>, CloudError> {
        match self.get(&format!("/servers/{id}"), &[]).await {
            Ok(body) => server_from(&body["server"]).map(Some),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list_servers(&self, labels: &Labels) -> Result<Vec<Server>, CloudError> {
        let query = [("label_selector", selector(labels))];
        let query = if labels.is_empty() {
            &[][..]
        } else {
            &query[..]
        };
        self.pages("/servers", "servers", query)
            .await?
            .iter()
            .map(server_from)
            .collect()
    }

    async fn delete_server(&self, id: &str, limit: Duration) -> Result<(), CloudError> {
        let deadline = Instant::now() + limit;
        let answer = match self
            .call(
                reqwest::Method::DELETE,
                &format!("/servers/{id}"),
                &[],
                None,
            )
            .await
        {
            Err(e) if e.is_not_found() => return Ok(()),
            answer => answer?,
        };
        let action = answer["action"]["id"]
            .as_u64()
            .ok_or_else(|| decode("action"))?;
        self.wait_action(action, deadline, limit).await
    }

    async fn wait_running(&self, id: &str, limit: Duration) -> Result<Server, CloudError> {
        let deadline = Instant::now() + limit;
        let actions = self
            .pages(&format!("/servers/{id}/actions"), "actions", &[])
            .await?;
        for action in &actions {
            let action_id = action["id"].as_u64().ok_or_else(|| decode("action id"))?;
            self.wait_action(action_id, deadline, limit).await?;
        }
        loop {
            let server = self
                .get_server(id)
                .await?
                .ok_or_else(|| CloudError::Failed {
                    provider: PROVIDER,
                    what: "create the server".into(),
                    message: format!("server {id} disappeared while it was being created"),
                })?;
            if server.status == ServerStatus::Running {
                return Ok(server);
            }
            if Instant::now() >= deadline {
                return Err(CloudError::Timeout {
                    provider: PROVIDER,
                    what: format!("starting server {id} (still `{}`)", server.provider_status),
                    limit,
                });
            }
            tokio::time::sleep(self.polling.interval).await;
        }
    }

    async fn create_image(
        &self,
        server_id: &str,
        name: &str,
        labels: &Labels,
    ) -> Result<Image, CloudError> {
        let body = json!({"type": "snapshot", "description": name, "labels": labels});
        let answer = self
            .call(
                reqwest::Method::POST,
                &format!("/servers/{server_id}/actions/create_image"),
                &[],
                Some(&body),
            )
            .await?;
        image_from(&answer["image"])
    }

    async fn get_image(&self, id: &str) -> Result<Option<Image>, CloudError> {
        match self.get(&format!("/images/{id}"), &[]).await {
            Ok(body) => image_from(&body["image"]).map(Some),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list_images(&self, labels: &Labels) -> Result<Vec<Image>, CloudError> {
        let mut query = vec![("type", "snapshot".to_owned())];
        if !labels.is_empty() {
            query.push(("label_selector", selector(labels)));
        }
        self.pages("/images", "images", &query)
            .await?
            .iter()
            .map(image_from)
            .collect()
    }

    async fn delete_image(&self, id: &str) -> Result<(), CloudError> {
        gone_is_done(
            self.call(reqwest::Method::DELETE, &format!("/images/{id}"), &[], None)
                .await,
        )
    }

    async fn wait_image(&self, id: &str, limit: Duration) -> Result<Image, CloudError> {
        poll_image(PROVIDER, id, limit, self.polling.interval, || {
            self.get_image(id)
        })
        .await
    }
}
