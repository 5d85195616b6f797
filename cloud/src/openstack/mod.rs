//! OpenStack in one region (OVHcloud Public Cloud, or any cloud with
//! Keystone v3): Nova servers and key pairs, Neutron security groups as
//! firewalls, Glance for image names. Nova has no actions: a new server is
//! `BUILD` until `ACTIVE` or `ERROR` (with its `fault`), a deleted one is
//! gone when a read answers 404. Lists follow the `…_links` `next` hrefs;
//! metadata is selected here since Nova cannot filter on it. A 401 on a
//! kept token logs in again once.

mod keystone;

pub use keystone::Credentials;

use crate::driver::{
    has_labels, CloudDriver, Firewall, InboundTcp, KeyPair, Labels, Polling, ProviderKind, Server,
    ServerRequest, ServerStatus,
};
use crate::error::CloudError;
use crate::http::{Http, RetryPolicy};
use async_trait::async_trait;
use base64::Engine;
use keystone::Session;
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

const PROVIDER: ProviderKind = ProviderKind::OpenStack;
const PAGE: u32 = 100;

pub struct OpenStack {
    http: Http,
    auth_url: String,
    credentials: Credentials,
    region: String,
    session: Mutex<Option<Session>>,
    polling: Polling,
}

/// The services this driver calls, by catalog type.
#[derive(Clone, Copy)]
enum Service {
    Compute,
    Network,
    Image,
}

impl OpenStack {
    /// OVHcloud's Keystone.
    pub const OVH_AUTH_URL: &'static str = "https://auth.cloud.ovh.net/v3";

    pub fn new(
        auth_url: &str,
        credentials: Credentials,
        region: &str,
        retry: RetryPolicy,
        polling: Polling,
    ) -> Result<OpenStack, CloudError> {
        Ok(OpenStack {
            http: Http::new(PROVIDER, retry)?,
            auth_url: auth_url.trim_end_matches('/').to_owned(),
            credentials,
            region: region.to_owned(),
            session: Mutex::new(None),
            polling,
        })
    }

    async fn session(&self, renew: bool) -> Result<Session, CloudError> {
        let mut kept = self.session.lock().await;
        if let Some(session) = kept.as_ref().filter(|s| !renew && s.fresh()) {
            return Ok(session.clone());
        }
        let session = keystone::authenticate(&self.http, &self.auth_url, &self.credentials).await?;
        *kept = Some(session.clone());
        Ok(session)
    }

    fn base(&self, session: &Session, service: Service) -> Result<String, CloudError> {
        // Neutron and Glance list their unversioned root; Nova's URL is versioned.
        let (kind, version) = match service {
            Service::Compute => ("compute", ""),
            Service::Network => ("network", "/v2.0"),
            Service::Image => ("image", "/v2"),
        };
        let url = session.endpoint(kind, &self.region)?;
        Ok(if url.ends_with(version) {
            url
        } else {
            format!("{url}{version}")
        })
    }

    /// A call to `path` of `service`, or to `path` itself when it is a
    /// whole URL (a `next` link).
    async fn call(
        &self,
        service: Service,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, CloudError> {
        let mut renew = false;
        loop {
            let session = self.session(renew).await?;
            let url = if path.starts_with("http") {
                path.to_owned()
            } else {
                format!("{}{path}", self.base(&session, service)?)
            };
            let result = self
                .http
                .json(|client| {
                    let request = client
                        .request(method.clone(), &url)
                        .header("X-Auth-Token", session.token.expose_secret());
                    match body {
                        Some(body) => request.json(body),
                        None => request,
                    }
                })
                .await;
            match result {
                Err(e) if e.status() == Some(401) && !renew => renew = true,
                other => return other,
            }
        }
    }

    /// Every item under `key`, following `{key}_links` `next`.
    async fn pages(
        &self,
        service: Service,
        path: &str,
        key: &str,
    ) -> Result<Vec<Value>, CloudError> {
        let mut items = Vec::new();
        let mut next = Some(path.to_owned());
        while let Some(path) = next.take() {
            let body = self.call(service, Method::GET, &path, None).await?;
            items.extend(
                body[key]
                    .as_array()
                    .ok_or_else(|| decode(key))?
                    .iter()
                    .cloned(),
            );
            next = body[format!("{key}_links")]
                .as_array()
                .into_iter()
                .flatten()
                .find(|l| l["rel"] == "next")
                .and_then(|l| l["href"].as_str())
                .map(str::to_owned);
        }
        Ok(items)
    }

    /// Logs in and answers the base URLs of the services this driver
    /// calls in its region, as the catalog names them: a caller checks them
    /// against its outbound policy before any call is made to them.
    pub async fn service_urls(&self) -> Result<Vec<String>, CloudError> {
        let session = self.session(true).await?;
        [Service::Compute, Service::Network, Service::Image]
            .into_iter()
            .map(|service| self.base(&session, service))
            .collect()
    }

    async fn flavor_id(&self, size: &str) -> Result<String, CloudError> {
        let flavors = self
            .pages(
                Service::Compute,
                &format!("/flavors?limit={PAGE}"),
                "flavors",
            )
            .await?;
        flavors
            .iter()
            .find(|f| f["name"] == size || f["id"] == size)
            .and_then(|f| f["id"].as_str().map(str::to_owned))
            .ok_or_else(|| not_offered("flavor", size, &self.region))
    }

    async fn image_id(&self, image: &str) -> Result<String, CloudError> {
        let query = serde_urlencoded::to_string([("name", image)]).unwrap_or_default();
        let found = self
            .call(
                Service::Image,
                Method::GET,
                &format!("/images?{query}"),
                None,
            )
            .await?;
        let by_name = found["images"]
            .as_array()
            .and_then(|i| i.first())
            .and_then(|i| i["id"].as_str());
        match by_name {
            Some(id) => Ok(id.to_owned()),
            // Not a name: perhaps already an id.
            None => match self
                .call(
                    Service::Image,
                    Method::GET,
                    &format!("/images/{image}"),
                    None,
                )
                .await
            {
                Ok(found) => Ok(found["id"].as_str().unwrap_or(image).to_owned()),
                Err(e) if e.is_not_found() => Err(not_offered("image", image, &self.region)),
                Err(e) => Err(e),
            },
        }
    }
}

fn decode(what: &str) -> CloudError {
    CloudError::Decode {
        provider: PROVIDER,
        detail: format!("no `{what}` in the answer"),
    }
}

fn not_offered(what: &str, name: &str, region: &str) -> CloudError {
    CloudError::Api {
        provider: PROVIDER,
        status: 404,
        code: format!("{what}NotFound"),
        message: format!("no {what} `{name}` in region `{region}`"),
        retry_after: None,
    }
}

fn server_from(value: &Value) -> Result<Server, CloudError> {
    let word = value["status"].as_str().unwrap_or("UNKNOWN").to_owned();
    let status = match word.as_str() {
        "BUILD" => ServerStatus::Creating,
        "ACTIVE" => ServerStatus::Running,
        "SHUTOFF" | "STOPPED" | "SUSPENDED" | "PAUSED" => ServerStatus::Off,
        "DELETED" | "SOFT_DELETED" => ServerStatus::Deleting,
        "ERROR" => ServerStatus::Error,
        _ => ServerStatus::Other,
    };
    let addresses: Vec<&Value> = value["addresses"]
        .as_object()
        .into_iter()
        .flat_map(|nets| nets.values())
        .flat_map(|list| list.as_array().into_iter().flatten())
        .collect();
    let address = |version: u64| {
        addresses
            .iter()
            .filter(|a| a["version"] == version)
            // A floating (public) address before a fixed one.
            .max_by_key(|a| a["OS-EXT-IPS:type"] == "floating")
            .and_then(|a| a["addr"].as_str())
    };
    Ok(Server {
        id: value["id"].as_str().ok_or_else(|| decode("id"))?.to_owned(),
        name: value["name"].as_str().unwrap_or_default().to_owned(),
        status,
        provider_status: word,
        ipv4: address(4).and_then(|a| a.parse().ok()),
        ipv6: address(6).and_then(|a| a.parse().ok()),
        labels: value["metadata"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

fn gone_is_done(result: Result<Value, CloudError>) -> Result<(), CloudError> {
    match result {
        Err(e) if e.is_not_found() => Ok(()),
        other => other.map(drop),
    }
}

#[async_trait]
impl CloudDriver for OpenStack {
    fn provider(&self) -> ProviderKind {
        PROVIDER
    }

    async fn check_credentials(&self) -> Result<(), CloudError> {
        self.session(true).await?;
        self.call(Service::Compute, Method::GET, "/flavors?limit=1", None)
            .await
            .map(drop)
    }

    async fn create_key(
        &self,
        name: &str,
        public_key: &str,
        _labels: &Labels,
    ) -> Result<KeyPair, CloudError> {
        // Key pairs take no metadata: the name carries Slipway's id.
        let body = json!({"keypair": {"name": name, "public_key": public_key}});
        let key = self
            .call(Service::Compute, Method::POST, "/os-keypairs", Some(&body))
            .await?;
        Ok(KeyPair {
            id: name.to_owned(),
            name: name.to_owned(),
            fingerprint: key["keypair"]["fingerprint"].as_str().map(str::to_owned),
        })
    }

    async fn delete_key(&self, id: &str) -> Result<(), CloudError> {
        gone_is_done(
            self.call(
                Service::Compute,
                Method::DELETE,
                &format!("/os-keypairs/{id}"),
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
        let body = json!({"security_group": {"name": name, "description": "made by Slipway"}});
        let group = self
            .call(
                Service::Network,
                Method::POST,
                "/security-groups",
                Some(&body),
            )
            .await?;
        let id = group["security_group"]["id"]
            .as_str()
            .ok_or_else(|| decode("security_group.id"))?
            .to_owned();
        let tags: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let tagged = json!({"tags": tags});
        let made = async {
            self.call(
                Service::Network,
                Method::PUT,
                &format!("/security-groups/{id}/tags"),
                Some(&tagged),
            )
            .await?;
            for InboundTcp(port) in rules {
                for ethertype in ["IPv4", "IPv6"] {
                    let rule = json!({"security_group_rule": {
                        "security_group_id": id, "direction": "ingress", "ethertype": ethertype,
                        "protocol": "tcp", "port_range_min": port, "port_range_max": port}});
                    self.call(
                        Service::Network,
                        Method::POST,
                        "/security-group-rules",
                        Some(&rule),
                    )
                    .await?;
                }
            }
            Ok::<_, CloudError>(())
        };
        if let Err(e) = made.await {
            // Half a firewall is worse than none.
            let _ = self.delete_firewall(&id).await;
            return Err(e);
        }
        Ok(Firewall {
            id,
            name: name.to_owned(),
        })
    }

    async fn delete_firewall(&self, id: &str) -> Result<(), CloudError> {
        gone_is_done(
            self.call(
                Service::Network,
                Method::DELETE,
                &format!("/security-groups/{id}"),
                None,
            )
            .await,
        )
    }

    async fn create_server(&self, request: &ServerRequest) -> Result<Server, CloudError> {
        if request.region != self.region {
            return Err(not_offered("region", &request.region, &self.region));
        }
        let flavor = self.flavor_id(&request.size).await?;
        let image = self.image_id(&request.image).await?;
        let mut server = json!({
            "name": request.name, "flavorRef": flavor, "imageRef": image,
            "key_name": request.ssh_key, "metadata": request.labels,
            "user_data": base64::engine::general_purpose::STANDARD.encode(&request.user_data),
        });
        if let Some(group) = &request.firewall {
            server["security_groups"] = json!([{"name": group}]);
        }
        let created = self
            .call(
                Service::Compute,
                Method::POST,
                "/servers",
                Some(&json!({"server": server})),
            )
            .await?;
        let id = created["server"]["id"]
            .as_str()
            .ok_or_else(|| decode("server.id"))?;
        // The create answer is partial (id, links, adminPass): the server
        // as the provider has it, BUILD for now.
        Ok(Server {
            id: id.to_owned(),
            name: request.name.clone(),
            status: ServerStatus::Creating,
            provider_status: "BUILD".into(),
            ipv4: None,
            ipv6: None,
            labels: request.labels.clone(),
        })
    }

    async fn get_server(&self, id: &str) -> Result<Option<Server>, CloudError> {
        match self
            .call(
                Service::Compute,
                Method::GET,
                &format!("/servers/{id}"),
                None,
            )
            .await
        {
            Ok(body) => server_from(&body["server"]).map(Some),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list_servers(&self, labels: &Labels) -> Result<Vec<Server>, CloudError> {
        let all = self
            .pages(
                Service::Compute,
                &format!("/servers/detail?limit={PAGE}"),
                "servers",
            )
            .await?;
        let servers: Result<Vec<Server>, _> = all.iter().map(server_from).collect();
        Ok(servers?
            .into_iter()
            .filter(|s| has_labels(&s.labels, labels))
            .collect())
    }

    async fn delete_server(&self, id: &str, limit: Duration) -> Result<(), CloudError> {
        let deadline = Instant::now() + limit;
        gone_is_done(
            self.call(
                Service::Compute,
                Method::DELETE,
                &format!("/servers/{id}"),
                None,
            )
            .await,
        )?;
        loop {
            match self.get_server(id).await? {
                None => return Ok(()),
                Some(s) if s.provider_status == "DELETED" => return Ok(()),
                Some(s) if Instant::now() >= deadline => {
                    return Err(CloudError::Timeout {
                        provider: PROVIDER,
                        what: format!("deleting server {id} (still `{}`)", s.provider_status),
                        limit,
                    })
                }
                Some(_) => tokio::time::sleep(self.polling.interval).await,
            }
        }
    }

    async fn wait_running(&self, id: &str, limit: Duration) -> Result<Server, CloudError> {
        let deadline = Instant::now() + limit;
        loop {
            let body = match self
                .call(
                    Service::Compute,
                    Method::GET,
                    &format!("/servers/{id}"),
                    None,
                )
                .await
            {
                Err(e) if e.is_not_found() => {
                    return Err(CloudError::Failed {
                        provider: PROVIDER,
                        what: "create the server".into(),
                        message: format!("server {id} disappeared while it was being built"),
                    })
                }
                other => other?,
            };
            let server = server_from(&body["server"])?;
            match server.status {
                ServerStatus::Running => return Ok(server),
                ServerStatus::Error => {
                    return Err(CloudError::Failed {
                        provider: PROVIDER,
                        what: "create the server".into(),
                        message: body["server"]["fault"]["message"]
                            .as_str()
                            .unwrap_or("the server is in ERROR")
                            .to_owned(),
                    })
                }
                _ if Instant::now() >= deadline => {
                    return Err(CloudError::Timeout {
                        provider: PROVIDER,
                        what: format!("building server {id} (still `{}`)", server.provider_status),
                        limit,
                    })
                }
                _ => tokio::time::sleep(self.polling.interval).await,
            }
        }
    }
}
