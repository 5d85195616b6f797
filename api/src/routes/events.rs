//! `GET /v1/events`: one server-sent event stream per dashboard tab, with
//! the state changes of the deployments and apps it names and their new
//! log lines. Every client of a process shares the `EventHub`'s poller; a
//! client reads the database itself only to catch up when it connects (or
//! falls behind the broadcast), from its `Last-Event-ID`.

use crate::auth::Viewer;
use crate::error::ApiError;
use crate::events::{self, Batch, Cursor, EventPos, Source};
use crate::extract::Query;
use crate::openapi::{views, ErrorBody};
use crate::state::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use uuid::Uuid;

/// How many deployments plus apps one stream may name.
const MAX_SUBSCRIPTIONS: usize = 50;

/// `?deployments=ID,ID&apps=NAME,NAME`.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Deployment ids, comma-separated: their state changes and log lines.
    deployments: Option<String>,
    /// App names, comma-separated: their deployments' and releases' state
    /// and health changes, and what their containers print.
    apps: Option<String>,
    /// `false`: send what is stored after `Last-Event-ID` (with none: the
    /// named deployments' lines) and close (default `true`: keep following).
    follow: Option<bool>,
}

/// A followed log source and where this client is in it.
struct Followed {
    source: Source,
    id: Uuid,
    /// The app's name, for app lines.
    name: Option<String>,
    seq: i64,
}

/// What the client named, checked against the project.
async fn subscriptions(
    state: &AppState,
    project: Uuid,
    query: &EventsQuery,
) -> Result<Vec<Followed>, ApiError> {
    let split = |s: &Option<String>| -> Vec<String> {
        s.iter()
            .flat_map(|s| s.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let (deployments, apps) = (split(&query.deployments), split(&query.apps));
    if deployments.is_empty() && apps.is_empty() {
        return Err(ApiError::validation(
            "deployments, apps: name at least one deployment or app",
        ));
    }
    if deployments.len() + apps.len() > MAX_SUBSCRIPTIONS {
        return Err(ApiError::validation(format!(
            "deployments, apps: at most {MAX_SUBSCRIPTIONS} in all"
        )));
    }
    let mut followed = Vec::new();
    for id in deployments {
        let id: Uuid = id
            .parse()
            .map_err(|_| ApiError::validation(format!("deployments: `{id}` is not an id")))?;
        let found: Option<Uuid> =
            sqlx::query_scalar("SELECT id FROM deployments WHERE id = $1 AND project_id = $2")
                .bind(id)
                .bind(project)
                .fetch_optional(&state.pool)
                .await?;
        found.ok_or(ApiError::NotFound("deployment"))?;
        followed.push(Followed {
            source: Source::Deployment,
            id,
            name: None,
            seq: 0,
        });
    }
    for name in apps {
        let found: Option<Uuid> =
            sqlx::query_scalar("SELECT id FROM apps WHERE project_id = $1 AND name = $2")
                .bind(project)
                .bind(&name)
                .fetch_optional(&state.pool)
                .await?;
        let id = found.ok_or(ApiError::NotFound("app"))?;
        followed.push(Followed {
            source: Source::App,
            id,
            name: Some(name),
            seq: 0,
        });
    }
    Ok(followed)
}

/// The dashboard's event stream.
///
/// `deployment` events (`{deployment, app, kind, state, from, error_code,
/// at}`) for the named deployments and every deployment of the named apps;
/// `app` events (`{app, release, deployment, release_state, health, at}`)
/// when a named app's release changes state or health; `log` events (a
/// deployment's `{deployment, seq, at, stage, stream, line}` or an app's
/// `{app, seq, at, container, stream, line}`). Without `Last-Event-ID` the
/// stream starts now, with the named deployments' stored lines; every
/// event's id resumes the whole stream (`Last-Event-ID`, same query). An
/// event is sent only once every transaction that could precede it has
/// ended, so none is skipped, however late it commits.
#[utoipa::path(get, path = "/v1/events", tag = "deployments", operation_id = "events_stream",
    security(("project_token" = ["viewer"])),
    params(EventsQuery, ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event (an id the stream sent)")),
    responses(
        (status = 200, description = "`deployment`, `app` and `log` events", content_type = "text/event-stream", body = views::StreamEvent),
        (status = 404, description = "`not_found`: no such deployment or app", body = ErrorBody),
        (status = 422, description = "`validation_failed`: a bad id, none or too many subscriptions, or a `Last-Event-ID` this stream did not send", body = ErrorBody),
    ))]
pub async fn stream(
    Viewer(project): Viewer,
    State(state): State<AppState>,
    Query(query): Query<EventsQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let mut followed = subscriptions(&state, project.id, &query).await?;
    let resume = match headers.get("last-event-id") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| Cursor::parse(v, followed.len()))
                .ok_or_else(|| ApiError::validation("Last-Event-ID: not an id of this stream"))?,
        ),
    };
    let pool = state.pool.clone();
    // Subscribed before the catch-up reads, so nothing falls between them.
    let mut batches = state.events.subscribe();
    let mut after = match &resume {
        Some(cursor) => {
            for (f, seq) in followed.iter_mut().zip(&cursor.seqs) {
                f.seq = *seq;
            }
            cursor.events
        }
        None => {
            // From now: app logs from their last line, deployments' whole log.
            for f in followed.iter_mut().filter(|f| f.source == Source::App) {
                f.seq = events::current_seq(&pool, f.source, f.id).await?;
            }
            EventPos {
                xid: events::horizon_now(&pool).await?,
                id: 0,
            }
        }
    };
    let _guards: Vec<_> = followed
        .iter()
        .map(|f| state.events.follow(f.source, f.id, f.seq))
        .collect();
    let project_id = project.id;
    let follow = query.follow.unwrap_or(true);
    let stream = async_stream::stream! {
        let _guards = _guards;
        let mut caught_up = false;
        loop {
            if !caught_up {
                match catch_up(&pool, project_id, after, &followed).await {
                    Ok(batch) => {
                        for event in deliver(&batch, &mut after, &mut followed) {
                            yield Ok(event);
                        }
                        caught_up = true;
                        if !follow {
                            break;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "event stream catch-up failed");
                        tokio::time::sleep(events::TICK).await;
                        continue;
                    }
                }
            }
            match batches.recv().await {
                Ok(batch) => {
                    for event in deliver(&batch, &mut after, &mut followed) {
                        yield Ok(event);
                    }
                }
                // Fell behind the broadcast: read what was missed again.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => caught_up = false,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    };
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

async fn catch_up(
    pool: &sqlx::PgPool,
    project: Uuid,
    after: EventPos,
    followed: &[Followed],
) -> sqlx::Result<Arc<Batch>> {
    let (_, events) = events::catch_up_events(pool, project, after).await?;
    let mut lines = Vec::new();
    for f in followed {
        lines.extend(events::catch_up_lines(pool, f.source, f.id, f.seq).await?);
    }
    Ok(Arc::new(Batch { events, lines }))
}

/// The batch's events this client follows and has not had yet, advancing
/// its cursor; each event's id is the cursor after it.
fn deliver(batch: &Batch, after: &mut EventPos, followed: &mut [Followed]) -> Vec<Event> {
    let deployments: HashMap<Uuid, ()> = followed
        .iter()
        .filter(|f| f.source == Source::Deployment)
        .map(|f| (f.id, ()))
        .collect();
    let apps: HashMap<Uuid, ()> = followed
        .iter()
        .filter(|f| f.source == Source::App)
        .map(|f| (f.id, ()))
        .collect();
    let mut out = Vec::new();
    for event in &batch.events {
        if event.pos() <= *after {
            continue;
        }
        *after = event.pos();
        let wanted = event
            .deployment_id
            .is_some_and(|d| deployments.contains_key(&d))
            || event.app_id.is_some_and(|a| apps.contains_key(&a));
        if wanted {
            out.push(sse(&event.kind, &event.data, *after, followed));
        }
    }
    for line in &batch.lines {
        let Some(f) = followed
            .iter_mut()
            .find(|f| f.source == line.source && f.id == line.id)
        else {
            continue;
        };
        if line.seq <= f.seq {
            continue;
        }
        f.seq = line.seq;
        let data = line.data(f.name.as_deref());
        out.push(sse("log", &data, *after, followed));
    }
    out
}

fn sse(kind: &str, data: &Value, after: EventPos, followed: &[Followed]) -> Event {
    let cursor = Cursor {
        events: after,
        seqs: followed.iter().map(|f| f.seq).collect(),
    };
    Event::default()
        .event(kind)
        .id(cursor.to_string())
        .data(json!(data).to_string())
}
