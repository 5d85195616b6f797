//! OpenStack in one region (OVHcloud Public Cloud, or any cloud with
//! Keystone v3): Nova servers and key pairs, Neutron security groups as
//! firewalls, Glance for image names. Nova has no actions: a new server is
//! `BUILD` until `ACTIVE` or `ERROR` (with its `fault`), a deleted one is
//! gone when a read answers 404. Lists follow the `…_links` `next` hrefs;
//! metadata is selected here since Nova cannot filter on it. A 401 on a
//! kept token logs in again once.

mod keystone;

pub use keystone::Credentials;

mod driver;

use crate::driver::{Polling, ProviderKind};
use crate::error::CloudError;
use crate::http::{Http, RetryPolicy};
use keystone::Session;
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::Value;
use tokio::sync::Mutex;

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

    /// The same client, resolving names through `guard` ([`crate::guard`]).
    pub fn with_guard(self, guard: crate::guard::AddressGuard) -> Result<OpenStack, CloudError> {
        Ok(OpenStack {
            http: Http::guarded(PROVIDER, self.http.retry(), Some(guard))?,
            ..self
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

    /// The first image Glance lists by that name.
    async fn image_named(&self, name: &str) -> Result<Option<Value>, CloudError> {
        let query = serde_urlencoded::to_string([("name", name)]).unwrap_or_default();
        let found = self
            .call(
                Service::Image,
                Method::GET,
                &format!("/images?{query}"),
                None,
            )
            .await?;
        Ok(found["images"].as_array().and_then(|i| i.first()).cloned())
    }

    async fn image_id(&self, image: &str) -> Result<String, CloudError> {
        let by_name = self.image_named(image).await?;
        match by_name.as_ref().and_then(|i| i["id"].as_str()) {
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
