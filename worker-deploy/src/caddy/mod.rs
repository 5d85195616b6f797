//! A client of Caddy's admin API that owns the apps' routes on one server.
//!
//! Layout of a server this module manages (`NAME` is the server's name):
//!
//! ```text
//! apps.http.shutdown_delay = 1s (see `drain`)
//! apps.http.servers.NAME = { listen: [ADDR], automatic_https: {disable: true},
//!   routes: [ {@id: NAME-drain, Connection: close while shutting down (see `drain`)},
//!             {@id: NAME-apps, handle: [{handler: subroute, routes: [APP ROUTES]}]},
//!             {@id: NAME-fallback, handle: [{static_response 404}]} ] }
//! APP ROUTE = {@id: ROUTE, match: [{host: HOSTS}], terminal: true,
//!              handle: [{@id: ROUTE-proxy, handler: reverse_proxy, upstreams: [...]}]}
//! ```
//!
//! App routes live in a subroute so that adding one is an atomic append
//! (`POST .../routes`) that can never land after the 404 catch-all, whatever
//! else changes concurrently; hosts of different apps do not overlap, so
//! their order does not matter. Caddy 2.6 semantics used here: `PUT` creates
//! (missing parents included) and fails if the key exists, `PATCH` replaces
//! and fails if it is missing, `POST` appends to an array, `DELETE` removes;
//! `/id/ID/...` addresses an object by its `@id`. Switching upstreams is a
//! `PATCH /id/ROUTE-proxy/upstreams`, which Caddy applies with a graceful
//! reload that keep-alive clients leave without a failed request (`drain`).

mod drain;
mod tls;

use drain::drain_route;

use serde_json::{json, Value};
use slipway_shared::job::JobError;
use std::time::Duration;

/// Caddy applies one config change at a time, each taking its
/// `shutdown_delay` (see `drain`): a change queued behind a few others
/// waits that many seconds.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// One app route as Caddy holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    pub id: String,
    pub hosts: Vec<String>,
    /// `host:port` dial addresses.
    pub upstreams: Vec<String>,
}

/// What `set_route` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteChange {
    Created,
    /// Same hosts, new upstreams: only the proxy's upstream list changed.
    UpstreamsSwitched,
    /// Different hosts: the route was replaced in place.
    Replaced,
    Unchanged,
}

#[derive(Debug, thiserror::Error)]
pub enum CaddyError {
    #[error("Caddy's admin API at {url} is unreachable: {message}")]
    Unreachable { url: String, message: String },
    #[error("Caddy refused {method} {path} ({status}): {body}")]
    Api {
        method: String,
        path: String,
        status: u16,
        body: String,
    },
    #[error("unexpected answer from Caddy for {path}: {detail}")]
    BadAnswer { path: String, detail: String },
}

impl CaddyError {
    pub fn code(&self) -> &'static str {
        match self {
            CaddyError::Unreachable { .. } => "caddy_unreachable",
            CaddyError::Api { status: 400, .. } => "caddy_config_rejected",
            CaddyError::Api { .. } | CaddyError::BadAnswer { .. } => "caddy_api_error",
        }
    }

    /// A rejected config is a bug or bad input and fails the same way
    /// again; an unreachable or failing Caddy may recover.
    pub fn into_job_error(self) -> JobError {
        match self {
            CaddyError::Api { status: 400, .. } => {
                JobError::permanent(self.code(), self.to_string())
            }
            _ => JobError::Retryable(format!("{}: {self}", self.code())),
        }
    }
}

impl From<CaddyError> for JobError {
    fn from(e: CaddyError) -> Self {
        e.into_job_error()
    }
}

/// A Caddy admin endpoint.
#[derive(Debug, Clone)]
pub struct CaddyAdmin {
    base: String,
    client: reqwest::Client,
    /// The `Host` header to send: Caddy's admin API answers 403 unless it
    /// names the admin's own listen address, which a forwarded port
    /// (`127.0.0.1:LOCAL` here for `127.0.0.1:2019` on a target) does not.
    host: Option<String>,
}

impl CaddyAdmin {
    /// `admin` is `127.0.0.1:2019` or `http://127.0.0.1:2019`.
    pub fn new(admin: &str) -> Result<CaddyAdmin, CaddyError> {
        let base = if admin.contains("://") {
            admin.trim_end_matches('/').to_string()
        } else {
            format!("http://{admin}")
        };
        // No connection reuse: Caddy may close an admin connection right
        // after answering (an error, a config reload), and a request sent
        // on such a connection fails as "error sending request".
        let client = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| CaddyError::Unreachable {
                url: base.clone(),
                message: e.to_string(),
            })?;
        Ok(CaddyAdmin {
            base,
            client,
            host: None,
        })
    }

    /// The admin API listening on `admin` (as its host sees it), reached
    /// here at `local` (an SSH forward).
    pub fn forwarded(local: &str, admin: &str) -> Result<CaddyAdmin, CaddyError> {
        let mut caddy = CaddyAdmin::new(local)?;
        caddy.host = Some(admin.to_owned());
        Ok(caddy)
    }

    pub fn admin_url(&self) -> &str {
        &self.base
    }

    /// Makes `apps.http.servers.<server>` listen on `listen` (e.g.
    /// `127.0.0.1:8088`) without automatic HTTPS, with the app-route group
    /// and the 404 catch-all. Keeps the app routes of an existing server.
    /// Returns whether anything changed.
    pub async fn ensure_server(&self, server: &str, listen: &str) -> Result<bool, CaddyError> {
        self.ensure_server_with(server, listen, None).await
    }

    /// As [`Self::ensure_server`]; a server made new gets `first_route` (a
    /// [`route_json`] or [`stopped_route_json`]) as its one app route in
    /// the same change. A change to a Caddy whose servers serve returns
    /// only after [`drain::SHUTDOWN_DELAY`]; one to a Caddy serving
    /// nothing yet does not, so the first deploy onto a new server's Caddy
    /// pays no delay at all.
    pub async fn ensure_server_with(
        &self,
        server: &str,
        listen: &str,
        first_route: Option<&Value>,
    ) -> Result<bool, CaddyError> {
        let delay_changed = self.ensure_shutdown_delay().await?;
        let path = format!("/config/apps/http/servers/{server}");
        let Some(current) = self.get_opt(&path).await? else {
            let app_routes = json!(first_route.into_iter().collect::<Vec<_>>());
            self.send("PUT", &path, Some(server_json(server, listen, app_routes)))
                .await?;
            return Ok(true);
        };
        let routes = current["routes"].as_array().cloned().unwrap_or_default();
        let group_at = routes.iter().position(|r| r["@id"] == group_id(server));
        let fallback_last = routes
            .last()
            .is_some_and(|r| r["@id"] == fallback_id(server));
        let well_formed = current["listen"] == json!([listen])
            && current["automatic_https"]["disable"] == json!(true)
            && routes.first() == Some(&drain_route(server))
            && group_at.is_some()
            && fallback_last
            && routes[group_at.unwrap_or(0)]["handle"][0]["routes"].is_array();
        if well_formed {
            return Ok(delay_changed);
        }
        let app_routes = group_at
            .and_then(|i| routes[i]["handle"][0]["routes"].as_array().cloned())
            .unwrap_or_default();
        self.send(
            "PATCH",
            &path,
            Some(server_json(server, listen, Value::Array(app_routes))),
        )
        .await?;
        Ok(true)
    }

    /// Creates or updates route `route_id` on `server` (made by
    /// `ensure_server`): requests for `hosts` go to `upstreams`
    /// (`host:port`). With unchanged hosts only the upstreams are patched,
    /// which switches traffic without failing a request.
    pub async fn set_route(
        &self,
        server: &str,
        route_id: &str,
        hosts: &[String],
        upstreams: &[String],
    ) -> Result<RouteChange, CaddyError> {
        let wanted = route_json(route_id, hosts, upstreams);
        let id_path = format!("/id/{route_id}");
        match self.get_opt(&id_path).await? {
            Some(current) => {
                let info = route_info(&current);
                // A route made before its proxy had today's settings (the
                // dial timeout) is replaced whole once.
                let proxy_ok = current["handle"][0]["@id"] == json!(proxy_id(route_id))
                    && current["handle"][0]["transport"] == wanted["handle"][0]["transport"];
                if proxy_ok && info.hosts == hosts && info.upstreams == upstreams {
                    Ok(RouteChange::Unchanged)
                } else if proxy_ok && info.hosts == hosts {
                    let path = format!("/id/{}/upstreams", proxy_id(route_id));
                    self.send(
                        "PATCH",
                        &path,
                        Some(wanted["handle"][0]["upstreams"].clone()),
                    )
                    .await?;
                    Ok(RouteChange::UpstreamsSwitched)
                } else {
                    self.send("PATCH", &id_path, Some(wanted)).await?;
                    Ok(RouteChange::Replaced)
                }
            }
            None => {
                self.create_route(server, wanted).await?;
                Ok(RouteChange::Created)
            }
        }
    }

    /// Makes route `route_id` answer every request for `hosts` with 503
    /// ("stopped"), whatever it did before: the app was stopped on request.
    pub async fn set_stopped_route(
        &self,
        server: &str,
        route_id: &str,
        hosts: &[String],
    ) -> Result<RouteChange, CaddyError> {
        let wanted = stopped_route_json(route_id, hosts);
        let id_path = format!("/id/{route_id}");
        match self.get_opt(&id_path).await? {
            Some(current) if current == wanted => Ok(RouteChange::Unchanged),
            Some(_) => {
                self.send("PATCH", &id_path, Some(wanted)).await?;
                Ok(RouteChange::Replaced)
            }
            None => {
                self.create_route(server, wanted).await?;
                Ok(RouteChange::Created)
            }
        }
    }

    /// Appends a new app route to the server's app-route group.
    async fn create_route(&self, server: &str, wanted: Value) -> Result<(), CaddyError> {
        let group = format!("/id/{}/handle/0", group_id(server));
        let subroute = self
            .get_opt(&group)
            .await?
            .ok_or_else(|| CaddyError::BadAnswer {
                path: group.clone(),
                detail: format!("server {server} has no app-route group: call ensure_server first"),
            })?;
        // Caddy drops an empty `routes` when it re-serialises a config
        // (autosave, --resume): then the array must be made.
        if subroute["routes"].is_array() {
            self.send("POST", &format!("{group}/routes"), Some(wanted))
                .await?;
        } else {
            self.send("PUT", &format!("{group}/routes"), Some(json!([wanted])))
                .await?;
        }
        Ok(())
    }

    /// Removes a route; false when there was none.
    pub async fn remove_route(&self, route_id: &str) -> Result<bool, CaddyError> {
        let path = format!("/id/{route_id}");
        match self.send("DELETE", &path, None).await {
            Ok(_) => Ok(true),
            Err(CaddyError::Api { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The app routes of `server`, in order; empty when it has none (or
    /// does not exist).
    pub async fn routes(&self, server: &str) -> Result<Vec<RouteInfo>, CaddyError> {
        let path = format!("/id/{}/handle/0/routes", group_id(server));
        let routes = self.get_opt(&path).await?.unwrap_or(Value::Null);
        Ok(routes
            .as_array()
            .map(|routes| routes.iter().map(route_info).collect())
            .unwrap_or_default())
    }

    /// GET a config path; `None` when Caddy says it does not exist (404 for
    /// an unknown `@id`, 400 "invalid traversal path" for a missing key).
    async fn get_opt(&self, path: &str) -> Result<Option<Value>, CaddyError> {
        match self.send("GET", path, None).await {
            Ok(Value::Null) => Ok(None),
            Ok(value) => Ok(Some(value)),
            Err(CaddyError::Api { status: 404, .. }) => Ok(None),
            Err(CaddyError::Api {
                status: 400, body, ..
            }) if body.contains("invalid traversal path") => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, CaddyError> {
        let url = format!("{}{path}", self.base);
        let verb = reqwest::Method::from_bytes(method.as_bytes()).expect("a valid method");
        let mut request = self.client.request(verb, &url);
        if let Some(host) = &self.host {
            request = request.header(reqwest::header::HOST, host);
        }
        if let Some(body) = &body {
            request = request.json(body);
        }
        let unreachable = |e: reqwest::Error| CaddyError::Unreachable {
            url: url.clone(),
            message: error_chain(&e),
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let text = response.text().await.map_err(unreachable)?;
        if !status.is_success() {
            return Err(CaddyError::Api {
                method: method.into(),
                path: path.into(),
                status: status.as_u16(),
                body: text.trim().to_string(),
            });
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| CaddyError::BadAnswer {
            path: path.into(),
            detail: e.to_string(),
        })
    }
}

/// reqwest's top-level message ("error sending request") hides the cause.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn group_id(server: &str) -> String {
    format!("{server}-apps")
}

fn fallback_id(server: &str) -> String {
    format!("{server}-fallback")
}

fn proxy_id(route_id: &str) -> String {
    format!("{route_id}-proxy")
}

fn server_json(server: &str, listen: &str, app_routes: Value) -> Value {
    json!({
        "listen": [listen],
        "automatic_https": {"disable": true},
        "routes": [
            drain_route(server),
            {"@id": group_id(server), "handle": [{"handler": "subroute", "routes": app_routes}]},
            {"@id": fallback_id(server), "terminal": true,
             "handle": [{"handler": "static_response", "status_code": 404, "body": "no app here\n"}]},
        ],
    })
}

pub(crate) fn route_json(route_id: &str, hosts: &[String], upstreams: &[String]) -> Value {
    let upstreams: Vec<Value> = upstreams.iter().map(|u| json!({"dial": u})).collect();
    json!({
        "@id": route_id,
        "match": [{"host": hosts}],
        "terminal": true,
        "handle": [{
            "@id": proxy_id(route_id),
            "handler": "reverse_proxy",
            "upstreams": upstreams,
            // A dial that fails (an upstream just stopped) is retried on
            // the other upstreams instead of answering 502 at once.
            "load_balancing": {"try_duration": "2s", "try_interval": "100ms"},
            // Every upstream is on the server's own loopback, where a dial
            // takes well under a millisecond, except to a container that
            // just died: its port still forwards to an address nobody
            // answers until podman's cleanup or the restart rewrites it, and
            // Caddy's default 3 s dial wait held a request through the
            // whole 2 s of tries. Short dials are tried again every 100 ms.
            "transport": {"protocol": "http", "dial_timeout": "500ms"},
        }],
    })
}

/// What a stopped app's hosts answer: a clear 503, not a 502 from a proxy
/// to a stopped container.
pub(crate) fn stopped_route_json(route_id: &str, hosts: &[String]) -> Value {
    json!({
        "@id": route_id,
        "match": [{"host": hosts}],
        "terminal": true,
        "handle": [{
            "@id": format!("{route_id}-stopped"),
            "handler": "static_response",
            "status_code": 503,
            "body": "this app is stopped\n",
        }],
    })
}

fn route_info(route: &Value) -> RouteInfo {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    RouteInfo {
        id: route["@id"].as_str().unwrap_or_default().to_string(),
        hosts: strings(&route["match"][0]["host"]),
        upstreams: route["handle"][0]["upstreams"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|u| u["dial"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_json_round_trips_through_route_info() {
        let hosts = vec!["a.localhost".to_string()];
        let ups = vec!["127.0.0.1:4000".to_string(), "127.0.0.1:4001".to_string()];
        let info = route_info(&route_json("r1", &hosts, &ups));
        assert_eq!(
            info,
            RouteInfo {
                id: "r1".into(),
                hosts,
                upstreams: ups
            }
        );
    }

    #[test]
    fn admin_addresses_are_normalised() {
        assert_eq!(
            CaddyAdmin::new("127.0.0.1:2019").unwrap().admin_url(),
            "http://127.0.0.1:2019"
        );
        assert_eq!(
            CaddyAdmin::new("http://127.0.0.1:2019/")
                .unwrap()
                .admin_url(),
            "http://127.0.0.1:2019"
        );
    }
}
