//! OpenStack as a [`CloudDriver`]: Nova servers and key pairs, Neutron
//! security groups as firewalls, a new server polled out of `BUILD`.

use super::{decode, not_offered, OpenStack, Service, PAGE, PROVIDER};
use crate::driver::{
    gone_is_done, has_labels, poll_image, CloudDriver, Firewall, Image, ImageStatus, InboundTcp,
    KeyPair, Labels, ProviderKind, Server, ServerRequest, ServerStatus,
};
use crate::error::CloudError;
use async_trait::async_trait;
use base64::Engine;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::time::Instant;

/// A Glance image. The metadata Nova's `createImage` was given are the
/// image's own top-level properties.
fn image_from(value: &Value) -> Result<Image, CloudError> {
    let word = value["status"].as_str().unwrap_or("unknown").to_owned();
    let status = match word.as_str() {
        "queued" | "saving" | "uploading" | "importing" => ImageStatus::Creating,
        "active" => ImageStatus::Available,
        "killed" => ImageStatus::Error,
        _ => ImageStatus::Other,
    };
    let labels = value
        .as_object()
        .map(|fields| {
            fields
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    Ok(Image {
        id: value["id"]
            .as_str()
            .ok_or_else(|| decode("image.id"))?
            .to_owned(),
        name: value["name"].as_str().unwrap_or_default().to_owned(),
        status,
        provider_status: word,
        size_gb: value["size"].as_f64().map(|bytes| bytes / 1e9),
        labels,
    })
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

    async fn list_keys(&self, prefix: &str) -> Result<Vec<KeyPair>, CloudError> {
        let keys = self
            .pages(Service::Compute, "/os-keypairs", "keypairs")
            .await?;
        Ok(keys
            .iter()
            .map(|k| &k["keypair"])
            .filter_map(|k| {
                let name = k["name"].as_str().filter(|n| n.starts_with(prefix))?;
                Some(KeyPair {
                    id: name.to_owned(),
                    name: name.to_owned(),
                    fingerprint: k["fingerprint"].as_str().map(str::to_owned),
                })
            })
            .collect())
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

    async fn list_firewalls(&self, prefix: &str) -> Result<Vec<Firewall>, CloudError> {
        let groups = self
            .pages(Service::Network, "/security-groups", "security_groups")
            .await?;
        Ok(groups
            .iter()
            .filter_map(|g| {
                let name = g["name"].as_str().filter(|n| n.starts_with(prefix))?;
                Some(Firewall {
                    id: g["id"].as_str()?.to_owned(),
                    name: name.to_owned(),
                })
            })
            .collect())
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

    async fn create_image(
        &self,
        server_id: &str,
        name: &str,
        labels: &Labels,
    ) -> Result<Image, CloudError> {
        let body = json!({"createImage": {"name": name, "metadata": labels}});
        self.call(
            Service::Compute,
            Method::POST,
            &format!("/servers/{server_id}/action"),
            Some(&body),
        )
        .await?;
        // Nova's answer (before microversion 2.45) carries the image's id
        // only in a `Location` header; the name is Slipway's and unique.
        let image = self
            .image_named(name)
            .await?
            .ok_or_else(|| CloudError::Failed {
                provider: PROVIDER,
                what: "save the server image".into(),
                message: format!("Nova accepted image `{name}` but Glance does not list it"),
            })?;
        image_from(&image)
    }

    async fn get_image(&self, id: &str) -> Result<Option<Image>, CloudError> {
        match self
            .call(Service::Image, Method::GET, &format!("/images/{id}"), None)
            .await
        {
            Ok(body) if body["status"] == "deleted" => Ok(None),
            Ok(body) => image_from(&body).map(Some),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list_images(&self, labels: &Labels) -> Result<Vec<Image>, CloudError> {
        // Glance pages through `next`, a path from its root (`/v2/…`).
        let mut images = Vec::new();
        let mut next = Some(format!("/images?limit={PAGE}"));
        while let Some(path) = next.take() {
            let body = self.call(Service::Image, Method::GET, &path, None).await?;
            for image in body["images"].as_array().ok_or_else(|| decode("images"))? {
                images.push(image_from(image)?);
            }
            next = body["next"]
                .as_str()
                .map(|n| n.strip_prefix("/v2").unwrap_or(n).to_owned());
        }
        Ok(images
            .into_iter()
            .filter(|i| has_labels(&i.labels, labels))
            .collect())
    }

    async fn delete_image(&self, id: &str) -> Result<(), CloudError> {
        gone_is_done(
            self.call(
                Service::Image,
                Method::DELETE,
                &format!("/images/{id}"),
                None,
            )
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
