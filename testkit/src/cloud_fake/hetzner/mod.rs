//! A fake of the Hetzner Cloud API (`/v1`): servers, SSH keys, firewalls,
//! actions, locations, server types and pricing. A new server is
//! `initializing` with a `create_server` action `running`; each read of the
//! action moves it on, and after [`FakeHetzner::STEPS`] reads it is
//! `success` and the server `running`. Errors are Hetzner's
//! `{"error": {"code", "message", "details"}}`.

use super::{
    answer, bearer, param, query, rate_limited, selected, serve, unavailable, AddressHook,
    CreatedServer, Faults, ImageHooks, Served,
};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

mod resources;

use resources::{
    create_image, create_key, create_server, delete_image, new_action, pricing, read_action,
    read_image, server_type,
};

#[derive(Default)]
struct Data {
    next_id: u64,
    servers: BTreeMap<u64, Value>,
    keys: BTreeMap<u64, Value>,
    firewalls: BTreeMap<u64, Value>,
    /// Snapshots, and the handle each was saved as ([`ImageHooks`]).
    images: BTreeMap<u64, Value>,
    snapshots: BTreeMap<u64, String>,
    /// Action, reads left until it ends, and its end (`Err` = error words).
    actions: BTreeMap<u64, (Value, u32, Result<(), String>)>,
}

struct Shared {
    token: String,
    data: Mutex<Data>,
    faults: Mutex<Faults>,
    hook: AddressHook,
    deleted: Mutex<Option<super::DeleteHook>>,
    images: Mutex<ImageHooks>,
    requests: Mutex<Vec<String>>,
}

pub struct FakeHetzner {
    served: Served,
    shared: Arc<Shared>,
}

/// Server types the fake offers: name, cores, memory GB, disk GB, arch, monthly net EUR.
pub const SERVER_TYPES: &[(&str, u32, f64, u32, &str, &str)] = &[
    ("cx22", 2, 4.0, 40, "x86", "3.7900"),
    ("cpx11", 2, 2.0, 40, "x86", "4.3500"),
    ("cax11", 2, 4.0, 40, "arm", "3.7900"),
];
pub const LOCATIONS: &[(&str, &str, &str)] = &[
    ("fsn1", "DE", "Falkenstein"),
    ("nbg1", "DE", "Nuremberg"),
    ("hel1", "FI", "Helsinki"),
];

impl FakeHetzner {
    /// Reads of an action before it ends.
    pub const STEPS: u32 = 2;

    pub async fn start(token: &str) -> anyhow::Result<FakeHetzner> {
        Self::start_with(token, super::documentation_addresses()).await
    }

    pub async fn start_with(token: &str, hook: AddressHook) -> anyhow::Result<FakeHetzner> {
        let shared = Arc::new(Shared {
            token: token.to_owned(),
            data: Mutex::new(Data {
                next_id: 1000,
                ..Data::default()
            }),
            faults: Mutex::new(Faults::default()),
            hook,
            deleted: Mutex::new(None),
            images: Mutex::new(ImageHooks::default()),
            requests: Mutex::new(Vec::new()),
        });
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        Ok(FakeHetzner {
            served: serve(router).await?,
            shared,
        })
    }

    /// The API base, `http://127.0.0.1:PORT/v1`.
    pub fn url(&self) -> String {
        format!("{}/v1", self.served.url)
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

    /// How many images (snapshots) the account holds.
    pub fn images(&self) -> usize {
        self.shared.data.lock().unwrap().images.len()
    }

    /// `METHOD /path` of every request so far.
    pub fn requests(&self) -> Vec<String> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// How many servers, keys and firewalls the account holds.
    pub fn holdings(&self) -> (usize, usize, usize) {
        let data = self.shared.data.lock().unwrap();
        (data.servers.len(), data.keys.len(), data.firewalls.len())
    }

    /// Adds a running server directly (for pagination and listing tests).
    pub fn seed_server(&self, name: &str, labels: Value) -> u64 {
        let mut data = self.shared.data.lock().unwrap();
        data.next_id += 1;
        let id = data.next_id;
        data.servers.insert(
            id,
            server_json(id, name, "running", "203.0.113.250", "cx22", "fsn1", labels),
        );
        id
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    answer(
        status,
        json!({"error": {"code": code, "message": message, "details": {}}}),
    )
}

fn server_json(
    id: u64,
    name: &str,
    status: &str,
    ipv4: &str,
    size: &str,
    location: &str,
    labels: Value,
) -> Value {
    json!({"id": id, "name": name, "status": status, "created": "2026-12-05T12:00:00+00:00",
        "public_net": {"ipv4": {"ip": ipv4, "blocked": false}, "ipv6": {"ip": "2001:db8:1::/64", "blocked": false}},
        "server_type": {"name": size}, "datacenter": {"location": {"name": location}},
        "labels": labels, "firewalls": []})
}

/// Items of `page` (1-based) and Hetzner's `meta.pagination`.
fn page(items: Vec<Value>, query: &[(String, String)]) -> (Vec<Value>, Value) {
    let per_page: usize = param(query, "per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(25)
        .clamp(1, 50);
    let page: usize = param(query, "page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let last = items.len().div_ceil(per_page).max(1);
    let slice = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let meta = json!({"pagination": {"page": page, "per_page": per_page,
        "previous_page": (page > 1).then_some(page - 1), "next_page": (page < last).then_some(page + 1),
        "last_page": last}});
    (slice, meta)
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared
        .requests
        .lock()
        .unwrap()
        .push(format!("{method} {}", uri.path()));
    if bearer(&headers) != Some(shared.token.as_str()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "unable to authenticate",
        );
    }
    if let Some(wait) = rate_limited(&shared.faults) {
        let mut response = error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_exceeded",
            "limit of 3600 requests per hour reached",
        );
        response
            .headers_mut()
            .insert("retry-after", wait.to_string().parse().unwrap());
        return response;
    }
    if unavailable(&shared.faults) {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "service unavailable",
        );
    }
    let query = query(&uri);
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let path: Vec<&str> = uri.path().trim_start_matches("/v1/").split('/').collect();
    match (method.as_str(), path.as_slice()) {
        ("POST", ["servers"]) => create_server(&shared, body).await,
        ("GET", [kind @ ("servers" | "ssh_keys" | "firewalls")]) => {
            let data = shared.data.lock().unwrap();
            let all = match *kind {
                "servers" => &data.servers,
                "ssh_keys" => &data.keys,
                _ => &data.firewalls,
            };
            let items = all
                .values()
                .filter(|v| selected(&v["labels"], param(&query, "label_selector")))
                .cloned()
                .collect();
            let (items, meta) = page(items, &query);
            answer(StatusCode::OK, json!({*kind: items, "meta": meta}))
        }
        ("GET", ["servers", id]) => match shared
            .data
            .lock()
            .unwrap()
            .servers
            .get(&id.parse().unwrap_or(0))
        {
            Some(server) => answer(StatusCode::OK, json!({"server": server})),
            None => error(StatusCode::NOT_FOUND, "not_found", "server not found"),
        },
        ("GET", ["servers", id, "actions"]) => {
            let data = shared.data.lock().unwrap();
            let id: u64 = id.parse().unwrap_or(0);
            let items = data
                .actions
                .values()
                .map(|(a, _, _)| a.clone())
                .filter(|a| a["resources"][0]["id"] == id)
                .filter(|a| param(&query, "status").is_none_or(|s| a["status"] == s))
                .collect();
            let (items, meta) = page(items, &query);
            answer(StatusCode::OK, json!({"actions": items, "meta": meta}))
        }
        ("DELETE", ["servers", id]) => {
            let mut data = shared.data.lock().unwrap();
            let id: u64 = id.parse().unwrap_or(0);
            let Some(removed) = data.servers.remove(&id) else {
                return error(StatusCode::NOT_FOUND, "not_found", "server not found");
            };
            let ip = removed["public_net"]["ipv4"]["ip"]
                .as_str()
                .and_then(|ip| ip.parse().ok());
            if let (Some(hook), Some(ip)) = (shared.deleted.lock().unwrap().clone(), ip) {
                hook(ip);
            }
            for firewall in data.firewalls.values_mut() {
                if let Some(list) = firewall["applied_to"].as_array_mut() {
                    list.retain(|a| a["server"]["id"] != id);
                }
            }
            let action = new_action(&mut data, "delete_server", id, Ok(()));
            answer(StatusCode::OK, json!({"action": action}))
        }
        ("GET", ["actions", id]) => read_action(&shared, id.parse().unwrap_or(0)),
        ("POST", ["servers", id, "actions", "create_image"]) => {
            create_image(&shared, id.parse().unwrap_or(0), body).await
        }
        ("GET", ["images"]) => {
            let data = shared.data.lock().unwrap();
            let items = data
                .images
                .values()
                .filter(|i| param(&query, "type").is_none_or(|t| i["type"] == t))
                .filter(|i| selected(&i["labels"], param(&query, "label_selector")))
                .cloned()
                .collect();
            let (items, meta) = page(items, &query);
            answer(StatusCode::OK, json!({"images": items, "meta": meta}))
        }
        ("GET", ["images", id]) => read_image(&shared, id.parse().unwrap_or(0)),
        ("DELETE", ["images", id]) => delete_image(&shared, id.parse().unwrap_or(0)),
        ("POST", ["ssh_keys"]) => create_key(&shared, body),
        ("POST", ["firewalls"]) => {
            let Some(name) = body["name"].as_str() else {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_input",
                    "invalid input in field 'name'",
                );
            };
            let mut data = shared.data.lock().unwrap();
            if data.firewalls.values().any(|f| f["name"] == name) {
                return error(
                    StatusCode::CONFLICT,
                    "uniqueness_error",
                    "firewall name is already used",
                );
            }
            data.next_id += 1;
            let id = data.next_id;
            let firewall = json!({"id": id, "name": name, "labels": body["labels"], "rules": body["rules"], "applied_to": []});
            data.firewalls.insert(id, firewall.clone());
            answer(
                StatusCode::CREATED,
                json!({"firewall": firewall, "actions": []}),
            )
        }
        ("DELETE", [kind @ ("ssh_keys" | "firewalls"), id]) => {
            let mut data = shared.data.lock().unwrap();
            let id: u64 = id.parse().unwrap_or(0);
            let all = if *kind == "ssh_keys" {
                &mut data.keys
            } else {
                &mut data.firewalls
            };
            match all.get(&id) {
                None => error(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    &format!("{} not found", kind.trim_end_matches('s')),
                ),
                Some(f) if f["applied_to"].as_array().is_some_and(|a| !a.is_empty()) => error(
                    StatusCode::CONFLICT,
                    "resource_in_use",
                    "firewall is still in use",
                ),
                Some(_) => {
                    all.remove(&id);
                    StatusCode::NO_CONTENT.into_response()
                }
            }
        }
        ("GET", ["locations"]) => {
            let items = LOCATIONS.iter().enumerate().map(|(i, (name, country, city))| {
                json!({"id": i + 1, "name": name, "description": format!("{city} DC Park 1"), "country": country, "city": city, "network_zone": "eu-central"})
            }).collect();
            let (items, meta) = page(items, &query);
            answer(StatusCode::OK, json!({"locations": items, "meta": meta}))
        }
        ("GET", ["server_types"]) => {
            let (items, meta) = page(
                SERVER_TYPES
                    .iter()
                    .enumerate()
                    .map(|(i, t)| server_type(i, t))
                    .collect(),
                &query,
            );
            answer(StatusCode::OK, json!({"server_types": items, "meta": meta}))
        }
        ("GET", ["pricing"]) => answer(StatusCode::OK, pricing()),
        _ => error(StatusCode::NOT_FOUND, "not_found", "not found"),
    }
}
