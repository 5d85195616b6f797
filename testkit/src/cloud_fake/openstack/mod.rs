//! A fake OpenStack cloud in one region: Keystone v3 (`/identity/v3`,
//! password and application-credential logins, the token in
//! `X-Subject-Token`, a catalog naming the others), Nova (`/compute/v2.1`:
//! servers, flavors, key pairs; `limit`/`marker` pages with `…_links`),
//! Neutron (`/network/v2.0`: security groups, rules, tags) and Glance
//! (`/image/v2/images`). A new server is `BUILD` for
//! [`FakeOpenStack::STEPS`] reads, then `ACTIVE` (or `ERROR` with a
//! `fault`). Errors are each service's own bodies.

use super::{
    answer, param, query, rate_limited, serve, AddressHook, CreatedServer, Faults, ImageHooks,
    Served,
};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

mod create;
mod images;
mod keystone;

use create::create_server;
use keystone::login;

pub const FLAVORS: &[(&str, u32, u32, u32)] = &[
    ("d2-2", 1, 2048, 25),
    ("d2-4", 2, 4096, 50),
    ("b3-8", 2, 8192, 50),
];
pub const IMAGE: (&str, &str) = ("9c3e8a52-0000-4000-8000-debian12", "Debian 12");

#[derive(Default)]
struct Data {
    next: u64,
    tokens: BTreeSet<String>,
    /// Server and reads left in BUILD.
    servers: BTreeMap<String, (Value, u32)>,
    keypairs: BTreeMap<String, Value>,
    groups: BTreeMap<String, Value>,
    /// Snapshots (and reads left until active), and each one's handle.
    images: BTreeMap<String, (Value, u32)>,
    snapshots: BTreeMap<String, String>,
}

struct Shared {
    user: (String, String, String),
    app_credential: (String, String),
    region: String,
    url: Mutex<String>,
    data: Mutex<Data>,
    faults: Mutex<Faults>,
    hook: AddressHook,
    deleted: Mutex<Option<super::DeleteHook>>,
    images: Mutex<ImageHooks>,
}

pub struct FakeOpenStack {
    served: Served,
    shared: Arc<Shared>,
}

impl FakeOpenStack {
    pub const STEPS: u32 = 2;
    pub const PASSWORD: (&'static str, &'static str, &'static str) =
        ("slipway", "s3cret-pass", "proj-0001");
    pub const APP_CREDENTIAL: (&'static str, &'static str) = ("appcred-0001", "appcred-secret");

    /// Accepts the user `PASSWORD` (name, password, project id) and the
    /// application credential `APP_CREDENTIAL`, in `region`.
    pub async fn start(region: &str, hook: Option<AddressHook>) -> anyhow::Result<FakeOpenStack> {
        let (u, p, project) = Self::PASSWORD;
        let shared = Arc::new(Shared {
            user: (u.into(), p.into(), project.into()),
            app_credential: (Self::APP_CREDENTIAL.0.into(), Self::APP_CREDENTIAL.1.into()),
            region: region.into(),
            url: Mutex::new(String::new()),
            data: Mutex::new(Data::default()),
            faults: Mutex::new(Faults::default()),
            hook: hook.unwrap_or_else(super::documentation_addresses),
            deleted: Mutex::new(None),
            images: Mutex::new(ImageHooks::default()),
        });
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let served = serve(router).await?;
        *shared.url.lock().unwrap() = served.url.clone();
        Ok(FakeOpenStack { served, shared })
    }

    /// Keystone's v3 base.
    pub fn auth_url(&self) -> String {
        format!("{}/identity/v3", self.served.url)
    }

    pub fn faults(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut self.shared.faults.lock().unwrap());
    }

    /// Called with a deleted server's IPv4 (its test host goes).
    pub fn on_delete(&self, hook: super::DeleteHook) {
        *self.shared.deleted.lock().unwrap() = Some(hook);
    }

    /// What a snapshot saves and its delete removes (real test hosts).
    pub fn on_images(&self, hooks: ImageHooks) {
        *self.shared.images.lock().unwrap() = hooks;
    }

    /// How many snapshots Glance holds.
    pub fn images(&self) -> usize {
        self.shared.data.lock().unwrap().images.len()
    }

    /// Forgets every token, as when they expire.
    pub fn expire_tokens(&self) {
        self.shared.data.lock().unwrap().tokens.clear();
    }

    /// Servers, key pairs and security groups held.
    pub fn holdings(&self) -> (usize, usize, usize) {
        let data = self.shared.data.lock().unwrap();
        (data.servers.len(), data.keypairs.len(), data.groups.len())
    }

    pub fn seed_server(&self, name: &str, metadata: Value) -> String {
        let mut data = self.shared.data.lock().unwrap();
        let id = uuid(&mut data);
        data.servers.insert(
            id.clone(),
            (
                server_json(&id, name, "ACTIVE", "203.0.113.251", metadata),
                0,
            ),
        );
        id
    }
}

fn uuid(data: &mut Data) -> String {
    data.next += 1;
    format!("00000000-0000-4000-8000-{:012x}", data.next)
}

fn server_json(id: &str, name: &str, status: &str, ipv4: &str, metadata: Value) -> Value {
    json!({"id": id, "name": name, "status": status, "metadata": metadata, "flavor": {"original_name": "d2-2"},
        "addresses": {"Ext-Net": [{"version": 4, "addr": ipv4, "OS-EXT-IPS:type": "fixed"},
                                  {"version": 6, "addr": "2001:db8::10", "OS-EXT-IPS:type": "fixed"}]},
        "security_groups": [], "links": []})
}

/// Nova's and Glance's error shape: `{"<kind>": {"code", "message"}}`.
fn nova(status: StatusCode, kind: &str, message: &str) -> Response {
    answer(
        status,
        json!({kind: {"code": status.as_u16(), "message": message}}),
    )
}

fn neutron(status: StatusCode, kind: &str, message: &str) -> Response {
    answer(
        status,
        json!({"NeutronError": {"type": kind, "message": message, "detail": ""}}),
    )
}

fn unauthorized() -> Response {
    answer(
        StatusCode::UNAUTHORIZED,
        json!({"error": {"code": 401, "title": "Unauthorized",
        "message": "The request you have made requires authentication."}}),
    )
}

/// `limit`/`marker` paging of `items` (in id order), with Nova's `…_links`.
fn page(items: Vec<Value>, key: &str, url: &str, query: &[(String, String)]) -> Value {
    let limit: usize = param(query, "limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(1000)
        .max(1);
    let start = param(query, "marker")
        .and_then(|m| items.iter().position(|i| i["id"] == m).map(|p| p + 1))
        .unwrap_or(0);
    let slice: Vec<Value> = items.into_iter().skip(start).collect();
    let more = slice.len() > limit;
    let slice: Vec<Value> = slice.into_iter().take(limit).collect();
    let mut body = json!({key: slice});
    if more {
        let marker = slice.last().map(|i| i["id"].clone()).unwrap_or_default();
        let marker = marker.as_str().unwrap_or_default();
        body[format!("{key}_links")] =
            json!([{"rel": "next", "href": format!("{url}?limit={limit}&marker={marker}")}]);
    }
    body
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let path = uri.path().to_owned();
    if (method.as_str(), path.as_str()) == ("POST", "/identity/v3/auth/tokens") {
        return login(&shared, &body);
    }
    let token = headers
        .get("x-auth-token")
        .and_then(|t| t.to_str().ok())
        .unwrap_or_default();
    if !shared.data.lock().unwrap().tokens.contains(token) {
        return unauthorized();
    }
    if let Some(wait) = rate_limited(&shared.faults) {
        let mut response = nova(
            StatusCode::TOO_MANY_REQUESTS,
            "overLimit",
            "This request was rate-limited.",
        );
        response
            .headers_mut()
            .insert("retry-after", wait.to_string().parse().unwrap());
        return response;
    }
    let base = shared.url.lock().unwrap().clone();
    let query = query(&uri);
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let mut data = shared.data.lock().unwrap();
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["compute", "v2.1", "flavors"]) => {
            let items = FLAVORS.iter().map(|(n, v, r, d)| json!({"id": format!("flavor-{n}"), "name": n, "vcpus": v, "ram": r, "disk": d})).collect();
            answer(
                StatusCode::OK,
                page(items, "flavors", &format!("{base}{path}"), &query),
            )
        }
        ("GET", ["compute", "v2.1", "servers", "detail"]) => {
            let items = data.servers.values().map(|(s, _)| s.clone()).collect();
            answer(
                StatusCode::OK,
                page(items, "servers", &format!("{base}{path}"), &query),
            )
        }
        ("POST", ["compute", "v2.1", "servers"]) => {
            drop(data);
            create_server(&shared, &body["server"]).await
        }
        ("GET", ["compute", "v2.1", "servers", id]) => {
            let stuck = shared.faults.lock().unwrap().stuck_creating;
            match data.servers.get_mut(*id) {
                None => nova(
                    StatusCode::NOT_FOUND,
                    "itemNotFound",
                    &format!("Instance {id} could not be found."),
                ),
                Some((server, left)) => {
                    if server["status"] == "BUILD" && !stuck {
                        *left = left.saturating_sub(1);
                        if *left == 0 {
                            let failed = server.get("pending_fault").cloned();
                            match failed {
                                Some(fault) => {
                                    server["status"] = json!("ERROR");
                                    server["fault"] = fault;
                                }
                                None => server["status"] = json!("ACTIVE"),
                            }
                        }
                    }
                    answer(StatusCode::OK, json!({"server": server}))
                }
            }
        }
        ("DELETE", ["compute", "v2.1", "servers", id]) => match data.servers.remove(*id) {
            None => nova(
                StatusCode::NOT_FOUND,
                "itemNotFound",
                &format!("Instance {id} could not be found."),
            ),
            Some((removed, _)) => {
                let ip = removed["addresses"]
                    .as_object()
                    .into_iter()
                    .flat_map(|nets| nets.values())
                    .flat_map(|list| list.as_array().into_iter().flatten())
                    .find(|a| a["version"] == 4)
                    .and_then(|a| a["addr"].as_str()?.parse().ok());
                if let (Some(hook), Some(ip)) = (shared.deleted.lock().unwrap().clone(), ip) {
                    hook(ip);
                }
                StatusCode::NO_CONTENT.into_response()
            }
        },
        ("GET", ["compute", "v2.1", "os-keypairs"]) => {
            let items: Vec<Value> = data
                .keypairs
                .values()
                .map(|k| json!({"keypair": k}))
                .collect();
            answer(StatusCode::OK, json!({"keypairs": items}))
        }
        ("GET", ["network", "v2.0", "security-groups"]) => {
            let items: Vec<Value> = data.groups.values().cloned().collect();
            answer(StatusCode::OK, json!({"security_groups": items}))
        }
        ("POST", ["compute", "v2.1", "os-keypairs"]) => {
            let key = &body["keypair"];
            let (Some(name), Some(public)) = (key["name"].as_str(), key["public_key"].as_str())
            else {
                return nova(
                    StatusCode::BAD_REQUEST,
                    "badRequest",
                    "Invalid input for field/attribute keypair.",
                );
            };
            if data.keypairs.contains_key(name) {
                return nova(
                    StatusCode::CONFLICT,
                    "conflictingRequest",
                    &format!("Key pair '{name}' already exists."),
                );
            }
            let made = json!({"name": name, "public_key": public, "fingerprint": "fa:ke", "user_id": "u1", "type": "ssh"});
            data.keypairs.insert(name.to_owned(), made.clone());
            answer(StatusCode::OK, json!({"keypair": made}))
        }
        ("DELETE", ["compute", "v2.1", "os-keypairs", name]) => match data.keypairs.remove(*name) {
            None => nova(
                StatusCode::NOT_FOUND,
                "itemNotFound",
                &format!("Keypair {name} not found for user u1"),
            ),
            Some(_) => StatusCode::ACCEPTED.into_response(),
        },
        ("POST", ["network", "v2.0", "security-groups"]) => {
            let Some(name) = body["security_group"]["name"].as_str() else {
                return neutron(
                    StatusCode::BAD_REQUEST,
                    "HTTPBadRequest",
                    "Invalid input for operation: name is required.",
                );
            };
            let id = uuid(&mut data);
            let group = json!({"id": id, "name": name, "description": body["security_group"]["description"], "tags": [], "security_group_rules": []});
            data.groups.insert(id, group.clone());
            answer(StatusCode::CREATED, json!({"security_group": group}))
        }
        ("PUT", ["network", "v2.0", "security-groups", id, "tags"]) => {
            match data.groups.get_mut(*id) {
                None => neutron(
                    StatusCode::NOT_FOUND,
                    "SecurityGroupNotFound",
                    &format!("Security group {id} does not exist"),
                ),
                Some(group) => {
                    group["tags"] = body["tags"].clone();
                    answer(StatusCode::OK, json!({"tags": body["tags"]}))
                }
            }
        }
        ("POST", ["network", "v2.0", "security-group-rules"]) => {
            let rule = body["security_group_rule"].clone();
            let group_id = rule["security_group_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let id = uuid(&mut data);
            match data.groups.get_mut(&group_id) {
                None => neutron(
                    StatusCode::NOT_FOUND,
                    "SecurityGroupNotFound",
                    &format!("Security group {group_id} does not exist"),
                ),
                Some(group) => {
                    let mut rule = rule;
                    rule["id"] = json!(id);
                    if let Some(rules) = group["security_group_rules"].as_array_mut() {
                        rules.push(rule.clone());
                    }
                    answer(StatusCode::CREATED, json!({"security_group_rule": rule}))
                }
            }
        }
        ("DELETE", ["network", "v2.0", "security-groups", id]) => {
            let used = data.servers.values().any(|(s, _)| {
                s["security_groups"]
                    .as_array()
                    .is_some_and(|g| g.iter().any(|g| g["name"] == *id))
            });
            if used {
                return neutron(
                    StatusCode::CONFLICT,
                    "SecurityGroupInUse",
                    &format!("Security Group {id} in use."),
                );
            }
            match data.groups.remove(*id) {
                None => neutron(
                    StatusCode::NOT_FOUND,
                    "SecurityGroupNotFound",
                    &format!("Security group {id} does not exist"),
                ),
                Some(_) => StatusCode::NO_CONTENT.into_response(),
            }
        }
        ("GET", ["image", "v2", "images"]) => images::list(&data, &query),
        ("GET", ["image", "v2", "images", id]) => images::show(&mut data, id),
        ("DELETE", ["image", "v2", "images", id]) => images::delete(&shared, &mut data, id),
        ("POST", ["compute", "v2.1", "servers", id, "action"])
            if body.get("createImage").is_some() =>
        {
            drop(data);
            images::create_image(&shared, id, &body["createImage"]).await
        }
        _ => nova(
            StatusCode::NOT_FOUND,
            "itemNotFound",
            "The resource could not be found.",
        ),
    }
}
