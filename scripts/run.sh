#!/usr/bin/env bash
# Run Slipway's main job on this host (see README):
#   backing services -> build tools, registry and base images -> Caddy ->
#   release build -> the web dashboard (web/, npm) -> api + 3 workers -> a probe through the fleet -> deploy
#   the example app examples/static-site (a git repository made from it
#   under .slipway/run/, fetched by the build worker over file://) on this
#   host behind Caddy, and print its URL.
#
# State (gitignored): .slipway/run/
#   env            SLIPWAY_ADMIN_TOKEN, SLIPWAY_SECRET_KEY, and the dashboard's first
#                  admin (SLIPWAY_BOOTSTRAP_ADMIN_EMAIL/_PASSWORD), generated once, mode 600
#   project-token  the `demo` project's API token (shown once by the API)
#   <binary>.pid   <binary>.log
#
# Exit 0 when the probe went through the fleet to `live` (the platform works),
# whatever happened to the example deployment; 1 otherwise. The processes keep
# running after this script ends: stop them with scripts/stop.sh.
#
# Environment: SLIPWAY_RUN_TIMEOUT (seconds to wait for readiness and for each
# deployment, default 60); SLIPWAY_AMQP_URL (use this broker instead of the
# host's RabbitMQ on 127.0.0.1:5672).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd -P)

STATE_DIR=.slipway/run
TIMEOUT="${SLIPWAY_RUN_TIMEOUT:-60}"
API_ADDR=127.0.0.1:8080
API="http://$API_ADDR"
DATABASE_URL=postgres://postgres@127.0.0.1:5432/slipway
# SLIPWAY_AMQP_URL points the fleet at another broker; then the host's own
# RabbitMQ is neither needed nor started.
AMQP_URL="${SLIPWAY_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
CONCURRENCY=4
WORKERS=(slipway-worker-build slipway-worker-provision slipway-worker-deploy)
declare -A METRICS_ADDR=(
    [slipway-worker-build]=127.0.0.1:9101
    [slipway-worker-provision]=127.0.0.1:9102
    [slipway-worker-deploy]=127.0.0.1:9103
)
APP_NAME=hello-static
PROJECT_NAME=demo

log() { printf 'run: %s\n' "$*"; }
step() { printf '\n==> %s\n' "$*"; }
die() {
    printf 'run: ERROR: %s\n' "$*" >&2
    exit 1
}

port_open() { # host:port
    # shellcheck disable=SC2016 # $0/$1 expand in the inner bash
    timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "${1%:*}" "${1##*:}" 2>/dev/null
}

# --- JSON (jq if present, else python3) -------------------------------------
# (SLIPWAY_JSON_TOOL=python3 forces the python3 path.)
if [ "${SLIPWAY_JSON_TOOL:-}" != python3 ] && command -v jq >/dev/null 2>&1; then HAVE_JQ=1; else HAVE_JQ=0; fi
command -v jq >/dev/null 2>&1 || command -v python3 >/dev/null 2>&1 || die "need jq or python3"

# json_str FIELD: top-level field of the JSON on stdin as text ("" if absent/null).
json_str() {
    if [ "$HAVE_JQ" -eq 1 ]; then
        jq -r --arg f "$1" 'if type == "object" then (.[$f] // empty) else empty end | tostring' 2>/dev/null || true
    else
        python3 -c '
import json, sys
try:
    v = json.load(sys.stdin)
except Exception:
    sys.exit(0)
v = v.get(sys.argv[1]) if isinstance(v, dict) else None
print("" if v is None else (v if isinstance(v, str) else json.dumps(v)))' "$1" 2>/dev/null || true
    fi
}

# json_error_code: the error code of an API error body ({"code"} or {"error":{"code"}}).
json_error_code() {
    if [ "$HAVE_JQ" -eq 1 ]; then
        jq -r '(.code // .error.code? // empty) | tostring' 2>/dev/null || true
    else
        python3 -c '
import json, sys
try:
    v = json.load(sys.stdin)
except Exception:
    sys.exit(0)
c = v.get("code") if isinstance(v, dict) else None
if c is None and isinstance(v, dict) and isinstance(v.get("error"), dict):
    c = v["error"].get("code")
print("" if c is None else c)' 2>/dev/null || true
    fi
}

# json_id_by_name NAME: .items[] | select(.name == NAME) | .id
json_id_by_name() {
    if [ "$HAVE_JQ" -eq 1 ]; then
        jq -r --arg n "$1" '[.items[]? | select(.name == $n) | .id][0] // empty' 2>/dev/null || true
    else
        python3 -c '
import json, sys
try:
    v = json.load(sys.stdin)
except Exception:
    sys.exit(0)
for it in (v.get("items") or []) if isinstance(v, dict) else []:
    if it.get("name") == sys.argv[1]:
        print(it.get("id")); break' "$1" 2>/dev/null || true
    fi
}

# json_timeline: one line per event of a deployment: "  AT  FROM -> TO".
json_timeline() {
    if [ "$HAVE_JQ" -eq 1 ]; then
        jq -r '.events[]? | "    \(.at)  \(.from // "-") -> \(.to)"' 2>/dev/null || true
    else
        python3 -c '
import json, sys
try:
    v = json.load(sys.stdin)
except Exception:
    sys.exit(0)
for e in v.get("events") or []:
    print("    %s  %s -> %s" % (e.get("at"), e.get("from") or "-", e.get("to")))' 2>/dev/null || true
    fi
}

# json_last_active_state: the state the deployment was in before it reached a
# terminal one (the stage the pipeline stopped at).
json_last_active_state() {
    if [ "$HAVE_JQ" -eq 1 ]; then
        jq -r '[.events[]? | select(.to | IN("failed", "cancelled", "superseded")) | .from][-1] // empty' 2>/dev/null || true
    else
        python3 -c '
import json, sys
try:
    v = json.load(sys.stdin)
except Exception:
    sys.exit(0)
f = [e.get("from") for e in v.get("events") or [] if e.get("to") in ("failed", "cancelled", "superseded")]
print(f[-1] if f and f[-1] else "")' 2>/dev/null || true
    fi
}

json_body() { # key value ... -> {"key":"value",...} (string values)
    if [ "$HAVE_JQ" -eq 1 ]; then
        local args=() filter="{" sep=""
        while [ "$#" -ge 2 ]; do
            args+=(--arg "$1" "$2")
            filter+="$sep\"$1\": \$$1"
            sep=", "
            shift 2
        done
        jq -cn "${args[@]}" "$filter}"
    else
        python3 -c '
import json, sys
a = sys.argv[1:]
print(json.dumps(dict(zip(a[0::2], a[1::2]))))' "$@"
    fi
}

# --- HTTP -------------------------------------------------------------------
TMP_DIR=$STATE_DIR/tmp
HTTP_STATUS=000
HTTP_BODY=""
HTTP_LOCATION=""

# api METHOD PATH TOKEN [BODY]: sets HTTP_STATUS, HTTP_BODY, HTTP_LOCATION.
api() {
    local method=$1 path=$2 token=$3 body=${4:-}
    local args=(-sS -X "$method" --max-time 15 -o "$TMP_DIR/body" -D "$TMP_DIR/headers"
        -w '%{http_code}' -H "Authorization: Bearer $token" -H 'Accept: application/json')
    if [ -n "$body" ]; then
        args+=(-H 'Content-Type: application/json' --data-binary "$body")
    fi
    : >"$TMP_DIR/body"
    : >"$TMP_DIR/headers"
    HTTP_STATUS=$(curl "${args[@]}" "$API$path" 2>"$TMP_DIR/curl-err") || HTTP_STATUS=000
    HTTP_BODY=$(cat "$TMP_DIR/body")
    HTTP_LOCATION=$(tr -d '\r' <"$TMP_DIR/headers" | sed -n 's/^[Ll]ocation:[[:space:]]*//p' | tail -n1)
}

api_fail() { # what
    printf 'run: %s failed: HTTP %s\n' "$1" "$HTTP_STATUS" >&2
    [ -z "$HTTP_BODY" ] || printf '    %s\n' "$HTTP_BODY" >&2
    [ "$HTTP_STATUS" != 000 ] || sed 's/^/    /' "$TMP_DIR/curl-err" >&2
}

# --- processes ----------------------------------------------------------------
is_ours() { # pid name
    local pid=$1 name=$2 argv0
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [ -r "/proc/$pid/cmdline" ] || return 1
    argv0=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | head -n1) || return 1
    [ "${argv0##*/}" = "$name" ]
}

log_tail() { # name
    # Only this run's part of the (appended) log, at most 40 lines.
    printf -- '--- last lines of %s/%s.log ---\n' "$STATE_DIR" "$1" >&2
    awk '/^=== .* started by scripts\/run\.sh at / { n = 0 } { buf[n++] = $0 }
        END { for (i = (n > 40 ? n - 40 : 0); i < n; i++) print buf[i] }' \
        "$STATE_DIR/$1.log" >&2 2>/dev/null || true
    printf -- '---\n' >&2
}

start_bin() { # name VAR=value...
    local name=$1
    shift
    local bin="$ROOT/target/release/$name"
    [ -x "$bin" ] || die "$bin is missing (did the build produce it?)"
    printf '\n=== %s started by scripts/run.sh at %s ===\n' "$name" "$(date -u +%FT%TZ)" >>"$STATE_DIR/$name.log"
    # Own session (setsid): a Ctrl-C on this script does not reach the fleet.
    # Without job control the child is no group leader, so setsid execs in
    # place and $! is the binary's pid.
    env -u SLIPWAY_METRICS_ADDR -u SLIPWAY_ADMIN_TOKEN "$@" \
        setsid nohup "$bin" >>"$STATE_DIR/$name.log" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" >"$STATE_DIR/$name.pid"
    local i
    for ((i = 0; i < 20; i++)); do
        is_ours "$pid" "$name" && break
        sleep 0.1
    done
    log "started $name (pid $pid, log $STATE_DIR/$name.log)"
}

# start_failed NAME MESSAGE: show NAME's log tail, stop what this run started, exit 1.
start_failed() {
    log_tail "$1"
    bash scripts/stop.sh >&2 || true
    die "$2"
}

check_alive() { # name
    local pid
    pid=$(tr -dc '0-9' <"$STATE_DIR/$1.pid" 2>/dev/null || true)
    is_ours "$pid" "$1" || start_failed "$1" "$1 exited right after start (see $STATE_DIR/$1.log)"
}

# --- deployments ----------------------------------------------------------------
DEPLOY_STATE=""
DEPLOY_JSON=""

# poll_deployment ID TOKEN: poll until a terminal state or the timeout.
poll_deployment() {
    local id=$1 token=$2 deadline=$((SECONDS + TIMEOUT)) last=""
    DEPLOY_STATE=""
    while :; do
        api GET "/v1/deployments/$id" "$token"
        if [ "$HTTP_STATUS" = 200 ]; then
            DEPLOY_JSON=$HTTP_BODY
            DEPLOY_STATE=$(json_str state <<<"$DEPLOY_JSON")
            if [ "$DEPLOY_STATE" != "$last" ]; then
                log "  deployment $id: $DEPLOY_STATE"
                last=$DEPLOY_STATE
            fi
            case "$DEPLOY_STATE" in
            live | failed | cancelled | superseded) return 0 ;;
            esac
        else
            api_fail "GET /v1/deployments/$id"
        fi
        if ((SECONDS >= deadline)); then
            log "  deployment $id: still '${DEPLOY_STATE:-unknown}' after ${TIMEOUT}s"
            return 1
        fi
        sleep 0.5
    done
}

print_timeline() {
    local lines
    lines=$(json_timeline <<<"$DEPLOY_JSON")
    if [ -n "$lines" ]; then
        printf '  timeline:\n%s\n' "$lines"
    fi
}

# =============================================================================
if ! command -v cargo >/dev/null 2>&1 && [ -f "${HOME:-/root}/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "${HOME:-/root}/.cargo/env"
fi
command -v curl >/dev/null 2>&1 || die "curl is required"

step "backing services"
if [ -n "${SLIPWAY_AMQP_URL:-}" ]; then
    bash scripts/services.sh --for-tests
else
    bash scripts/services.sh
fi

step "build tools, registry and base images"
bash scripts/build-tools.sh --env-file .slipway/build-tools.env
# shellcheck disable=SC1091 # CONTAINERS_CONF, SLIPWAY_REGISTRY, base images
. .slipway/build-tools.env

step "Caddy for the apps (the local target)"
bash scripts/deploy-tools.sh --env-file .slipway/deploy-tools.env
# shellcheck disable=SC1091 # SLIPWAY_CADDY_ADMIN, SLIPWAY_CADDY_HTTP_ADDR
. .slipway/deploy-tools.env

step "release build"
cargo build --release --bins \
    -p slipway-api -p slipway-worker-build -p slipway-worker-provision -p slipway-worker-deploy

step "the web dashboard (npm ci && npm run build in web/)"
# Node and npm come from Debian when missing (scripts/test-tools.sh does the
# same for the tests); a failed build leaves the API serving a page that
# says how to build it.
command -v npm >/dev/null || {
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q nodejs npm >/dev/null
}
if (cd web && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build); then
    log "dashboard built in web/dist"
else
    log "WARNING: the dashboard did not build; the API serves a page saying so at $API/"
fi

mkdir -p "$STATE_DIR" "$TMP_DIR"
chmod 700 .slipway "$STATE_DIR" 2>/dev/null || true

step "stopping processes of a previous run (if any)"
bash scripts/stop.sh

for addr in "$API_ADDR" "${METRICS_ADDR[@]}"; do
    if port_open "$addr"; then
        die "$addr is already in use by a process this script did not start; free it first"
    fi
done

# Secrets, generated once.
if [ ! -s "$STATE_DIR/env" ]; then
    (
        umask 077
        {
            printf '# generated by scripts/run.sh; keep it secret\n'
            printf 'SLIPWAY_ADMIN_TOKEN=%s\n' "$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
            printf 'SLIPWAY_SECRET_KEY=%s\n' "$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
        } >"$STATE_DIR/env"
    )
    log "generated $STATE_DIR/env (admin token and secret key)"
fi
# shellcheck disable=SC1091
. "$STATE_DIR/env"
if [ -z "${SLIPWAY_ADMIN_TOKEN:-}" ] || [ -z "${SLIPWAY_SECRET_KEY:-}" ]; then
    die "$STATE_DIR/env lacks SLIPWAY_ADMIN_TOKEN or SLIPWAY_SECRET_KEY (delete it to regenerate)"
fi
# The dashboard's first admin (made by the API at start while no user
# exists); an env file of an older run gets one added.
if [ -z "${SLIPWAY_BOOTSTRAP_ADMIN_EMAIL:-}" ]; then
    (
        umask 077
        printf 'SLIPWAY_BOOTSTRAP_ADMIN_EMAIL=admin@slipway.localhost\n'
        printf 'SLIPWAY_BOOTSTRAP_ADMIN_PASSWORD=%s\n' "$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')"
    ) >>"$STATE_DIR/env"
    # shellcheck disable=SC1091
    . "$STATE_DIR/env"
fi

step "starting the fleet"
# A platform on one host: git sources on this host and its LAN may be
# fetched (the platform's own services stay refused whatever is allowed).
OUTBOUND_ALLOW="${SLIPWAY_OUTBOUND_ALLOW:-loopback,private}"
export RUST_LOG="${RUST_LOG:-info}"
export NO_COLOR="${NO_COLOR:-1}" # plain log files
# The api serves /metrics itself; migrations are applied by the api at start.
start_bin slipway-api \
    SLIPWAY_API_ADDR="$API_ADDR" \
    SLIPWAY_DATABASE_URL="$DATABASE_URL" \
    SLIPWAY_AMQP_URL="$AMQP_URL" \
    SLIPWAY_ADMIN_TOKEN="$SLIPWAY_ADMIN_TOKEN" \
    SLIPWAY_SECRET_KEY="$SLIPWAY_SECRET_KEY" \
    SLIPWAY_BOOTSTRAP_ADMIN_EMAIL="$SLIPWAY_BOOTSTRAP_ADMIN_EMAIL" \
    SLIPWAY_BOOTSTRAP_ADMIN_PASSWORD="$SLIPWAY_BOOTSTRAP_ADMIN_PASSWORD" \
    SLIPWAY_WEB_DIR="$ROOT/web/dist" \
    SLIPWAY_OUTBOUND_ALLOW="$OUTBOUND_ALLOW"
for w in "${WORKERS[@]}"; do
    start_bin "$w" \
        SLIPWAY_DATABASE_URL="$DATABASE_URL" \
        SLIPWAY_AMQP_URL="$AMQP_URL" \
        SLIPWAY_SECRET_KEY="$SLIPWAY_SECRET_KEY" \
        SLIPWAY_METRICS_ADDR="${METRICS_ADDR[$w]}" \
        SLIPWAY_CONCURRENCY="$CONCURRENCY" \
        SLIPWAY_ALLOW_FILE_SOURCES=true \
        SLIPWAY_OUTBOUND_ALLOW="$OUTBOUND_ALLOW"
done

log "waiting for $API/readyz (up to ${TIMEOUT}s)"
deadline=$((SECONDS + TIMEOUT))
while :; do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$API/readyz" 2>/dev/null) || code=000
    [ "$code" = 200 ] && break
    pid=$(tr -dc '0-9' <"$STATE_DIR/slipway-api.pid")
    is_ours "$pid" slipway-api || start_failed slipway-api "slipway-api exited while starting (see $STATE_DIR/slipway-api.log)"
    if ((SECONDS >= deadline)); then
        start_failed slipway-api "$API/readyz did not answer 200 within ${TIMEOUT}s (last: HTTP $code)"
    fi
    sleep 0.5
done
log "api ready"
for w in "${WORKERS[@]}"; do check_alive "$w"; done

step "project '$PROJECT_NAME' and its token"
api POST /v1/projects "$SLIPWAY_ADMIN_TOKEN" "$(json_body name "$PROJECT_NAME")"
case "$HTTP_STATUS" in
201)
    PROJECT_ID=$(json_str id <<<"$HTTP_BODY")
    log "created project $PROJECT_NAME ($PROJECT_ID)"
    ;;
409)
    code=$(json_error_code <<<"$HTTP_BODY")
    [ -z "$code" ] || [ "$code" = conflict ] || {
        api_fail "POST /v1/projects"
        exit 1
    }
    api GET /v1/projects "$SLIPWAY_ADMIN_TOKEN"
    [ "$HTTP_STATUS" = 200 ] || {
        api_fail "GET /v1/projects"
        exit 1
    }
    PROJECT_ID=$(json_id_by_name "$PROJECT_NAME" <<<"$HTTP_BODY")
    log "reusing project $PROJECT_NAME ($PROJECT_ID)"
    ;;
*)
    api_fail "POST /v1/projects"
    exit 1
    ;;
esac
[ -n "$PROJECT_ID" ] || die "could not find the id of project $PROJECT_NAME"

PROJECT_TOKEN=""
if [ -s "$STATE_DIR/project-token" ]; then
    # Reuse the stored token while the API still accepts it.
    candidate=$(tr -d ' \n' <"$STATE_DIR/project-token")
    api GET /v1/apps "$candidate"
    if [ "$HTTP_STATUS" = 200 ]; then
        PROJECT_TOKEN=$candidate
        log "reusing the project token in $STATE_DIR/project-token"
    fi
fi
if [ -z "$PROJECT_TOKEN" ]; then
    api POST "/v1/projects/$PROJECT_ID/tokens" "$SLIPWAY_ADMIN_TOKEN" "$(json_body name run-sh role owner)"
    if [ "$HTTP_STATUS" = 409 ]; then
        api POST "/v1/projects/$PROJECT_ID/tokens" "$SLIPWAY_ADMIN_TOKEN" "$(json_body name "run-sh-$(date +%s)" role owner)"
    fi
    [ "$HTTP_STATUS" = 201 ] || {
        api_fail "POST /v1/projects/$PROJECT_ID/tokens"
        exit 1
    }
    PROJECT_TOKEN=$(json_str token <<<"$HTTP_BODY")
    [ -n "$PROJECT_TOKEN" ] || die "the token response has no token: $HTTP_BODY"
    (
        umask 077
        printf '%s\n' "$PROJECT_TOKEN" >"$STATE_DIR/project-token"
    )
    log "created a project token (stored in $STATE_DIR/project-token)"
fi

step "probe through the fleet"
api POST /v1/probes "$PROJECT_TOKEN" '{"duration_ms": 200}'
[ "$HTTP_STATUS" = 202 ] || {
    api_fail "POST /v1/probes"
    exit 1
}
PROBE_ID=$(json_str id <<<"$HTTP_BODY")
[ -n "$PROBE_ID" ] || PROBE_ID=${HTTP_LOCATION##*/}
[ -n "$PROBE_ID" ] || die "POST /v1/probes answered 202 without an id: $HTTP_BODY"
log "probe $PROBE_ID queued (${HTTP_LOCATION:-no Location header})"
poll_deployment "$PROBE_ID" "$PROJECT_TOKEN" || true
PROBE_STATE=$DEPLOY_STATE
print_timeline
if [ "$PROBE_STATE" = live ]; then
    log "probe reached live: api, broker, database and workers work end to end"
else
    log "probe ended '${PROBE_STATE:-unknown}', not live"
    code=$(json_str error_code <<<"$DEPLOY_JSON")
    msg=$(json_str error_message <<<"$DEPLOY_JSON")
    [ -z "$code$msg" ] || log "  error: ${code:-?}: ${msg:-?}"
fi

step "example app '$APP_NAME' (examples/static-site)"
# The example becomes a git repository of its own with a fixed author date,
# so every run has the same commit and a second run reuses its image.
EXAMPLE_REPO="$ROOT/$STATE_DIR/example-repo"
rm -rf "$EXAMPLE_REPO"
cp -r examples/static-site "$EXAMPLE_REPO"
(
    cd "$EXAMPLE_REPO"
    export GIT_AUTHOR_NAME=slipway GIT_AUTHOR_EMAIL=slipway@localhost
    export GIT_COMMITTER_NAME=slipway GIT_COMMITTER_EMAIL=slipway@localhost
    export GIT_AUTHOR_DATE=2026-01-01T00:00:00Z GIT_COMMITTER_DATE=2026-01-01T00:00:00Z
    git init -q -b main . && git add -A && git commit -qm "static-site example"
)
log "example repository file://$EXAMPLE_REPO at $(git -C "$EXAMPLE_REPO" rev-parse HEAD)"
DEPLOY_FINAL=""
api POST /v1/apps "$PROJECT_TOKEN" \
    "$(json_body name "$APP_NAME" git_url "file://$EXAMPLE_REPO" git_ref main)"
case "$HTTP_STATUS" in
200 | 201) log "created app $APP_NAME" ;;
409)
    # The app of an earlier run: point it at this run's repository.
    api PATCH "/v1/apps/$APP_NAME" "$PROJECT_TOKEN" \
        "$(json_body git_url "file://$EXAMPLE_REPO" git_ref main)"
    [ "$HTTP_STATUS" = 200 ] || api_fail "PATCH /v1/apps/$APP_NAME"
    HTTP_STATUS=409
    log "reusing app $APP_NAME"
    ;;
*) api_fail "POST /v1/apps" ;;
esac
if [ "$HTTP_STATUS" = 200 ] || [ "$HTTP_STATUS" = 201 ] || [ "$HTTP_STATUS" = 409 ]; then
    api POST "/v1/apps/$APP_NAME/deployments" "$PROJECT_TOKEN" '{}'
    if [ "$HTTP_STATUS" = 202 ]; then
        DEPLOY_ID=$(json_str id <<<"$HTTP_BODY")
        [ -n "$DEPLOY_ID" ] || DEPLOY_ID=${HTTP_LOCATION##*/}
        log "deployment $DEPLOY_ID queued"
        poll_deployment "$DEPLOY_ID" "$PROJECT_TOKEN" || true
        DEPLOY_FINAL=$DEPLOY_STATE
        print_timeline
    else
        api_fail "POST /v1/apps/$APP_NAME/deployments"
    fi
fi

step "result"
case "$DEPLOY_FINAL" in
live)
    url=$(json_str url <<<"$DEPLOY_JSON")
    log "$APP_NAME is live at ${url:-<no url reported>}"
    printf 'The example app is live at %s (curl resolves *.localhost to 127.0.0.1)\n' "${url:-<no url reported>}"
    ;;
failed | cancelled | superseded)
    stage=$(json_last_active_state <<<"$DEPLOY_JSON")
    case "$stage" in
    building | built) stage=build ;;
    provisioning | provisioned) stage=provision ;;
    deploying | verifying) stage=deploy ;;
    esac
    code=$(json_str error_code <<<"$DEPLOY_JSON")
    msg=$(json_str error_message <<<"$DEPLOY_JSON")
    log "deployment ended '$DEPLOY_FINAL'${code:+ (error_code $code)}"
    image=$(json_str image_ref <<<"$DEPLOY_JSON")
    [ -z "$image" ] || log "built image: $image (commit $(json_str resolved_commit <<<"$DEPLOY_JSON"))"
    msg=${msg%.}
    printf 'The pipeline stops at %s: %s.\n' "${stage:-${DEPLOY_FINAL}}" "${msg:-${code:-$DEPLOY_FINAL}}"
    ;;
"")
    printf 'The pipeline stops at submitting the example deployment: see the errors above.\n'
    ;;
*)
    printf 'The pipeline stops at %s: no terminal state within %ss.\n' "$DEPLOY_FINAL" "$TIMEOUT"
    ;;
esac

if [ "$PROBE_STATE" = live ]; then
    printf 'Slipway is up at %s (api), stop it with scripts/stop.sh\n' "$API"
    printf 'The dashboard: %s/ (sign in as %s; the password is SLIPWAY_BOOTSTRAP_ADMIN_PASSWORD in %s/env)\n' \
        "$API" "$SLIPWAY_BOOTSTRAP_ADMIN_EMAIL" "$STATE_DIR"
    exit 0
fi
printf 'The probe did not reach live (state: %s): the fleet is not working end to end.\n' "${PROBE_STATE:-unknown}"
printf 'Logs: %s/*.log. The processes are still running; stop them with scripts/stop.sh\n' "$STATE_DIR"
exit 1
