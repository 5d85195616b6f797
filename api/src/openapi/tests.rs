//! The document against the router: every route the router serves is
//! described, and everything described is served, checked by sending
//! requests through the real router (with a database it cannot reach, so
//! handlers answer quickly without touching anything).

use super::*;
use crate::state::AppState;
use axum::body::Body;
use axum::http::{Method, StatusCode};
use std::collections::BTreeSet;
use tower::ServiceExt;

const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

/// `(path, method)` of every operation in a document.
fn operations_of(doc: &Document) -> BTreeSet<(String, Method)> {
    let mut out = BTreeSet::new();
    for (path, item) in &doc.paths.paths {
        let described = [
            (Method::GET, item.get.is_some()),
            (Method::POST, item.post.is_some()),
            (Method::PUT, item.put.is_some()),
            (Method::PATCH, item.patch.is_some()),
            (Method::DELETE, item.delete.is_some()),
        ];
        for (method, present) in described {
            if present {
                out.insert((path.clone(), method));
            }
        }
    }
    out
}

/// A state whose database and broker refuse connections at once.
fn offline_state() -> AppState {
    let shutdown = tokio_util::sync::CancellationToken::new();
    shutdown.cancel();
    let pool = sqlx::postgres::PgPoolOptions::new()
        // Short: the audit log's write after every refused POST waits
        // for it.
        .acquire_timeout(std::time::Duration::from_millis(200))
        .connect_lazy("postgres://127.0.0.1:1/none")
        .expect("a lazy pool");
    let logs = crate::log_stream::LogHub::start(pool.clone(), shutdown.clone());
    AppState {
        pool: pool.clone(),
        names: slipway_shared::queue::topology::QueueNames::new("openapi-test"),
        admin_token_hash: Vec::new(),
        amqp_url: "amqp://127.0.0.1:1".into(),
        logs: logs.clone(),
        installs: logs.clone(),
        events: crate::events::EventHub::start(
            pool,
            &logs,
            std::time::Duration::from_secs(3600),
            shutdown,
        ),
        secrets: slipway_shared::secrets::SecretBox::from_hex(&"00".repeat(32).into())
            .expect("a key"),
        archives: Default::default(),
        outbound: std::sync::Arc::new(slipway_shared::egress::OutboundPolicy::public_only()),
        accounts: Default::default(),
        cloud: crate::state::CloudState {
            endpoints: slipway_shared::config::CloudEndpoints {
                hetzner: "http://127.0.0.1:1/v1".into(),
                openstack: "http://127.0.0.1:1/v3".into(),
            },
            live_prices: slipway_cloud::catalog::hetzner_live::LiveCache::new(
                std::time::Duration::from_secs(1),
            ),
        },
    }
}

/// A concrete path for a template: every parameter a UUID, which every
/// path parameter's type accepts.
fn concrete(template: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').expect("a closed parameter") + open;
        out.push_str("0190a000-0000-7000-8000-000000000000");
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn the_router_serves_exactly_the_documented_operations() {
    let doc = document();
    let described = operations_of(&doc);
    assert!(described.len() >= 42, "only {} operations", described.len());
    let router = crate::startup::router(offline_state());
    let paths: BTreeSet<&String> = described.iter().map(|(path, _)| path).collect();
    for path in paths {
        for method in METHODS {
            let request = axum::http::Request::builder()
                .method(method.clone())
                .uri(concrete(path))
                .body(Body::empty())
                .expect("a request");
            let response = router.clone().oneshot(request).await.expect("an answer");
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), 1 << 22)
                .await
                .expect("a body");
            let body = String::from_utf8_lossy(&body);
            if described.contains(&(path.clone(), method.clone())) {
                // The router's fallback is the one 404 that says `route`.
                assert!(
                    status != StatusCode::METHOD_NOT_ALLOWED && !body.contains("route not found"),
                    "{method} {path} is documented but the router does not serve it: {status} {body}"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is served but not documented"
                );
            }
        }
    }
}

/// The paths the router matches, from its own route table (axum shows it
/// in the router's `Debug` output: `RouteId(N): "/path"`).
fn router_paths(router: &axum::Router) -> BTreeSet<String> {
    let debug = format!("{router:?}");
    let table = debug
        .split("fallback_router")
        .next()
        .expect("the path router comes first");
    table
        .split("): \"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn the_router_serves_exactly_the_documented_paths() {
    let served = router_paths(&crate::startup::router(offline_state()));
    let described: BTreeSet<String> = document().paths.paths.keys().cloned().collect();
    assert!(
        served.len() >= 30,
        "the route table was not read: {served:?}"
    );
    assert_eq!(served, described, "left: served, right: documented");
}

#[test]
fn the_served_document_has_every_route_the_router_collected() {
    let (_, collected) = crate::startup::api_routes().split_for_parts();
    assert_eq!(operations_of(&document()), operations_of(&collected));
}

#[test]
fn every_operation_names_its_path_parameters_and_a_unique_id() {
    let doc = serde_json::to_value(document()).expect("json");
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let in_template: BTreeSet<&str> = path
            .split('{')
            .skip(1)
            .map(|s| s.split('}').next().unwrap_or_default())
            .collect();
        for (method, operation) in item.as_object().expect("a path item") {
            let declared: BTreeSet<&str> = operation["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "path")
                        .filter_map(|p| p["name"].as_str())
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(declared, in_template, "{method} {path}");
            let id = operation["operationId"].as_str().unwrap_or_default();
            assert!(
                ids.insert(id.to_owned()),
                "{method} {path}: id `{id}` twice"
            );
            for requirement in operation["security"].as_array().into_iter().flatten() {
                for scheme in requirement
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, _)| k)
                {
                    assert!(
                        doc["components"]["securitySchemes"][scheme].is_object(),
                        "{method} {path}: unknown security scheme {scheme}"
                    );
                }
            }
            assert!(
                operation["summary"].is_string(),
                "{method} {path} has no summary"
            );
        }
    }
}

#[test]
fn every_reference_resolves() {
    let doc = serde_json::to_value(document()).expect("json");
    let text = doc.to_string();
    let prefix = "\"#/components/schemas/";
    for reference in text.split(prefix).skip(1) {
        let name = reference.split('"').next().unwrap_or_default();
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "#/components/schemas/{name} is referenced but not defined"
        );
    }
}

#[test]
fn links_name_operations_that_exist() {
    let doc = serde_json::to_value(document()).expect("json");
    let ids: BTreeSet<String> = doc["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .flat_map(|(_, item)| item.as_object().into_iter().flatten())
        .filter_map(|(_, op)| op["operationId"].as_str().map(str::to_owned))
        .collect();
    let mut links = 0;
    for (from, status, targets, _, _) in LINKS {
        assert!(ids.contains(*from), "link from unknown {from}");
        for target in *targets {
            assert!(
                ids.contains(*target),
                "link from {from} {status} to unknown {target}"
            );
            links += 1;
        }
    }
    let text = doc.to_string();
    assert!(
        text.matches("\"operationId\":").count() > ids.len(),
        "no links were added"
    );
    assert!(links > 20);
}
