#!/usr/bin/env bash
# Make sure this host can serve deployed apps for Slipway (the local target):
#   - caddy installed (Debian's package; its systemd unit is never used)
#   - a Caddy for the platform answering its admin API on $SLIPWAY_CADDY_ADMIN
#     (started if nothing answers), with an HTTP server for the apps on
#     $SLIPWAY_CADDY_HTTP_ADDR: no automatic HTTPS, an app-route group and a
#     404 catch-all, the layout worker-deploy's Caddy client manages; and a
#     TLS server on $SLIPWAY_CADDY_HTTPS_ADDR in front of it whose
#     certificates come from Caddy's internal CA (local mode; the root is
#     never installed into the system trust store: fetch it from the admin
#     API at /pki/ca/local)
#
#   scripts/deploy-tools.sh [--env-file FILE]
#
# Idempotent, non-interactive, needs root. Fast when all is in place. Caddy
# keeps its state under $SLIPWAY_STATE_DIR/caddy (XDG_DATA_HOME,
# XDG_CONFIG_HOME, pid file, log) and starts with --resume: the routes the
# workers set survive a Caddy restart (Caddy autosaves every config change).
# Progress goes to stderr; stdout gets the environment the workers and tests
# need, as `export NAME=VALUE` lines (also written to FILE with --env-file).
#
# Environment (defaults in brackets):
#   SLIPWAY_STATE_DIR        [/var/lib/slipway]        Caddy's folder is caddy/ in it
#   SLIPWAY_CADDY_ADMIN      [http://127.0.0.1:2019]   admin API (loopback only)
#   SLIPWAY_CADDY_HTTP_ADDR  [127.0.0.1:8088]          where the apps are served
#   SLIPWAY_CADDY_HTTPS_ADDR [127.0.0.1:8443]          the same apps over HTTPS (`off`: none)
#   SLIPWAY_CADDY_SERVER     [slipway]                 the apps server's name in Caddy's config
set -euo pipefail
# shellcheck source=scripts/lib/packages.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/packages.sh"

export DEBIAN_FRONTEND=noninteractive CI="${CI:-true}"

STATE_DIR="${SLIPWAY_STATE_DIR:-/var/lib/slipway}"
ADMIN_URL="${SLIPWAY_CADDY_ADMIN:-http://127.0.0.1:2019}"
HTTP_ADDR="${SLIPWAY_CADDY_HTTP_ADDR:-127.0.0.1:8088}"
HTTPS_ADDR="${SLIPWAY_CADDY_HTTPS_ADDR:-127.0.0.1:8443}"
SERVER="${SLIPWAY_CADDY_SERVER:-slipway}"
ENV_FILE=

log() { printf 'deploy-tools: %s\n' "$*" >&2; }
die() {
    printf 'deploy-tools: ERROR: %s\n' "$*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case "$1" in
    --env-file)
        ENV_FILE=${2:?--env-file needs a path}
        shift 2
        ;;
    *) die "unknown argument: $1" ;;
    esac
done

[ "$(id -u)" -eq 0 ] || die "needs root (apt-get, a Caddy for the platform)"
case "$ADMIN_URL" in
http://*) ;;
*) ADMIN_URL="http://$ADMIN_URL" ;;
esac
ADMIN_ADDR=${ADMIN_URL#http://}
ADMIN_ADDR=${ADMIN_ADDR%/}
ADMIN_URL="http://$ADMIN_ADDR"
addrs=("$ADMIN_ADDR" "$HTTP_ADDR")
[ "$HTTPS_ADDR" = off ] || addrs+=("$HTTPS_ADDR")
for addr in "${addrs[@]}"; do
    case "$addr" in
    127.*:* | localhost:*) ;;
    *) die "$addr: this script only starts Caddy on loopback" ;;
    esac
done
case "$SERVER" in
*[!A-Za-z0-9_-]* | '') die "SLIPWAY_CADDY_SERVER=$SERVER: use letters, digits, _ and -" ;;
esac

# --- packages ---------------------------------------------------------------

install_packages() {
    # iproute2 (ip netns, veth) builds the ssh-target tests' server namespace.
    install_missing_packages caddy curl iproute2
}

# --- Caddy ------------------------------------------------------------------

CADDY_DIR="$STATE_DIR/caddy"

# A zombie still answers `kill -0`; PID 1 here does not always reap orphans.
pid_alive() {
    local state
    state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

admin_answers() {
    curl -fsS -o /dev/null --max-time 2 "$ADMIN_URL/config/" 2>/dev/null
}

# The TLS server and the internal CA's settings, as worker-deploy's
# ensure_tls_server makes them.
# The first route of each server: `Connection: close` while the server is
# shut down by a config reload, during the http app's shutdown_delay, so
# keep-alive clients leave it without a failed request (worker-deploy's
# caddy/drain.rs).
drain_route_json() {
    printf '{"@id": "%s-drain", "match": [{"vars": {"{http.shutting_down}": ["true"]}}], "handle": [{"handler": "headers", "response": {"set": {"Connection": ["close"]}}}]}' "$1"
}
SHUTDOWN_DELAY=1s
tls_server_json() {
    printf '{"listen": ["%s"], "automatic_https": {"disable": true}, "tls_connection_policies": [{}], "routes": [%s, {"@id": "%s-tls-proxy", "handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": "%s"}]}]}]}' \
        "$HTTPS_ADDR" "$(drain_route_json "$SERVER-tls")" "$SERVER" "$HTTP_ADDR"
}
PKI_JSON='{"certificate_authorities": {"local": {"install_trust": false}}}'

# A Caddy that already ran (started by an earlier version of this script)
# gets the TLS server through its admin API.
ensure_tls() {
    [ "$HTTPS_ADDR" = off ] && return
    local server="$ADMIN_URL/config/apps/http/servers/$SERVER-tls"
    if [ "$(curl -fsS --max-time 5 "$server" 2>/dev/null)" = null ]; then
        log "caddy: adding the HTTPS server on $HTTPS_ADDR"
        if [ "$(curl -fsS --max-time 5 "$ADMIN_URL/config/apps/pki" 2>/dev/null)" = null ]; then
            curl -fsS --max-time 10 -X PUT -H 'Content-Type: application/json' \
                -d "$PKI_JSON" "$ADMIN_URL/config/apps/pki" >/dev/null
        fi
        curl -fsS --max-time 10 -X PUT -H 'Content-Type: application/json' \
            -d "$(tls_server_json)" "$server" >/dev/null
    fi
}

write_config() {
    mkdir -p "$CADDY_DIR/data" "$CADDY_DIR/config"
    # The same layout worker-deploy's ensure_server makes, so that it finds
    # nothing to change.
    local tls_server="" pki=""
    if [ "$HTTPS_ADDR" != off ]; then
        tls_server=", \"$SERVER-tls\": $(tls_server_json)"
        pki=", \"pki\": $PKI_JSON"
    fi
    cat >"$CADDY_DIR/caddy.json.tmp" <<EOF
{
  "admin": {"listen": "$ADMIN_ADDR"},
  "apps": {"http": {"shutdown_delay": "$SHUTDOWN_DELAY", "servers": {"$SERVER": {
    "listen": ["$HTTP_ADDR"],
    "automatic_https": {"disable": true},
    "routes": [
      $(drain_route_json "$SERVER"),
      {"@id": "$SERVER-apps", "handle": [{"handler": "subroute", "routes": []}]},
      {"@id": "$SERVER-fallback", "terminal": true,
       "handle": [{"handler": "static_response", "status_code": 404, "body": "no app here\n"}]}
    ]
  }$tls_server}}$pki}
}
EOF
    mv "$CADDY_DIR/caddy.json.tmp" "$CADDY_DIR/caddy.json"
    # An autosaved config for another admin address would win over the file
    # and never answer where we look.
    local autosave="$CADDY_DIR/config/caddy/autosave.json"
    if [ -f "$autosave" ] && ! grep -q "\"admin\":{\"listen\":\"$ADMIN_ADDR\"" "$autosave"; then
        log "caddy: autosaved config is for another admin address; starting from $CADDY_DIR/caddy.json"
        mv "$autosave" "$autosave.old"
    fi
}

start_caddy() {
    if admin_answers; then
        log "caddy: admin API answers on $ADMIN_URL"
        return
    fi
    write_config
    local pidfile="$CADDY_DIR/caddy.pid"
    if [ -f "$pidfile" ] && pid_alive "$(cat "$pidfile")"; then
        log "caddy: pid $(cat "$pidfile") runs but $ADMIN_URL does not answer yet"
    else
        log "caddy: starting (admin $ADMIN_ADDR, apps on $HTTP_ADDR, state $CADDY_DIR)"
        XDG_DATA_HOME="$CADDY_DIR/data" XDG_CONFIG_HOME="$CADDY_DIR/config" HOME="$CADDY_DIR" \
            setsid nohup caddy run --config "$CADDY_DIR/caddy.json" --resume \
            </dev/null >>"$CADDY_DIR/caddy.log" 2>&1 &
        echo $! >"$pidfile"
    fi
    local i
    for ((i = 0; i < 100; i++)); do
        admin_answers && {
            log "caddy: admin API answers on $ADMIN_URL (pid $(cat "$pidfile"))"
            return
        }
        sleep 0.1
    done
    tail -n 20 "$CADDY_DIR/caddy.log" >&2 || true
    die "caddy's admin API on $ADMIN_URL did not answer within 10 s"
}

# --- main ---------------------------------------------------------------------

start_all=$SECONDS
install_packages
start_caddy
ensure_tls

env_lines=$(
    cat <<EOF
export SLIPWAY_CADDY_ADMIN=$ADMIN_URL
export SLIPWAY_CADDY_HTTP_ADDR=$HTTP_ADDR
export SLIPWAY_CADDY_HTTPS_ADDR=$HTTPS_ADDR
export SLIPWAY_CADDY_SERVER=$SERVER
EOF
)
if [ -n "$ENV_FILE" ]; then
    mkdir -p "$(dirname "$ENV_FILE")"
    printf '%s\n' "$env_lines" >"$ENV_FILE"
    log "environment written to $ENV_FILE"
fi
printf '%s\n' "$env_lines"
log "ready in $((SECONDS - start_all)) s"
