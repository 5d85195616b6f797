//! The OpenAPI 3.1 document of the API. Written by hand; a test checks that
//! every route the router serves is described here.

use serde_json::{json, Value};

fn op(summary: &str, auth: &str, responses: &[(&str, &str)]) -> Value {
    let mut answers = serde_json::Map::new();
    for (status, description) in responses {
        answers.insert((*status).into(), json!({"description": description}));
    }
    answers.insert("4XX".into(), json!({"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}));
    json!({"summary": summary, "security": [{auth: []}], "responses": answers})
}

pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/projects"),
    ("get", "/v1/projects"),
    ("post", "/v1/projects/{project_id}/tokens"),
    ("post", "/v1/apps"),
    ("get", "/v1/apps"),
    ("get", "/v1/apps/{app}"),
    ("patch", "/v1/apps/{app}"),
    ("delete", "/v1/apps/{app}"),
    ("post", "/v1/apps/{app}/deployments"),
    ("get", "/v1/apps/{app}/deployments"),
    ("get", "/v1/deployments/{id}"),
    ("post", "/v1/deployments/{id}/cancel"),
    ("get", "/v1/deployments/{id}/logs"),
    ("get", "/v1/deployments/{id}/logs/stream"),
    ("post", "/v1/probes"),
    ("get", "/v1/dead-jobs"),
    ("post", "/v1/dead-jobs/{id}/redrive"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
];

pub async fn document() -> axum::Json<Value> {
    axum::Json(build())
}

pub fn build() -> Value {
    let a = "admin";
    let p = "project";
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Slipway API", "version": env!("CARGO_PKG_VERSION")},
        "components": {
            "securitySchemes": {
                "admin": {"type": "http", "scheme": "bearer", "description": "SLIPWAY_ADMIN_TOKEN"},
                "project": {"type": "http", "scheme": "bearer", "description": "a project token (slw_…)"}
            },
            "schemas": {"Error": {"type": "object", "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}
        },
        "paths": {
            "/v1/projects": {
                "post": op("Create a project {name}", a, &[("201", "created"), ("409", "name taken")]),
                "get": op("List projects", a, &[("200", "{items}")])
            },
            "/v1/projects/{project_id}/tokens": {
                "post": op("Create a project token {name}; the token is shown once", a, &[("201", "{id, token}")])
            },
            "/v1/apps": {
                "post": op("Create an app {name, git_url, git_ref, build, runtime, env}", p, &[("201", "the app")]),
                "get": op("List the project's apps", p, &[("200", "{items}")])
            },
            "/v1/apps/{app}": {
                "get": op("Read an app", p, &[("200", "the app")]),
                "patch": op("Update an app", p, &[("200", "the app")]),
                "delete": op("Delete an app with no deployment in progress", p, &[("204", "deleted"), ("409", "busy")])
            },
            "/v1/apps/{app}/deployments": {
                "post": op("Deploy the app {git_ref?}", p, &[("202", "{id, state} with Location")]),
                "get": op("List the app's deployments (?limit, ?before cursor)", p, &[("200", "{items, next}")])
            },
            "/v1/deployments/{id}": {"get": op("A deployment with its timeline and attempts", p, &[("200", "the deployment")])},
            "/v1/deployments/{id}/cancel": {"post": op("Cancel a deployment", p, &[("200", "cancelled"), ("409", "already ended")])},
            "/v1/deployments/{id}/logs": {"get": op("Log lines after ?after=SEQ (?limit=N)", p, &[("200", "{lines, next, state}")])},
            "/v1/deployments/{id}/logs/stream": {"get": op("Log lines as SSE; event ids are sequence numbers (Last-Event-ID resumes)", p, &[("200", "text/event-stream")])},
            "/v1/probes": {"post": op("Send a probe through all stages {duration_ms, fail_stage, fail_kind, fail_times, app}", p, &[("202", "{id, state} with Location")])},
            "/v1/dead-jobs": {"get": op("Dead jobs of the project", p, &[("200", "{items}")])},
            "/v1/dead-jobs/{id}/redrive": {"post": op("Re-drive a dead job with a fresh attempt budget", p, &[("200", "re-driven"), ("409", "not re-drivable")])},
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "ok"}}}},
            "/readyz": {"get": {"summary": "Postgres and RabbitMQ reachable", "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text format"}}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.1"}}}}
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_route_is_documented() {
        let doc = super::build();
        for (method, path) in super::ROUTES {
            assert!(
                doc["paths"][path][method].is_object(),
                "{method} {path} is missing"
            );
        }
    }
}
