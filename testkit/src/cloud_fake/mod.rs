//! Fakes of the cloud provider APIs that cannot run here (Hetzner Cloud,
//! OpenStack's Keystone, Nova, Neutron and Glance): one stateful HTTP
//! server per API on 127.0.0.1 and a free port, following the published
//! API (paths, auth, field names, pagination, asynchronous progress and the
//! providers' own error bodies), with scripted faults. They are fakes, not
//! the providers: only what Slipway's drivers use is there.
//!
//! A created server's IPv4 comes from an [`AddressHook`] the test gives
//! (a real test host later); without one, from 203.0.113.0/24, a range
//! reserved for documentation that nothing ever answers on.

pub mod hetzner;
pub mod hosts;
pub mod openstack;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::future::Future;
use std::net::Ipv4Addr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use tokio::task::JoinHandle;

/// What the fake tells the hook about a server it was asked to create.
#[derive(Debug, Clone)]
pub struct CreatedServer {
    pub id: String,
    pub name: String,
    /// The public keys of the key pairs named in the create.
    pub ssh_keys: Vec<String>,
    /// The user data as the driver meant it (decoded from base64 for Nova).
    pub user_data: String,
    pub labels: serde_json::Map<String, Value>,
    /// The snapshot it is created from ([`SnapshotHook`]'s handle), if it is.
    pub snapshot: Option<String>,
}

/// "Server created with these keys and this user data → its IPv4".
pub type AddressHook =
    Arc<dyn Fn(CreatedServer) -> Pin<Box<dyn Future<Output = Ipv4Addr> + Send>> + Send + Sync>;

/// "Server at this IPv4 deleted" (the test host there goes).
pub type DeleteHook = Arc<dyn Fn(Ipv4Addr) + Send + Sync>;

/// "Save the disk of the server at this IPv4" → a handle the fake keeps
/// with the image (a committed test host), or why it could not.
pub type SnapshotHook = Arc<
    dyn Fn(Ipv4Addr) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send>> + Send + Sync,
>;

/// "The image with this handle was deleted" (its saved test host goes).
pub type ForgetHook = Arc<dyn Fn(String) + Send + Sync>;

/// What a fake does with images, set by a test that boots real hosts.
#[derive(Clone, Default)]
pub struct ImageHooks {
    pub snapshot: Option<SnapshotHook>,
    pub forget: Option<ForgetHook>,
}

/// Scripted misbehaviour, changed at any time through the fake's `faults`.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// New servers never leave `initializing`/`BUILD` (their actions stay `running`).
    pub stuck_creating: bool,
    /// New servers fail after being accepted, with these words (a Hetzner
    /// action in `error`, a Nova server in `ERROR` with this fault).
    pub fail_create: Option<String>,
    /// The next this many requests answer 429 with `Retry-After`.
    pub rate_limited: u32,
    pub retry_after_secs: u64,
    /// The next this many requests answer 503, as a provider in trouble.
    pub unavailable: u32,
    /// The most servers the account may hold (a quota refusal beyond).
    pub server_quota: Option<usize>,
    /// A create's answer is sent this long after the server exists (a
    /// client that dies meanwhile never learns its id).
    pub create_answer_delay: Option<std::time::Duration>,
}

/// A served fake: its base URL, its task (stopped on drop).
pub(crate) struct Served {
    pub url: String,
    task: JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(crate) async fn serve(router: axum::Router) -> anyhow::Result<Served> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(Served { url, task })
}

/// The hook used when a test gives none.
pub(crate) fn documentation_addresses() -> AddressHook {
    let next = Arc::new(AtomicU8::new(1));
    Arc::new(move |_| {
        let host = next.fetch_add(1, Ordering::Relaxed);
        Box::pin(async move { Ipv4Addr::new(203, 0, 113, host) })
    })
}

/// Takes one rate-limit token, if any are scripted.
pub(crate) fn rate_limited(faults: &Mutex<Faults>) -> Option<u64> {
    let mut faults = faults.lock().unwrap();
    (faults.rate_limited > 0).then(|| {
        faults.rate_limited -= 1;
        faults.retry_after_secs
    })
}

/// Takes one 503 token, if any are scripted.
pub(crate) fn unavailable(faults: &Mutex<Faults>) -> bool {
    let mut faults = faults.lock().unwrap();
    let hit = faults.unavailable > 0;
    faults.unavailable = faults.unavailable.saturating_sub(1);
    hit
}

pub(crate) fn answer(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// Query parameters of a request (`?a=1&b=2`), decoded.
pub(crate) fn query(uri: &axum::http::Uri) -> Vec<(String, String)> {
    uri.query()
        .map(|q| serde_urlencoded::from_str(q).unwrap_or_default())
        .unwrap_or_default()
}

pub(crate) fn param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Whether an object's labels (or metadata) hold every `k=v` of a selector.
pub(crate) fn selected(labels: &Value, selector: Option<&str>) -> bool {
    selector.is_none_or(|s| {
        s.split(',')
            .filter(|p| !p.is_empty())
            .all(|pair| match pair.split_once('=') {
                Some((k, v)) => labels[k] == v,
                None => labels.get(pair).is_some(),
            })
    })
}
