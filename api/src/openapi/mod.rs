//! The OpenAPI 3.1 document of the API, generated from the code: every
//! handler carries a `#[utoipa::path]` annotation (its path and query
//! parameters, body, answers and their error codes), the router is built
//! from those annotations (`startup::api_routes`), and this module adds
//! what is the same for every operation (the auth and request errors), the
//! security schemes and the links a client follows from one answer to the
//! next. Served at `GET /openapi.json`.

pub mod formats;
pub mod views;

use std::sync::LazyLock;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, RefOr};
use utoipa::{OpenApi, ToSchema};

/// Every 4xx answer: a stable machine-readable `code` and a message for
/// people.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    #[schema(example = "validation_failed")]
    pub code: String,
    #[schema(example = "name: must be 1 to 63 characters of a-z, 0-9 and -")]
    pub message: String,
}

/// The security scheme of a platform admin: the admin token
/// (`SLIPWAY_ADMIN_TOKEN`) or an admin's session.
pub const ADMIN: &str = "admin_token";
/// The security scheme of a project token (`slw_…`); its scopes name the
/// least role an operation needs (`viewer`, `member`, `owner`).
pub const PROJECT: &str = "project_token";
/// A person's browser session (the `slipway_session` cookie, plus the
/// `X-CSRF-Token` header on state-changing requests and the
/// `Slipway-Project` header naming the project); same roles as tokens.
pub const SESSION: &str = "session";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Slipway API",
        description = "Self-hosted deployments: projects, apps, deployments and their logs, \
                       targets, add-ons, source versions, webhooks. Every error answers \
                       `{\"code\", \"message\"}` with a stable `code`.",
    ),
    // Path parameters name these by reference without registering them.
    components(schemas(ErrorBody, formats::Name, formats::TargetKey, formats::Binary)),
    tags(
        (name = "projects", description = "Projects (created by platform admins)"),
        (name = "tokens", description = "Project tokens: named, with a role, revocable (owners)"),
        (name = "sessions", description = "Signing in and out; one's own sessions and password"),
        (name = "users", description = "People: listed, disabled, deleted and reset by platform admins"),
        (name = "members", description = "A project's members and invitations (owners)"),
        (name = "audit", description = "Who did what: every state-changing call (owners, admins)"),
        (name = "apps", description = "Apps and their settings, status and operations"),
        (name = "deployments", description = "Deployments: create, follow, cancel"),
        (name = "logs", description = "Deployment and runtime logs, polled or as SSE"),
        (name = "versions", description = "Uploaded source archives"),
        (name = "addons", description = "Postgres databases and volumes of an app"),
        (name = "webhooks", description = "Push webhooks from git hosts"),
        (name = "targets", description = "Where apps run: local or over SSH"),
        (name = "cloud", description = "Cloud providers, their prices, accounts and caps"),
        (name = "operations", description = "Probes and dead jobs"),
        (name = "service", description = "Health, readiness, metrics, this document"),
    )
)]
struct ApiDoc;

/// The document as the router's annotations give it, before [`finish`].
pub fn base() -> Document {
    ApiDoc::openapi()
}

/// The served document: the router's paths with the shared parts added.
pub fn document() -> Document {
    let (_, mut doc) = crate::startup::api_routes().split_for_parts();
    finish(&mut doc);
    doc
}

static SERVED: LazyLock<String> = LazyLock::new(|| {
    document()
        .to_json()
        .expect("the OpenAPI document serializes")
});

/// This document, as JSON.
#[utoipa::path(get, path = "/openapi.json", tag = "service", operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API",
               content_type = "application/json", body = Object)))]
pub async fn serve() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        SERVED.as_str(),
    )
}

/// Adds the security schemes, the answers every operation shares and the
/// links between operations.
pub fn finish(doc: &mut Document) {
    let components = doc.components.get_or_insert_with(Default::default);
    let bearer = |description: &str| {
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(description))
                .build(),
        )
    };
    components.add_security_scheme(
        ADMIN,
        bearer("The admin token, `SLIPWAY_ADMIN_TOKEN`: manages projects and their tokens."),
    );
    components.add_security_scheme(
        PROJECT,
        bearer("A project token (`slw_…`, from `POST /v1/projects/{project_id}/tokens`): everything in its project."),
    );
    components.add_security_scheme(
        SESSION,
        SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Cookie(
            utoipa::openapi::security::ApiKeyValue::with_description(
                crate::auth::session::COOKIE,
                "A person's session from `POST /v1/sessions`. State-changing requests also send \
                 the session's CSRF token in `X-CSRF-Token`; project resources name the project \
                 in `Slipway-Project` (its id or name). Roles as for project tokens.",
            ),
        )),
    );
    for (path, item) in doc.paths.paths.iter_mut() {
        for operation in operations(item) {
            add_session_alternative(operation);
            add_common_errors(path, operation);
        }
    }
    add_links(doc);
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// The least role an operation needs, from its `project_token` scopes.
pub fn required_role(operation: &Operation) -> Option<crate::auth::Role> {
    operation.security.as_ref()?.iter().find_map(|requirement| {
        let value = serde_json::to_value(requirement).ok()?;
        let scopes = value.get(PROJECT)?.as_array()?;
        scopes
            .iter()
            .filter_map(|s| s.as_str().and_then(crate::auth::Role::parse))
            .min()
    })
}

/// A session may do what a project token of the same role may, and an
/// admin's session what the admin token may.
fn add_session_alternative(operation: &mut Operation) {
    use utoipa::openapi::security::SecurityRequirement;
    let Some(security) = operation.security.as_mut() else {
        return;
    };
    let has_admin = security.iter().any(|requirement| {
        serde_json::to_value(requirement)
            .ok()
            .is_some_and(|v| v.get(ADMIN).is_some())
    });
    let role = security.iter().find_map(|requirement| {
        let value = serde_json::to_value(requirement).ok()?;
        value.get(PROJECT)?.as_array().cloned()
    });
    let scopes: Vec<String> = match (role, has_admin) {
        (Some(scopes), _) => scopes
            .iter()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect(),
        (None, true) => vec!["admin".to_owned()],
        (None, false) => return,
    };
    security.push(SecurityRequirement::new(SESSION, scopes));
}

/// An error answer with the codes it can carry.
pub fn error(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .into()
}

/// The errors any authenticated `/v1` operation can answer, where its
/// annotation does not name them with codes of its own.
fn add_common_errors(path: &str, operation: &mut Operation) {
    let authenticated = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    let mut common: Vec<(&str, &str)> = Vec::new();
    if path.starts_with("/v1/") {
        common.push((
            "400",
            "`bad_path` (a path parameter of the wrong type), `bad_query` (an unknown or \
             ill-typed query parameter), `project_required` (a session or the admin token \
             without `Slipway-Project` on a project resource) or `malformed_json`",
        ));
        common.push((
            "422",
            "`validation_failed`: the request parsed but breaks a rule (the message names it)",
        ));
        common.push((
            "503",
            "`database_unavailable`: the database cannot be reached right now; retry after \
             the `Retry-After` header's seconds",
        ));
    }
    if path.contains('{') {
        common.push((
            "404",
            "`not_found`: no such resource in the caller's project",
        ));
    }
    if authenticated {
        common.push((
            "401",
            "`unauthorized`: missing, unknown, expired or revoked credentials",
        ));
        common.push((
            "403",
            "`forbidden`: the caller's role may not do this; `csrf_failed`: a session's \
             state-changing request without its `X-CSRF-Token`",
        ));
    }
    for (status, description) in common {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| error(description));
    }
}

/// `(from operation, its status, to operation, parameter, where its value
/// is)`: what a client (and the fuzzer's stateful phase) follows.
const LINKS: &[(&str, &str, &[&str], &str, &str)] = &[
    (
        "create_app",
        "201",
        &[
            "get_app",
            "update_app",
            "destroy_app",
            "create_deployment",
            "list_deployments",
            "stop_app",
            "start_app",
            "restart_app",
            "scale_app",
            "app_logs",
            "app_logs_stream",
            "upload_version",
            "list_versions",
            "create_addon",
            "list_addons",
            "create_webhook_secret",
        ],
        "app",
        "$response.body#/name",
    ),
    (
        "create_deployment",
        "202",
        &[
            "get_deployment",
            "cancel_deployment",
            "deployment_logs",
            "deployment_logs_stream",
        ],
        "id",
        "$response.body#/id",
    ),
    (
        "create_install",
        "202",
        &["get_install", "delete_install"],
        "id",
        "$response.body#/id",
    ),
    (
        "create_probe",
        "202",
        &["get_deployment", "cancel_deployment", "deployment_logs"],
        "id",
        "$response.body#/id",
    ),
    (
        "upload_version",
        "201",
        &["get_version", "download_version"],
        "id",
        "$response.body#/id",
    ),
    (
        "upload_version",
        "201",
        &["get_version", "download_version"],
        "app",
        "$request.path.app",
    ),
    (
        "create_webhook_secret",
        "201",
        &["delete_webhook_secret"],
        "app",
        "$request.path.app",
    ),
    (
        "create_addon",
        "201",
        &["delete_addon"],
        "name",
        "$response.body#/name",
    ),
    (
        "create_addon",
        "201",
        &["delete_addon"],
        "app",
        "$request.path.app",
    ),
    (
        "create_target",
        "201",
        &[
            "get_target",
            "delete_target",
            "check_target",
            "setup_target",
        ],
        "target",
        "$response.body#/name",
    ),
    (
        "create_cloud_account",
        "201",
        &["get_cloud_account", "delete_cloud_account"],
        "account",
        "$response.body#/name",
    ),
    (
        "create_app",
        "201",
        &["events_stream"],
        "apps",
        "$response.body#/name",
    ),
    (
        "create_project",
        "201",
        &["create_project_token"],
        "project_id",
        "$response.body#/id",
    ),
];

fn add_links(doc: &mut Document) {
    for (path_item_key, item) in doc.paths.paths.iter_mut() {
        let _ = path_item_key;
        for operation in operations(item) {
            let Some(id) = operation.operation_id.clone() else {
                continue;
            };
            for (from, status, targets, parameter, value) in LINKS {
                if *from != id {
                    continue;
                }
                let Some(RefOr::T(response)) = operation.responses.responses.get_mut(*status)
                else {
                    continue;
                };
                for target in *targets {
                    let name = target.to_string();
                    let link = match response.links.remove(&name) {
                        Some(RefOr::T(link)) => link,
                        _ => LinkBuilder::new().operation_id(*target).build(),
                    };
                    let mut link = link;
                    link.parameters.insert((*parameter).into(), (*value).into());
                    response.links.insert(name, RefOr::T(link));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
