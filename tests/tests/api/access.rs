//! People, roles, tokens and the audit log against the real API and
//! database: every route walked with every role (the role each needs is
//! read from the OpenAPI document, so the document and the code must
//! agree), sessions with CSRF and expiry, revocable tokens, invitations,
//! sign-in limits shared through Postgres, and the audit log.

use super::{Api, ADMIN};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use slipway_shared::config::AccountSettings;
use uuid::Uuid;

pub const ADMIN_EMAIL: &str = "root@example.com";
pub const ADMIN_PASSWORD: &str = "first admin password 1";
pub const PASSWORD: &str = "a long enough passphrase";

/// How a test calls: nobody, a bearer token, or a browser session.
#[derive(Clone, Debug)]
pub enum As {
    Nobody,
    Bearer(String),
    /// A bearer token naming a project in `Slipway-Project` (the admin token).
    BearerIn(String, String),
    Session {
        cookie: String,
        csrf: String,
        /// `Slipway-Project`.
        project: Option<String>,
    },
}

impl As {
    pub fn in_project(&self, project: &str) -> As {
        match self {
            As::Session { cookie, csrf, .. } => As::Session {
                cookie: cookie.clone(),
                csrf: csrf.clone(),
                project: Some(project.to_owned()),
            },
            other => other.clone(),
        }
    }
}

pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub headers: HeaderMap,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or_default()
    }
}

pub async fn send(api: &Api, method: Method, path: &str, who: &As, body: Option<Value>) -> Answer {
    let mut request = api.client.request(method, format!("{}{path}", api.url));
    match who {
        As::Nobody => {}
        As::Bearer(token) => request = request.bearer_auth(token),
        As::BearerIn(token, project) => {
            request = request
                .bearer_auth(token)
                .header("slipway-project", project)
        }
        As::Session {
            cookie,
            csrf,
            project,
        } => {
            request = request
                .header("cookie", format!("slipway_session={cookie}"))
                .header("x-csrf-token", csrf);
            if let Some(project) = project {
                request = request.header("slipway-project", project);
            }
        }
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("a response");
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("a body");
    Answer {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        headers,
    }
}

/// The session cookie's value in a `Set-Cookie` answer.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("slipway_session="))
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
        .filter(|v| !v.is_empty())
}

pub fn accounts() -> AccountSettings {
    AccountSettings {
        bootstrap_admin: Some((ADMIN_EMAIL.into(), ADMIN_PASSWORD.to_owned().into())),
        ..Default::default()
    }
}

pub async fn sign_in(api: &Api, email: &str, password: &str) -> Answer {
    send(
        api,
        Method::POST,
        "/v1/sessions",
        &As::Nobody,
        Some(json!({"email": email, "password": password})),
    )
    .await
}

/// A signed-in session from a sign-in or acceptance answer.
pub fn session_of(answer: &Answer) -> As {
    assert!(
        answer.status.is_success(),
        "{} {}",
        answer.status,
        answer.body
    );
    As::Session {
        cookie: session_cookie(&answer.headers).expect("a session cookie"),
        csrf: answer.body["csrf_token"]
            .as_str()
            .expect("a csrf token")
            .to_owned(),
        project: None,
    }
}

/// A project token of `role` made by `by`.
pub async fn token(api: &Api, by: &As, project: Uuid, role: &str) -> String {
    let answer = send(
        api,
        Method::POST,
        &format!("/v1/projects/{project}/tokens"),
        by,
        Some(json!({"name": format!("{role}-token"), "role": role})),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    answer.body["token"].as_str().expect("a token").to_owned()
}

/// Invites `email` as `role` and accepts: the new member's session.
pub async fn member(api: &Api, by: &As, project: Uuid, email: &str, role: &str) -> As {
    let invited = send(
        api,
        Method::POST,
        &format!("/v1/projects/{project}/invitations"),
        by,
        Some(json!({"email": email, "role": role})),
    )
    .await;
    assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.body);
    let secret = invited.body["token"].as_str().expect("a link secret");
    let accepted = send(
        api,
        Method::POST,
        &format!("/v1/invitations/{secret}/accept"),
        &As::Nobody,
        Some(json!({"password": PASSWORD})),
    )
    .await;
    assert_eq!(accepted.status, StatusCode::CREATED, "{}", accepted.body);
    session_of(&accepted).in_project(&project.to_string())
}

/// What an operation needs, as the document says.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Needs {
    Public,
    Admin,
    SessionOnly,
    Role(u8),
}

fn rank(role: &str) -> u8 {
    match role {
        "viewer" => 0,
        "member" => 1,
        "owner" => 2,
        other => panic!("unknown role {other} in the document"),
    }
}

fn needs(operation: &Value) -> Needs {
    let Some(requirements) = operation["security"].as_array() else {
        return Needs::Public;
    };
    let mut admin = false;
    let mut session = false;
    for requirement in requirements {
        if let Some(scopes) = requirement["project_token"].as_array() {
            let least = scopes.iter().filter_map(|s| s.as_str()).map(rank).min();
            return Needs::Role(least.expect("a project_token requirement names a role"));
        }
        admin |= requirement.get("admin_token").is_some();
        session |= requirement.get("session").is_some();
    }
    match (admin, session) {
        (true, _) => Needs::Admin,
        (false, true) => Needs::SessionOnly,
        (false, false) => Needs::Public,
    }
}

/// The path with its parameters filled: `real` names this project's
/// resources, otherwise ones that do not exist.
fn fill(template: &str, project: Uuid, deployment: &str, real: bool) -> String {
    let ghost = Uuid::now_v7().to_string();
    let mut out = template.replace("{project_id}", &project.to_string());
    let values: &[(&str, &str)] = if real {
        &[
            ("{app}", "web"),
            ("{id}", deployment),
            ("{target}", "t-none"),
            ("{name}", "none"),
        ]
    } else {
        &[
            ("{app}", "ghost"),
            ("{id}", &ghost),
            ("{target}", "t-none"),
            ("{name}", "none"),
        ]
    };
    for (param, value) in values {
        out = out.replace(param, value);
    }
    for param in ["{token_id}", "{user_id}", "{invitation_id}", "{app_id}"] {
        out = out.replace(param, &ghost);
    }
    out.replace("{token}", "0000")
        .replace("{provider}", "github")
}

#[tokio::test]
async fn every_route_answers_every_role_as_the_document_says() -> anyhow::Result<()> {
    let api = Api::start_with_accounts(accounts()).await?;
    let (alpha, alpha_owner) = api.project("alpha").await;
    let (beta, beta_owner) = api.project("beta").await;
    let owner_token = As::Bearer(alpha_owner.clone());
    let created = send(
        &api,
        Method::POST,
        "/v1/apps",
        &owner_token,
        Some(json!({"name": "web", "git_url": "https://example.invalid/web.git"})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let deployed = send(
        &api,
        Method::POST,
        "/v1/apps/web/deployments",
        &owner_token,
        Some(json!({})),
    )
    .await;
    let deployment = deployed.body["id"]
        .as_str()
        .expect("a deployment")
        .to_owned();

    let admin_session = session_of(&sign_in(&api, ADMIN_EMAIL, ADMIN_PASSWORD).await);
    let mut callers: Vec<(String, As, Option<u8>)> = Vec::new();
    for role in ["viewer", "member", "owner"] {
        let bearer = As::Bearer(token(&api, &owner_token, alpha, role).await);
        callers.push((format!("{role} token"), bearer, Some(rank(role))));
        let email = format!("{role}@example.com");
        let session = member(&api, &owner_token, alpha, &email, role).await;
        callers.push((format!("{role} session"), session, Some(rank(role))));
    }
    let doc: Value = api
        .client
        .get(format!("{}/openapi.json", api.url))
        .send()
        .await?
        .json()
        .await?;
    let mut checked = 0;
    for (template, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("an item") {
            let method: Method = method.to_uppercase().parse()?;
            let id = operation["operationId"].as_str().unwrap_or_default();
            let need = needs(operation);
            if need == Needs::Public || id == "sign_out" {
                continue; // public; signing out is checked on its own below
            }
            if template.starts_with("/v1/") {
                assert!(
                    template != "/v1/hooks/{provider}/{app_id}",
                    "webhooks are public"
                );
            }
            let body =
                matches!(method, Method::POST | Method::PATCH | Method::PUT).then(|| json!({}));
            let refused = fill(template, alpha, &deployment, true);
            // Nobody: 401 everywhere that is guarded.
            let answer = send(&api, method.clone(), &refused, &As::Nobody, body.clone()).await;
            assert_eq!(
                answer.status,
                StatusCode::UNAUTHORIZED,
                "nobody {method} {template}: {}",
                answer.body
            );
            for (who, caller, rank) in &callers {
                let allowed = match (need, rank) {
                    (Needs::Role(needed), Some(held)) => *held >= needed,
                    (Needs::SessionOnly, _) => matches!(caller, As::Session { .. }),
                    _ => false,
                };
                let path = if allowed {
                    fill(template, alpha, &deployment, false)
                } else {
                    refused.clone()
                };
                let answer = send(&api, method.clone(), &path, caller, body.clone()).await;
                if allowed {
                    assert!(
                        answer.status != StatusCode::UNAUTHORIZED
                            && answer.status != StatusCode::FORBIDDEN,
                        "{who} may {method} {template} ({id}) but got {}: {}",
                        answer.status,
                        answer.body
                    );
                } else {
                    assert_eq!(
                        answer.status,
                        StatusCode::FORBIDDEN,
                        "{who} may not {method} {template} ({id}): {}",
                        answer.body
                    );
                }
                checked += 1;
            }
            // Another project's owner: this project's resources answer as
            // ones that do not exist (404, or the same body error first).
            if matches!(need, Needs::Role(_)) && template.contains('{') {
                let beta_owner = As::Bearer(beta_owner.clone());
                let theirs = send(&api, method.clone(), &refused, &beta_owner, body.clone()).await;
                let ghost = fill(template, alpha, &deployment, false);
                let none = send(&api, method.clone(), &ghost, &beta_owner, body.clone()).await;
                assert_eq!(
                    (theirs.status, theirs.code()),
                    (none.status, none.code()),
                    "beta's owner {method} {template}: {} vs {}",
                    theirs.body,
                    none.body
                );
                if body.is_none() {
                    assert_eq!(
                        theirs.status,
                        StatusCode::NOT_FOUND,
                        "beta's owner {method} {template}"
                    );
                }
            }
            // Platform admins: everything, naming the project when it is one's.
            for admin in [
                As::BearerIn(ADMIN.into(), "alpha".into()),
                admin_session.in_project("alpha"),
            ] {
                let path = fill(template, alpha, &deployment, false);
                let answer = send(&api, method.clone(), &path, &admin, body.clone()).await;
                let expect_session_only =
                    need == Needs::SessionOnly && matches!(admin, As::BearerIn(..));
                if expect_session_only {
                    assert_eq!(
                        answer.status,
                        StatusCode::FORBIDDEN,
                        "admin token {method} {template}"
                    );
                } else {
                    assert!(
                        answer.status != StatusCode::UNAUTHORIZED
                            && answer.status != StatusCode::FORBIDDEN,
                        "admin {admin:?} {method} {template} got {}: {}",
                        answer.status,
                        answer.body
                    );
                }
            }
        }
    }
    assert!(checked > 300, "only {checked} calls were checked");
    let _ = beta;
    api.stop().await;
    Ok(())
}

#[tokio::test]
async fn tokens_have_roles_expire_and_fail_at_once_when_revoked() -> anyhow::Result<()> {
    let api = Api::start().await?;
    let (project, owner) = api.project("alpha").await;
    let owner = As::Bearer(owner);
    let base = format!("/v1/projects/{project}/tokens");
    // Bad input: 4xx with stable codes, nothing written.
    let before = api.count("api_tokens").await;
    for (body, code) in [
        (json!({"name": "x", "role": "admin"}), "validation_failed"),
        (json!({"name": "x"}), "validation_failed"),
        (json!({"name": " ", "role": "viewer"}), "validation_failed"),
        (
            json!({"name": "x", "role": "viewer", "expires_at": "2001-01-01T00:00:00Z"}),
            "validation_failed",
        ),
    ] {
        let answer = send(&api, Method::POST, &base, &owner, Some(body.clone())).await;
        assert_eq!(
            (answer.status, answer.code()),
            (StatusCode::UNPROCESSABLE_ENTITY, code),
            "{body}: {}",
            answer.body
        );
    }
    assert_eq!(api.count("api_tokens").await, before);

    let created = send(
        &api,
        Method::POST,
        &base,
        &owner,
        Some(json!({"name": "ci", "role": "viewer"})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let (id, secret) = (
        created.body["id"].as_str().unwrap().to_owned(),
        created.body["token"].as_str().unwrap().to_owned(),
    );
    let viewer = As::Bearer(secret.clone());
    assert_eq!(
        send(&api, Method::GET, "/v1/apps", &viewer, None)
            .await
            .status,
        StatusCode::OK
    );
    // A viewer reads but does not ship.
    let refused = send(
        &api,
        Method::POST,
        "/v1/apps",
        &viewer,
        Some(json!({"name": "web"})),
    )
    .await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    // Listed with its role and last use, never its secret.
    let listed = send(&api, Method::GET, &base, &owner, None).await;
    let row = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(
        (row["name"].as_str(), row["role"].as_str()),
        (Some("ci"), Some("viewer"))
    );
    assert!(row["last_used_at"].is_string(), "{row}");
    assert!(!listed.body.to_string().contains(&secret[4..]));
    // last_used_at is written at most once a minute.
    let first: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT last_used_at FROM api_tokens WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&api.db.pool)
            .await?;
    send(&api, Method::GET, "/v1/apps", &viewer, None).await;
    let second: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT last_used_at FROM api_tokens WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&api.db.pool)
            .await?;
    assert_eq!(first, second);
    // Revoked: the next request fails; revoking twice is a 409.
    let revoked = send(&api, Method::DELETE, &format!("{base}/{id}"), &owner, None).await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    assert_eq!(
        send(&api, Method::GET, "/v1/apps", &viewer, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let again = send(&api, Method::DELETE, &format!("{base}/{id}"), &owner, None).await;
    assert_eq!(
        (again.status, again.code()),
        (StatusCode::CONFLICT, "already_revoked")
    );
    let unknown = send(
        &api,
        Method::DELETE,
        &format!("{base}/{}", Uuid::now_v7()),
        &owner,
        None,
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    // Expired: refused from its expiry on.
    let expiring = send(&api, Method::POST, &base, &owner,
        Some(json!({"name": "short", "role": "member", "expires_at": chrono::Utc::now() + chrono::Duration::hours(1)}))).await;
    let expiring_token = As::Bearer(expiring.body["token"].as_str().unwrap().to_owned());
    assert_eq!(
        send(&api, Method::GET, "/v1/apps", &expiring_token, None)
            .await
            .status,
        StatusCode::OK
    );
    sqlx::query(
        "UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE name = 'short'",
    )
    .execute(&api.db.pool)
    .await?;
    assert_eq!(
        send(&api, Method::GET, "/v1/apps", &expiring_token, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    api.stop().await;
    Ok(())
}

#[tokio::test]
async fn sessions_are_http_only_need_csrf_and_end_on_idle_expiry_and_password_change(
) -> anyhow::Result<()> {
    let api = Api::start_with_accounts(accounts()).await?;
    let wrong = sign_in(&api, ADMIN_EMAIL, "not the password at all").await;
    assert_eq!(
        (wrong.status, wrong.code()),
        (StatusCode::UNAUTHORIZED, "invalid_credentials")
    );
    let nobody = sign_in(&api, "nobody@example.com", ADMIN_PASSWORD).await;
    assert_eq!(
        (nobody.status, nobody.code()),
        (StatusCode::UNAUTHORIZED, "invalid_credentials")
    );
    let signed = sign_in(&api, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(signed.status, StatusCode::CREATED, "{}", signed.body);
    let set_cookie = signed
        .headers
        .get("set-cookie")
        .unwrap()
        .to_str()?
        .to_owned();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(
        !set_cookie.contains("Secure"),
        "plain http gets no Secure cookie: {set_cookie}"
    );
    let session = session_of(&signed);
    let As::Session { cookie, csrf, .. } = session.clone() else {
        unreachable!()
    };
    // A state-changing request with the cookie but not its CSRF token is refused.
    let forged = api
        .client
        .post(format!("{}/v1/projects", api.url))
        .header("cookie", format!("slipway_session={cookie}"))
        .json(&json!({"name": "forged"}))
        .send()
        .await?;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(forged.json::<Value>().await?["code"], "csrf_failed");
    let wrong_csrf = api
        .client
        .post(format!("{}/v1/projects", api.url))
        .header("cookie", format!("slipway_session={cookie}"))
        .header("x-csrf-token", "0".repeat(64))
        .json(&json!({"name": "forged"}))
        .send()
        .await?;
    assert_eq!(wrong_csrf.status(), StatusCode::FORBIDDEN);
    assert_eq!(api.count("projects").await, 0, "nothing was written");
    // Reads need no CSRF token; with it, writes work.
    let me = api
        .client
        .get(format!("{}/v1/me", api.url))
        .header("cookie", format!("slipway_session={cookie}"))
        .send()
        .await?;
    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(me.json::<Value>().await?["csrf_token"], csrf.as_str());
    let made = send(
        &api,
        Method::POST,
        "/v1/projects",
        &session,
        Some(json!({"name": "mine"})),
    )
    .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    // A second session, listed, revoked by the first.
    let other = session_of(&sign_in(&api, ADMIN_EMAIL, ADMIN_PASSWORD).await);
    let listed = send(&api, Method::GET, "/v1/sessions", &session, None).await;
    let items = listed.body["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 2);
    assert_eq!(items.iter().filter(|s| s["current"] == true).count(), 1);
    let other_id = items.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        send(
            &api,
            Method::DELETE,
            &format!("/v1/sessions/{other_id}"),
            &session,
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        send(&api, Method::GET, "/v1/me", &other, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Idle expiry and absolute expiry.
    let idle = session_of(&sign_in(&api, ADMIN_EMAIL, ADMIN_PASSWORD).await);
    let As::Session {
        cookie: idle_cookie,
        ..
    } = &idle
    else {
        unreachable!()
    };
    sqlx::query(
        "UPDATE sessions SET last_seen_at = now() - interval '13 hours' WHERE token_sha256 = $1",
    )
    .bind(slipway_api::auth::hash(idle_cookie))
    .execute(&api.db.pool)
    .await?;
    assert_eq!(
        send(&api, Method::GET, "/v1/me", &idle, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let old = session_of(&sign_in(&api, ADMIN_EMAIL, ADMIN_PASSWORD).await);
    let As::Session {
        cookie: old_cookie, ..
    } = &old
    else {
        unreachable!()
    };
    sqlx::query(
        "UPDATE sessions SET expires_at = now() - interval '1 second' WHERE token_sha256 = $1",
    )
    .bind(slipway_api::auth::hash(old_cookie))
    .execute(&api.db.pool)
    .await?;
    assert_eq!(
        send(&api, Method::GET, "/v1/me", &old, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    // A password change ends every session; weak passwords are refused.
    let third = session_of(&sign_in(&api, ADMIN_EMAIL, ADMIN_PASSWORD).await);
    let weak = send(
        &api,
        Method::POST,
        "/v1/me/password",
        &session,
        Some(json!({"current_password": ADMIN_PASSWORD, "new_password": "short"})),
    )
    .await;
    assert_eq!(
        (weak.status, weak.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "weak_password")
    );
    let wrong_current = send(
        &api,
        Method::POST,
        "/v1/me/password",
        &session,
        Some(json!({"current_password": "nope nope nope", "new_password": PASSWORD})),
    )
    .await;
    assert_eq!(wrong_current.code(), "wrong_password");
    let changed = send(
        &api,
        Method::POST,
        "/v1/me/password",
        &session,
        Some(json!({"current_password": ADMIN_PASSWORD, "new_password": PASSWORD})),
    )
    .await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT, "{}", changed.body);
    for ended in [&session, &third] {
        assert_eq!(
            send(&api, Method::GET, "/v1/me", ended, None).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        sign_in(&api, ADMIN_EMAIL, PASSWORD).await.status,
        StatusCode::CREATED
    );
    // Tokens are not sessions.
    let (_, token) = api.project("alpha").await;
    let answer = send(&api, Method::GET, "/v1/me", &As::Bearer(token), None).await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::FORBIDDEN, "session_required")
    );
    api.stop().await;
    Ok(())
}

#[tokio::test]
async fn cookies_are_secure_behind_https() -> anyhow::Result<()> {
    let api = Api::start_with_accounts(AccountSettings {
        public_url: Some("https://slipway.example.com".into()),
        ..accounts()
    })
    .await?;
    let signed = sign_in(&api, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let set_cookie = signed.headers.get("set-cookie").unwrap().to_str()?;
    assert!(set_cookie.contains("; Secure"), "{set_cookie}");
    api.stop().await;
    Ok(())
}

#[tokio::test]
async fn invitations_make_members_with_roles_and_refuse_bad_input() -> anyhow::Result<()> {
    let api = Api::start_with_accounts(accounts()).await?;
    let (project, owner) = api.project("alpha").await;
    let owner = As::Bearer(owner);
    let base = format!("/v1/projects/{project}/invitations");
    for (body, status, code) in [
        (
            json!({"email": "bob@example.com", "role": "god"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"email": "not-an-email", "role": "viewer"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
    ] {
        let answer = send(&api, Method::POST, &base, &owner, Some(body)).await;
        assert_eq!(
            (answer.status, answer.code()),
            (status, code),
            "{}",
            answer.body
        );
    }
    assert_eq!(api.count("invitations").await, 0);
    let invited = send(
        &api,
        Method::POST,
        &base,
        &owner,
        Some(json!({"email": "bob@example.com", "role": "viewer"})),
    )
    .await;
    assert_eq!(invited.status, StatusCode::CREATED);
    assert_eq!(invited.body["mailed"], false);
    let twice = send(
        &api,
        Method::POST,
        &base,
        &owner,
        Some(json!({"email": "BOB@example.com", "role": "member"})),
    )
    .await;
    assert_eq!(
        (twice.status, twice.code()),
        (StatusCode::CONFLICT, "already_invited")
    );
    let secret = invited.body["token"].as_str().unwrap();
    let weak = send(
        &api,
        Method::POST,
        &format!("/v1/invitations/{secret}/accept"),
        &As::Nobody,
        Some(json!({"password": "123"})),
    )
    .await;
    assert_eq!(
        (weak.status, weak.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "weak_password")
    );
    assert_eq!(api.count("users").await, 1, "only the first admin");
    let accepted = send(
        &api,
        Method::POST,
        &format!("/v1/invitations/{secret}/accept"),
        &As::Nobody,
        Some(json!({"password": PASSWORD})),
    )
    .await;
    assert_eq!(accepted.status, StatusCode::CREATED, "{}", accepted.body);
    let bob = session_of(&accepted).in_project("alpha");
    let used = send(
        &api,
        Method::POST,
        &format!("/v1/invitations/{secret}/accept"),
        &As::Nobody,
        Some(json!({"password": PASSWORD})),
    )
    .await;
    assert_eq!(used.status, StatusCode::NOT_FOUND, "a link works once");
    let member_again = send(
        &api,
        Method::POST,
        &base,
        &owner,
        Some(json!({"email": "bob@example.com", "role": "owner"})),
    )
    .await;
    assert_eq!(
        (member_again.status, member_again.code()),
        (StatusCode::CONFLICT, "already_member")
    );
    // Bob the viewer reads apps and env keys, never secret values, and cannot deploy.
    send(
        &api,
        Method::POST,
        "/v1/apps",
        &owner,
        Some(
            json!({"name": "web", "git_url": "https://example.invalid/w.git",
        "env": {"PLAIN": "visible"}, "secrets": {"API_KEY": "hunter2-secret-value"}}),
        ),
    )
    .await;
    let app = send(&api, Method::GET, "/v1/apps/web", &bob, None).await;
    assert_eq!(app.status, StatusCode::OK, "{}", app.body);
    assert!(app.body["secrets"].get("API_KEY").is_some());
    assert!(!app.body.to_string().contains("hunter2-secret-value"));
    let deploy = send(
        &api,
        Method::POST,
        "/v1/apps/web/deployments",
        &bob,
        Some(json!({})),
    )
    .await;
    assert_eq!(deploy.status, StatusCode::FORBIDDEN);
    // Bob's projects list shows his role; without naming a project he must.
    let projects = send(&api, Method::GET, "/v1/projects", &bob, None).await;
    assert_eq!(projects.body["items"][0]["role"], "viewer");
    let As::Session { cookie, csrf, .. } = &bob else {
        unreachable!()
    };
    let unnamed = send(
        &api,
        Method::GET,
        "/v1/apps",
        &As::Session {
            cookie: cookie.clone(),
            csrf: csrf.clone(),
            project: None,
        },
        None,
    )
    .await;
    assert_eq!(
        (unnamed.status, unnamed.code()),
        (StatusCode::BAD_REQUEST, "project_required")
    );
    // Owners change roles; the last owner stays.
    let members = send(
        &api,
        Method::GET,
        &format!("/v1/projects/{project}/members"),
        &owner,
        None,
    )
    .await;
    let bob_id = members.body["items"][0]["user_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let promoted = send(
        &api,
        Method::PATCH,
        &format!("/v1/projects/{project}/members/{bob_id}"),
        &owner,
        Some(json!({"role": "owner"})),
    )
    .await;
    assert_eq!(promoted.status, StatusCode::OK, "{}", promoted.body);
    let last = send(
        &api,
        Method::PATCH,
        &format!("/v1/projects/{project}/members/{bob_id}"),
        &owner,
        Some(json!({"role": "viewer"})),
    )
    .await;
    assert_eq!(
        (last.status, last.code()),
        (StatusCode::CONFLICT, "last_owner")
    );
    assert_eq!(
        send(
            &api,
            Method::POST,
            "/v1/apps/web/deployments",
            &bob,
            Some(json!({}))
        )
        .await
        .status,
        StatusCode::ACCEPTED
    );
    // An admin's reset link sets a new password and ends Bob's sessions.
    let reset = send(
        &api,
        Method::POST,
        &format!("/v1/users/{bob_id}/password-reset"),
        &As::Bearer(ADMIN.into()),
        None,
    )
    .await;
    assert_eq!(reset.status, StatusCode::CREATED, "{}", reset.body);
    let link = reset.body["token"].as_str().unwrap();
    let new_password = "another long passphrase";
    let used = send(
        &api,
        Method::POST,
        &format!("/v1/password-resets/{link}"),
        &As::Nobody,
        Some(json!({"password": new_password})),
    )
    .await;
    assert_eq!(used.status, StatusCode::NO_CONTENT, "{}", used.body);
    assert_eq!(
        send(&api, Method::GET, "/v1/apps", &bob, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        sign_in(&api, "bob@example.com", new_password).await.status,
        StatusCode::CREATED
    );
    // Disabled: no sign-in; deleted: gone, and the last admin stays.
    let admin = As::Bearer(ADMIN.into());
    assert_eq!(
        send(
            &api,
            Method::POST,
            &format!("/v1/users/{bob_id}/disable"),
            &admin,
            None
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        sign_in(&api, "bob@example.com", new_password).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(
            &api,
            Method::DELETE,
            &format!("/v1/users/{bob_id}"),
            &admin,
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    let users = send(&api, Method::GET, "/v1/users", &admin, None).await;
    let root_id = users.body["items"][0]["id"].as_str().unwrap().to_owned();
    let last_admin = send(
        &api,
        Method::DELETE,
        &format!("/v1/users/{root_id}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(
        (last_admin.status, last_admin.code()),
        (StatusCode::CONFLICT, "last_admin")
    );
    api.stop().await;
    Ok(())
}

#[tokio::test]
async fn failed_sign_ins_are_limited_across_api_processes() -> anyhow::Result<()> {
    let limits = slipway_shared::config::SignInLimits {
        window: std::time::Duration::from_secs(3600),
        per_account: 3,
        per_address: 5,
    };
    let api = Api::start_with_accounts(AccountSettings {
        signin: limits,
        ..accounts()
    })
    .await?;
    // A second API process on the same database.
    let second = api.second_process().await?;
    for attempt in 0..3 {
        let on = if attempt % 2 == 0 { &api.url } else { &second };
        let answer = api
            .client
            .post(format!("{on}/v1/sessions"))
            .json(&json!({"email": ADMIN_EMAIL, "password": "wrong wrong wrong"}))
            .send()
            .await?;
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    }
    // Past the account's limit: 429 with Retry-After, even with the right password, on either process.
    for on in [&api.url, &second] {
        let answer = api
            .client
            .post(format!("{on}/v1/sessions"))
            .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
            .send()
            .await?;
        assert_eq!(answer.status(), StatusCode::TOO_MANY_REQUESTS);
        let wait: u64 = answer.headers()["retry-after"].to_str()?.parse()?;
        assert!((1..=3600).contains(&wait));
        assert_eq!(answer.json::<Value>().await?["code"], "too_many_attempts");
    }
    // The address limit: other accounts from the same address.
    for n in 0..2 {
        let answer = sign_in(&api, &format!("x{n}@example.com"), "wrong wrong wrong").await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    }
    let blocked = sign_in(&api, "y@example.com", "wrong wrong wrong").await;
    assert_eq!(
        blocked.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        blocked.body
    );
    // X-Forwarded-For from an untrusted peer does not buy a new budget.
    let spoofed = api
        .client
        .post(format!("{}/v1/sessions", api.url))
        .header("x-forwarded-for", "203.0.113.7")
        .json(&json!({"email": "z@example.com", "password": "wrong wrong wrong"}))
        .send()
        .await?;
    assert_eq!(spoofed.status(), StatusCode::TOO_MANY_REQUESTS);
    api.stop().await;
    Ok(())
}

#[tokio::test]
async fn forwarded_addresses_are_believed_only_from_trusted_proxies() -> anyhow::Result<()> {
    let limits = slipway_shared::config::SignInLimits {
        window: std::time::Duration::from_secs(3600),
        per_account: 100,
        per_address: 1,
    };
    let api = Api::start_with_accounts(AccountSettings {
        signin: limits,
        trusted_proxies: slipway_shared::config::parse_networks("127.0.0.1")
            .map_err(anyhow::Error::msg)?,
        ..accounts()
    })
    .await?;
    let attempt = |address: &'static str| {
        api.client
            .post(format!("{}/v1/sessions", api.url))
            .header("x-forwarded-for", address)
            .json(&json!({"email": "a@example.com", "password": "wrong wrong wrong"}))
            .send()
    };
    assert_eq!(
        attempt("198.51.100.1").await?.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        attempt("198.51.100.1").await?.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // Behind the trusted proxy, another client has its own budget.
    assert_eq!(
        attempt("198.51.100.2").await?.status(),
        StatusCode::UNAUTHORIZED
    );
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT source_address FROM audit_log WHERE action = 'sign_in' ORDER BY id",
    )
    .fetch_all(&api.db.pool)
    .await?;
    assert_eq!(rows, ["198.51.100.1", "198.51.100.1", "198.51.100.2"]);
    api.stop().await;
    Ok(())
}

#[tokio::test]
async fn the_audit_log_records_every_change_and_refusal_without_bodies() -> anyhow::Result<()> {
    let api = Api::start_with_accounts(accounts()).await?;
    let (alpha, owner) = api.project("alpha").await;
    let (_, beta_owner) = api.project("beta").await;
    let owner = As::Bearer(owner);
    let viewer = As::Bearer(token(&api, &owner, alpha, "viewer").await);
    let secret = "s3cret-value-never-logged";
    let created = send(&api, Method::POST, "/v1/apps", &owner,
        Some(json!({"name": "web", "git_url": "https://example.invalid/w.git", "secrets": {"KEY": secret}}))).await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(
        send(
            &api,
            Method::POST,
            "/v1/apps",
            &viewer,
            Some(json!({"name": "x"}))
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(
            &api,
            Method::POST,
            "/v1/apps",
            &As::Nobody,
            Some(json!({"name": "x"}))
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(
            &api,
            Method::POST,
            "/v1/apps",
            &owner,
            Some(json!({"name": "BAD NAME"}))
        )
        .await
        .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    send(
        &api,
        Method::POST,
        "/v1/apps",
        &As::Bearer(beta_owner.clone()),
        Some(json!({"name": "other"})),
    )
    .await;
    let session = session_of(&sign_in(&api, ADMIN_EMAIL, ADMIN_PASSWORD).await);
    let As::Session { cookie, .. } = &session else {
        unreachable!()
    };
    api.client
        .post(format!("{}/v1/projects", api.url))
        .header("cookie", format!("slipway_session={cookie}"))
        .json(&json!({"name": "forged"}))
        .send()
        .await?;

    // Owners see their project's rows, newest first, filtered.
    let page = send(
        &api,
        Method::GET,
        "/v1/audit?action=create_app",
        &owner,
        None,
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let items = page.body["items"].as_array().unwrap();
    let seen: Vec<(String, String, i64)> = items
        .iter()
        .map(|r| {
            (
                r["actor"].as_str().unwrap().to_owned(),
                r["outcome"].as_str().unwrap().to_owned(),
                r["status"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("token t".to_owned(), "refused".to_owned(), 422),
            ("token viewer-token".to_owned(), "refused".to_owned(), 403),
            ("token t".to_owned(), "succeeded".to_owned(), 201),
        ],
        "beta's and the anonymous call are not alpha's"
    );
    assert_eq!(items[2]["resource"], "/v1/apps");
    assert_eq!(items[2]["source_address"], "127.0.0.1");
    // Paging.
    let first = send(&api, Method::GET, "/v1/audit?limit=1", &owner, None).await;
    let next = first.body["next"].as_i64().expect("a next page");
    let second = send(
        &api,
        Method::GET,
        &format!("/v1/audit?limit=1&before={next}"),
        &owner,
        None,
    )
    .await;
    assert!(second.body["items"][0]["id"].as_i64().unwrap() < next);
    // Admins see everything: the anonymous refusal and the CSRF refusal too.
    let all = send(
        &api,
        Method::GET,
        "/v1/audit?limit=100",
        &As::Bearer(ADMIN.into()),
        None,
    )
    .await;
    let text = all.body.to_string();
    assert!(all.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["actor_kind"] == "anonymous" && r["status"] == 401));
    assert!(all.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["actor"] == ADMIN_EMAIL && r["status"] == 403));
    // Never a body, never a secret.
    assert!(!text.contains(secret) && !text.contains(ADMIN_PASSWORD));
    let raw: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE audit_log::text LIKE '%' || $1 || '%'",
    )
    .bind(secret)
    .fetch_one(&api.db.pool)
    .await?;
    assert_eq!(raw, 0);
    // Viewers may not read it.
    assert_eq!(
        send(&api, Method::GET, "/v1/audit", &viewer, None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    // Append-only: updates and deletes are refused; retention pruning works.
    assert!(sqlx::query("UPDATE audit_log SET actor = 'someone else'")
        .execute(&api.db.pool)
        .await
        .is_err());
    assert!(sqlx::query("DELETE FROM audit_log")
        .execute(&api.db.pool)
        .await
        .is_err());
    let rows = api.count("audit_log").await;
    sqlx::query("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
        .execute(&api.db.pool)
        .await?;
    sqlx::query("UPDATE audit_log SET at = at - interval '400 days' WHERE id = (SELECT min(id) FROM audit_log)").execute(&api.db.pool).await?;
    sqlx::query("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")
        .execute(&api.db.pool)
        .await?;
    let pruned = slipway_api::audit::prune(
        &api.db.pool,
        std::time::Duration::from_secs(365 * 24 * 3600),
    )
    .await?;
    assert_eq!(pruned, 1);
    assert_eq!(api.count("audit_log").await, rows - 1);
    api.stop().await;
    Ok(())
}

#[tokio::test]
async fn invitations_are_mailed_through_a_real_smtp_server() -> anyhow::Result<()> {
    // Python's own SMTP server prints every message it receives.
    let port = slipway_testkit::free_port();
    let mut server = tokio::process::Command::new("python3")
        .args([
            "-u",
            "-W",
            "ignore",
            "-m",
            "smtpd",
            "-n",
            "-c",
            "DebuggingServer",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let address = format!("127.0.0.1:{port}");
    slipway_testkit::wait_until(
        std::time::Duration::from_secs(20),
        "the SMTP server",
        || async { tokio::net::TcpStream::connect(&address).await.is_ok() },
    )
    .await?;
    let api = Api::start_with_accounts(AccountSettings {
        smtp: Some(slipway_shared::config::SmtpSettings {
            url: format!("smtp://127.0.0.1:{port}"),
            from: "Slipway <slipway@example.com>".into(),
        }),
        public_url: Some("https://slipway.example.com".into()),
        ..accounts()
    })
    .await?;
    let (project, owner) = api.project("alpha").await;
    let invited = send(
        &api,
        Method::POST,
        &format!("/v1/projects/{project}/invitations"),
        &As::Bearer(owner),
        Some(json!({"email": "carol@example.com", "role": "member"})),
    )
    .await;
    assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.body);
    assert_eq!(invited.body["mailed"], true);
    let url = invited.body["url"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with("https://slipway.example.com/invite/"),
        "{url}"
    );
    // The link arrives in the mail.
    let mut stdout = server.stdout.take().expect("stdout");
    let mut seen = String::new();
    let found = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        use tokio::io::AsyncReadExt;
        let mut buffer = [0u8; 4096];
        // The server prints each line as Python bytes (`b'…'`); the body is
        // quoted-printable, whose soft breaks (`=` at a line's end) join.
        let unfolded = |seen: &str| {
            seen.lines()
                .map(|l| l.trim_start_matches("b'").trim_end_matches('\''))
                .collect::<Vec<_>>()
                .join("\n")
                .replace("=\n", "")
        };
        while !unfolded(&seen).contains(&url) {
            let n = stdout.read(&mut buffer).await?;
            if n == 0 {
                break;
            }
            seen.push_str(&String::from_utf8_lossy(&buffer[..n]));
        }
        anyhow::Ok(unfolded(&seen).contains(&url))
    })
    .await;
    assert!(matches!(found, Ok(Ok(true))), "the mail server saw: {seen}");
    assert!(seen.contains("carol@example.com"));
    server.kill().await?;
    api.stop().await;
    Ok(())
}

#[tokio::test]
async fn the_first_admin_is_made_by_a_command_with_the_password_on_stdin() -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt;
    let api = Api::start().await?;
    let run = |email: &'static str, password: &'static str| {
        let url = api.db.url.clone();
        async move {
            let mut child = tokio::process::Command::new(slipway_testkit::bin_path("slipway-api"))
                .args(["create-admin", email])
                .env("SLIPWAY_DATABASE_URL", url)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()?;
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(format!("{password}\n").as_bytes()).await?;
            drop(stdin);
            anyhow::Ok(child.wait_with_output().await?)
        }
    };
    let weak = run("admin@example.com", "weak").await?;
    assert!(!weak.status.success());
    assert!(
        String::from_utf8_lossy(&weak.stderr).contains("password"),
        "{weak:?}"
    );
    assert_eq!(api.count("users").await, 0, "nothing half-made");
    let made = run("admin@example.com", PASSWORD).await?;
    assert!(made.status.success(), "{made:?}");
    let again = run("admin@example.com", PASSWORD).await?;
    assert!(!again.status.success(), "an email is one account");
    let signed = sign_in(&api, "admin@example.com", PASSWORD).await;
    assert_eq!(signed.status, StatusCode::CREATED);
    assert_eq!(signed.body["user"]["is_admin"], true);
    api.stop().await;
    Ok(())
}
