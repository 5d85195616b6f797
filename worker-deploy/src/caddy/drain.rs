//! Keep-alive connections across Caddy's config reloads.
//!
//! Every admin API change reloads Caddy's whole config: the old servers are
//! shut down, and Go's `http.Server.Shutdown` closes their idle keep-alive
//! connections at once. A client that sends its next request on such a
//! connection at that instant gets a reset, which no HTTP/1.1 client can
//! safely retry: an upstream switch under load failed 27 of 12,001
//! keep-alive requests at ~190 reloads (and 0–2 of ~3,000 in the deploy
//! bench's five redeploys).
//!
//! So every reload ends gracefully for HTTP/1.1 clients: the http app's
//! `shutdown_delay` keeps the old servers serving for [`SHUTDOWN_DELAY`]
//! after a new config is running (Caddy 2.6.2 applies it to every reload,
//! not only at exit: caddyserver/caddy#5393), and while a server is being
//! shut down ([`drain_route`], first on every server we own) its answers say
//! `Connection: close`, so clients close those connections themselves and
//! open new ones to the new servers. Measured with 1 s: 0 of 18,001
//! keep-alive requests failed across 70 reloads. The price: every change
//! through the admin API returns that much later. HTTP/2 ignores the
//! header and drains with GOAWAY, as it always did. Caddy 2.7 and later
//! apply `shutdown_delay` only at exit (caddyserver/caddy#5405): there the
//! drain route never fires and reloads reset the rare request as before.

use super::{CaddyAdmin, CaddyError};
use serde_json::{json, Value};

/// How long the old servers keep serving after a reload.
pub const SHUTDOWN_DELAY: &str = "1s";

/// A non-terminal first route of server `server_id`: `Connection: close` on
/// every answer once the server is shutting down.
pub fn drain_route(server_id: &str) -> Value {
    json!({
        "@id": format!("{server_id}-drain"),
        "match": [{"vars": {"{http.shutting_down}": ["true"]}}],
        "handle": [{"handler": "headers", "response": {"set": {"Connection": ["close"]}}}],
    })
}

impl CaddyAdmin {
    /// Sets the http app's `shutdown_delay` to [`SHUTDOWN_DELAY`]; returns
    /// whether it changed. A Caddy older than 2.6 has no such setting and
    /// refuses it: that costs the drain, not the deploy.
    pub(super) async fn ensure_shutdown_delay(&self) -> Result<bool, CaddyError> {
        let path = "/config/apps/http/shutdown_delay";
        let set = match self.get_opt(path).await? {
            Some(current) if current == json!(SHUTDOWN_DELAY) => return Ok(false),
            Some(_) => self.send("PATCH", path, Some(json!(SHUTDOWN_DELAY))).await,
            None => self.send("PUT", path, Some(json!(SHUTDOWN_DELAY))).await,
        };
        match set {
            Ok(_) => Ok(true),
            Err(CaddyError::Api {
                status: 400, body, ..
            }) => {
                tracing::warn!(%body, "this Caddy refuses shutdown_delay; its reloads may reset keep-alive connections");
                Ok(false)
            }
            Err(error) => Err(error),
        }
    }
}
