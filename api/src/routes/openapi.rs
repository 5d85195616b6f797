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
    ("post", "/v1/apps/{app}/stop"),
    ("post", "/v1/apps/{app}/start"),
    ("post", "/v1/apps/{app}/restart"),
    ("post", "/v1/apps/{app}/scale"),
    ("get", "/v1/apps/{app}/logs"),
    ("get", "/v1/apps/{app}/logs/stream"),
    ("post", "/v1/apps/{app}/versions"),
    ("get", "/v1/apps/{app}/versions"),
    ("get", "/v1/apps/{app}/versions/{id}"),
    ("get", "/v1/apps/{app}/versions/{id}/archive"),
    ("post", "/v1/apps/{app}/addons"),
    ("get", "/v1/apps/{app}/addons"),
    ("delete", "/v1/apps/{app}/addons/{name}"),
    ("post", "/v1/apps/{app}/webhook-secret"),
    ("delete", "/v1/apps/{app}/webhook-secret"),
    ("post", "/v1/hooks/{provider}/{app_id}"),
    ("get", "/v1/deployments/{id}"),
    ("post", "/v1/deployments/{id}/cancel"),
    ("get", "/v1/deployments/{id}/logs"),
    ("get", "/v1/deployments/{id}/logs/stream"),
    ("post", "/v1/probes"),
    ("post", "/v1/targets"),
    ("get", "/v1/targets"),
    ("get", "/v1/targets/{target}"),
    ("delete", "/v1/targets/{target}"),
    ("post", "/v1/targets/{target}/check"),
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
                "post": op("Create an app {name, git_url, git_ref, build, runtime, env, secrets, git_credential, target, domains}; target is the target (id or name) the app runs on, absent for the local target; runtime.replicas (1 to 16) is the number of containers per release; domains are extra host names routed to the app (unique on the platform: 409 domain_taken), applied by the next deploy, start or restart; git_credential is {token, username?} for http(s) URLs or {ssh_key, known_hosts?} for SSH ones, stored encrypted and shown only as {kind, set}", p, &[("201", "the app")]),
                "get": op("List the project's apps", p, &[("200", "{items}")])
            },
            "/v1/apps/{app}": {
                "get": op("Read an app, with `status` {state: running|stopped|not_deployed|destroying, release, url, https_url, health {ok, detail, checked_at}} and `live`", p, &[("200", "the app")]),
                "patch": op("Update an app; git_credential: null removes the credential; target: null moves it to the local target; domains replaces the custom domains", p, &[("200", "the app")]),
                "delete": op("Destroy an app with no deployment in progress: a destroy deployment removes its route and containers on the target, with ?purge=true also its add-ons' databases and volumes (without it they are detached, data kept), then the app (the app is `destroying` meanwhile; deploys answer 409 app_destroying). An app with nothing on a target is deleted at once", p, &[("202", "{id, state} of the destroy deployment, with Location"), ("204", "deleted at once"), ("409", "app_busy or app_destroying")])
            },
            "/v1/apps/{app}/stop": {
                "post": op("Stop the app: its route answers 503, its container is stopped, its release becomes paused. A deployment with action stop, run by the workers in the app's lane", p, &[("202", "{id, state} with Location"), ("409", "not_deployed or app_destroying")])
            },
            "/v1/apps/{app}/start": {
                "post": op("Start a stopped app: a fresh container of its current release's image, health-checked before the route points at it (a running app is left alone)", p, &[("202", "{id, state} with Location"), ("409", "not_deployed or app_destroying")])
            },
            "/v1/apps/{app}/logs": {
                "get": op("Runtime logs: what the app's containers printed, as the deploy worker collects it (every SLIPWAY_RUNTIME_LOG_INTERVAL; apps on the local target only, none are collected from ssh targets yet), after ?after=SEQ (?limit=N); sequence numbers are per app", p, &[("200", "{lines: [{seq, at, container, stream, line}], next}")])
            },
            "/v1/apps/{app}/logs/stream": {
                "get": op("Runtime logs as SSE: `log` events (id = sequence number; Last-Event-ID or ?after=SEQ resumes), then new lines as they are collected; an `end` event when the app is destroyed", p, &[("200", "text/event-stream")])
            },
            "/v1/apps/{app}/scale": {
                "post": op("Scale to {replicas} (1 to 16) containers of the current release behind the route: sets runtime.replicas and restarts with no downtime", p, &[("202", "{id, state} of the restart, with Location"), ("409", "not_deployed or app_destroying"), ("422", "replicas out of range")])
            },
            "/v1/apps/{app}/restart": {
                "post": op("Restart with no downtime: a fresh container of the current release's image is health-checked, gets the route, then the old one is drained and stopped", p, &[("202", "{id, state} with Location"), ("409", "not_deployed or app_destroying")])
            },
            "/v1/apps/{app}/deployments": {
                "post": op("Deploy the app {git_ref?}, an uploaded archive {version}, or roll back to an earlier deployment's image {rollback_to}", p, &[("202", "{id, state} with Location")]),
                "get": op("List the app's deployments (?limit, ?before cursor)", p, &[("200", "{items, next}")])
            },
            "/v1/apps/{app}/versions": {
                "post": {
                    "summary": "Upload a .tar.gz or .zip of the app's source (application/gzip, application/zip, or detected from the bytes); every entry is checked (no absolute paths, `..`, links out, devices); stored by SHA-256",
                    "security": [{p: []}],
                    "requestBody": {"required": true, "content": {
                        "application/gzip": {"schema": {"type": "string", "format": "binary"}},
                        "application/zip": {"schema": {"type": "string", "format": "binary"}}}},
                    "responses": {
                        "201": {"description": "the version {id, sha256, format, size, entries, files, unpacked_bytes, archive_url} with Location"},
                        "413": {"description": "archive_too_large (SLIPWAY_MAX_ARCHIVE_SIZE, or unpacked beyond SLIPWAY_MAX_UNPACKED_SIZE / SLIPWAY_MAX_ARCHIVE_ENTRIES)"},
                        "415": {"description": "unsupported_media_type"},
                        "422": {"description": "archive_unsafe (names the entry) or archive_invalid"},
                        "4XX": {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
                    }
                },
                "get": op("The app's versions, newest first (?limit, ?before cursor)", p, &[("200", "{items, next}")])
            },
            "/v1/apps/{app}/versions/{id}": {"get": op("A version", p, &[("200", "the version")])},
            "/v1/apps/{app}/versions/{id}/archive": {"get": op("The uploaded bytes, unchanged (ETag is the SHA-256)", p, &[("200", "application/gzip or application/zip")])},
            "/v1/apps/{app}/addons": {
                "post": op("Add an add-on {kind: postgres, name} (a database linked as DATABASE_URL; password generated, sealed, never shown) or {kind: volume, name, mount}; created by the app's next deployment", p, &[("201", "the add-on, state pending"), ("409", "addon_exists or mount_taken"), ("422", "invalid_addon")]),
                "get": op("The app's add-ons with their state (pending, ready, purging); passwords masked", p, &[("200", "{items}")])
            },
            "/v1/apps/{app}/addons/{name}": {
                "delete": op("Detach an add-on (no longer linked; its database or volume is kept, named in the answer), or with ?purge=true mark it purging: the next deployment drops its data and the add-on", p, &[("200", "detached"), ("202", "purging")])
            },
            "/v1/apps/{app}/webhook-secret": {
                "post": op("Create or rotate the app's push-webhook secret; shown once, with the hook URL per provider", p, &[("201", "{secret, urls}")]),
                "delete": op("Remove the webhook secret: the app's hooks answer 404", p, &[("204", "removed")])
            },
            "/v1/hooks/{provider}/{app_id}": {"post": {
                "summary": "A push webhook from github (X-Hub-Signature-256), gitlab (X-Gitlab-Token, or a signing token's webhook-signature) or gitea (X-Gitea-Signature), verified with the app's secret; a push to the app's repository and branch deploys the pushed commit",
                "responses": {
                    "202": {"description": "{deployed: true, id, state, url, commit, branch} with Location"},
                    "200": {"description": "{deployed: false, reason}: a ping, another event, another branch, a tag, a deleted branch, a redelivery"},
                    "401": {"description": "webhook_unsigned or webhook_bad_signature"},
                    "404": {"description": "no such app, or it has no webhook secret"},
                    "422": {"description": "webhook_repo_mismatch or webhook_bad_payload"},
                    "4XX": {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
                }
            }},
            "/v1/deployments/{id}": {"get": op("A deployment with its timeline and attempts", p, &[("200", "the deployment")])},
            "/v1/deployments/{id}/cancel": {"post": op("Cancel a deployment", p, &[("200", "cancelled"), ("409", "already ended")])},
            "/v1/deployments/{id}/logs": {"get": op("Log lines after ?after=SEQ (?limit=N)", p, &[("200", "{lines, next, state}")])},
            "/v1/deployments/{id}/logs/stream": {"get": op("Log lines as SSE; event ids are sequence numbers (Last-Event-ID resumes)", p, &[("200", "text/event-stream")])},
            "/v1/probes": {"post": op("Send a probe through all stages {duration_ms, fail_stage, fail_kind, fail_times, app}", p, &[("202", "{id, state} with Location")])},
            "/v1/targets": {
                "post": op("Create a target {name, kind: local|ssh}; ssh takes {host, port?, user, ssh_key, known_hosts, caddy_admin?, apps_addr?, data_dir?, containers_conf?, engine? (podman|docker; default: whichever the server has, podman first), https_addr?, tls_issuer? (acme|internal), acme_ca?, acme_email?, acme_ca_root?}; the key is stored encrypted and shown only as has_key and key_fingerprint", p, &[("201", "the target"), ("409", "name taken")]),
                "get": op("List the project's targets", p, &[("200", "{items}")])
            },
            "/v1/targets/{target}": {
                "get": op("Read a target (by id or name) with its apps and last check", p, &[("200", "the target")]),
                "delete": op("Delete a target no app runs on", p, &[("204", "deleted"), ("409", "target_in_use")])
            },
            "/v1/targets/{target}/check": {"post": op("Check and prepare the target through the workers (a target_check deployment: provision checks the engine, folders and Caddy, deploy checks the SSH forwards); its state, logs and error are the result", p, &[("202", "{id, state} with Location")])},
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
