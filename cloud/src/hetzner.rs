//! Hetzner Cloud (`https://api.hetzner.cloud/v1`, bearer token): servers,
//! SSH keys and firewalls, their actions (`running` → `success` | `error`)
//! polled through `GET /actions/{id}`, pages followed through
//! `meta.pagination.next_page`, labels selected by `label_selector`; and
//! the reads the catalog prices from (`/locations`, `/server_types`,
//! `/pricing`).

use crate::driver::{
    CloudDriver, Firewall, InboundTcp, KeyPair, Labels, Polling, ProviderKind, Server,
    ServerRequest, ServerStatus,
};
use crate::error::CloudError;
use crate::http::{Http, RetryPolicy};
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::time::Instant;

const PROVIDER: ProviderKind = ProviderKind::Hetzner;
const PER_PAGE: u32 = 50;

pub struct Hetzner {
    http: Http,
    base: String,
    token: SecretString,
    polling: Polling,
}

impl Hetzner {
    pub const ENDPOINT: &'static str = "https://api.hetzner.cloud/v1";

    /// `endpoint`: the API's base URL, `…/v1` (the public one when `None`).
    pub fn new(
        endpoint: Option<&str>,
        token: SecretString,
        retry: RetryPolicy,
        polling: Polling,
    ) -> Result<Hetzner, CloudError> {
        Ok(Hetzner {
            http: Http::new(PROVIDER, retry)?,
            base: endpoint
                .unwrap_or(Self::ENDPOINT)
                .trim_end_matches('/')
                .to_owned(),
            token,
            polling,
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, CloudError> {
        let url = format!("{}{path}", self.base);
        self.http
            .json(|client| {
                let request = client
                    .request(method.clone(), &url)
                    .bearer_auth(self.token.expose_secret())
                    .query(query);
                match body {
                    Some(body) => request.json(body),
                    None => request,
                }
            })
            .await
    }

    async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, CloudError> {
        self.call(reqwest::Method::GET, path, query, None).await
    }

    /// Every item under `key` of every page.
    pub async fn pages(
        &self,
        path: &str,
        key: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<Value>, CloudError> {
        let mut items = Vec::new();
        let mut page = 1u64;
        loop {
            let mut query = query.to_vec();
            query.push(("page", page.to_string()));
            query.push(("per_page", PER_PAGE.to_string()));
            let body = self.get(path, &query).await?;
            let list = body[key].as_array().ok_or_else(|| decode(key))?;
            items.extend(list.iter().cloned());
            match body["meta"]["pagination"]["next_page"].as_u64() {
                Some(next) if next > page => page = next,
                _ => return Ok(items),
            }
        }
    }

    /// Polls an action until it ends; its error in Hetzner's words.
    async fn wait_action(
        &self,
        id: u64,
        deadline: Instant,
        limit: Duration,
    ) -> Result<(), CloudError> {
        loop {
            let action = self.get(&format!("/actions/{id}"), &[]).await?["action"].clone();
            let command = action["command"].as_str().unwrap_or("action").to_owned();
            match action["status"].as_str() {
                Some("success") => return Ok(()),
                Some("error") => {
                    return Err(CloudError::Failed {
                        provider: PROVIDER,
                        what: command,
                        message: action["error"]["message"]
                            .as_str()
                            .unwrap_or("the action failed")
                            .to_owned(),
                    })
                }
                _ if Instant::now() >= deadline => {
                    return Err(CloudError::Timeout {
                        provider: PROVIDER,
                        what: command,
                        limit,
                    })
                }
                _ => tokio::time::sleep(self.polling.interval).await,
            }
        }
    }

    pub async fn locations(&self) -> Result<Vec<Value>, CloudError> {
        self.pages("/locations", "locations", &[]).await
    }

    pub async fn server_types(&self) -> Result<Vec<Value>, CloudError> {
        self.pages("/server_types", "server_types", &[]).await
    }

    pub async fn pricing(&self) -> Result<Value, CloudError> {
        Ok(self.get("/pricing", &[]).await?["pricing"].clone())
    }
}

fn decode(what: &str) -> CloudError {
    CloudError::Decode {
        provider: PROVIDER,
        detail: format!("no `{what}` in the answer"),
    }
}

/// Hetzner ids are integers; the trait carries them as text.
fn numeric(id: &str) -> Value {
    id.parse::<u64>().map_or_else(|_| json!(id), |n| json!(n))
}

fn id_of(value: &Value) -> Result<String, CloudError> {
    value["id"]
        .as_u64()
        .map(|id| id.to_string())
        .ok_or_else(|| decode("id"))
}

fn labels_of(value: &Value) -> Labels {
    value["labels"]
        .as_object()
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

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
}

/// A delete of what is already gone has done its job.
fn gone_is_done(result: Result<Value, CloudError>) -> Result<(), CloudError> {
    match result {
        Err(e) if e.is_not_found() => Ok(()),
        other => other.map(drop),
    }
}
