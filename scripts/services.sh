#!/usr/bin/env bash
# Make sure Slipway's backing services are installed and running on this host:
#   - PostgreSQL 15 on 127.0.0.1:5432, trust auth for user `postgres`, database `slipway`
#   - RabbitMQ 3.10 on 127.0.0.1:5672 (guest/guest), `stream_queue` feature flag on,
#     policy `slipway-stage-queues` applied
#
# Idempotent and non-interactive: it checks first and only installs/starts what is
# down. It never stops anything. Debian 12, no systemd: services are started by hand
# (policy-rc.d keeps apt from starting them). Installing/starting needs root.
#
# Prints one line per service: "already running", "started" or "installed+started".
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
# Any rabbitmqctl call may start epmd; make sure it binds loopback only.
export ERL_EPMD_ADDRESS=127.0.0.1

PG_VERSION=15
PG_CLUSTER=main
PG_HOST=127.0.0.1
PG_PORT=5432
PG_DB=slipway
AMQP_HOST=127.0.0.1
AMQP_PORT=5672
RABBIT_ETC=/etc/rabbitmq

log() { printf 'services: %s\n' "$*"; }
warn() { printf 'services: WARNING: %s\n' "$*" >&2; }
die() {
    printf 'services: ERROR: %s\n' "$*" >&2
    exit 1
}

# TCP connect check with a short timeout (bash /dev/tcp; no extra tools needed).
port_open() {
    # shellcheck disable=SC2016 # $0/$1 expand in the inner bash
    timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
}

wait_port() { # host port seconds
    local i
    for ((i = 0; i < $3 * 2; i++)); do
        port_open "$1" "$2" && return 0
        sleep 0.5
    done
    return 1
}

need_root() {
    [ "$(id -u)" -eq 0 ] || die "$1 needs root (run this script as root)"
}

APT_UPDATED=0
apt_install() {
    need_root "installing $*"
    if [ "$APT_UPDATED" -eq 0 ]; then
        log "apt-get update"
        # A failed update (e.g. offline) is not fatal: the install may still work
        # from the existing package lists and cache.
        apt-get update -qq </dev/null || warn "apt-get update failed; trying the install anyway"
        APT_UPDATED=1
    fi
    log "apt-get install -y $*"
    apt-get install -y -qq \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "$@" </dev/null
}

# ---------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------
PG_ETC=/etc/postgresql/$PG_VERSION/$PG_CLUSTER
export PGCONNECT_TIMEOUT=5

pg_psql() { # extra psql args...
    psql -X -w -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@" </dev/null
}

pg_cluster_exists() {
    pg_lsclusters -h 2>/dev/null | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" '$1 == v && $2 == c { f = 1 } END { exit !f }'
}

ensure_pg_loopback_conf() {
    # Bind 127.0.0.1 only, unless the cluster config already sets listen_addresses.
    if ! grep -qsE '^[[:space:]]*listen_addresses[[:space:]]*=' "$PG_ETC/postgresql.conf" "$PG_ETC"/conf.d/*.conf; then
        mkdir -p "$PG_ETC/conf.d"
        printf "# written by slipway scripts/services.sh\nlisten_addresses = '127.0.0.1'\n" >"$PG_ETC/conf.d/slipway-loopback.conf"
        chown postgres:postgres "$PG_ETC/conf.d/slipway-loopback.conf" 2>/dev/null || true
        log "postgres: listen_addresses = '127.0.0.1' ($PG_ETC/conf.d/slipway-loopback.conf)"
    fi
    local port
    port=$(pg_lsclusters -h | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" '$1 == v && $2 == c { print $3 }')
    [ "$port" = "$PG_PORT" ] || die "postgres cluster $PG_VERSION/$PG_CLUSTER is configured for port $port, not $PG_PORT; fix $PG_ETC/postgresql.conf"
}

ensure_pg_trust() {
    # Only touch pg_hba.conf when a passwordless connection as postgres over
    # 127.0.0.1 does not already work.
    if pg_psql -Atc 'select 1' >/dev/null 2>&1; then
        return 0
    fi
    need_root "configuring pg_hba.conf"
    local hba="$PG_ETC/pg_hba.conf"
    [ -f "$hba" ] || die "cannot connect to postgres at $PG_HOST:$PG_PORT as postgres and $hba does not exist"
    if ! grep -qE '^host[[:space:]]+all[[:space:]]+postgres[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust' "$hba"; then
        cp -p "$hba" "$hba.slipway-bak"
        # First matching line wins: put the trust line on top.
        {
            printf '# slipway (scripts/services.sh): local TCP trust for postgres\n'
            printf 'host    all             postgres        127.0.0.1/32            trust\n'
            cat "$hba.slipway-bak"
        } >"$hba"
        log "postgres: added 'host all postgres 127.0.0.1/32 trust' to $hba (backup: $hba.slipway-bak)"
    fi
    pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$PG_CLUSTER" reload </dev/null
    local i
    for ((i = 0; i < 20; i++)); do
        pg_psql -Atc 'select 1' >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    pg_psql -Atc 'select 1' >/dev/null || die "cannot connect to postgres at $PG_HOST:$PG_PORT as user postgres without a password"
}

ensure_postgres() {
    local state="already running"
    if ! port_open "$PG_HOST" "$PG_PORT"; then
        need_root "starting postgres"
        state="started"
        if [ ! -x "/usr/lib/postgresql/$PG_VERSION/bin/postgres" ] || ! command -v pg_ctlcluster >/dev/null; then
            apt_install postgresql
            state="installed+started"
        fi
        if ! pg_cluster_exists; then
            log "postgres: creating cluster $PG_VERSION/$PG_CLUSTER"
            pg_createcluster --port "$PG_PORT" "$PG_VERSION" "$PG_CLUSTER" </dev/null
        fi
        ensure_pg_loopback_conf
        pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$PG_CLUSTER" start </dev/null
        wait_port "$PG_HOST" "$PG_PORT" 60 || die "postgres did not open $PG_HOST:$PG_PORT (see /var/log/postgresql/postgresql-$PG_VERSION-$PG_CLUSTER.log)"
    fi
    if ! command -v psql >/dev/null; then
        apt_install postgresql-client
    fi
    # The port can open a moment before connections are accepted.
    local i
    for ((i = 0; i < 60; i++)); do
        pg_isready -q -h "$PG_HOST" -p "$PG_PORT" && break
        sleep 0.5
    done
    ensure_pg_trust

    if [ "$(pg_psql -Atc "select 1 from pg_database where datname = '$PG_DB'")" != "1" ]; then
        # A concurrent run may create it between the check and here: re-check on failure.
        if pg_psql -qc "create database $PG_DB" >/dev/null 2>&1; then
            log "postgres: created database $PG_DB"
        elif [ "$(pg_psql -Atc "select 1 from pg_database where datname = '$PG_DB'")" != "1" ]; then
            die "could not create database $PG_DB"
        fi
    fi
    printf 'postgres   %s (127.0.0.1:%s, database %s)\n' "$state" "$PG_PORT" "$PG_DB"
}

# ---------------------------------------------------------------------------
# RabbitMQ
# ---------------------------------------------------------------------------
# Values of the active (uncommented) `KEY=VALUE` / `KEY = VALUE` lines of FILE
# whose key matches KEY-REGEX, quotes stripped. Works for rabbitmq-env.conf (sh)
# and rabbitmq.conf (cuttlefish).
active_value() { # file key-regex
    sed -nE "s/^[[:space:]]*(export[[:space:]]+)?($2)[[:space:]]*=[[:space:]]*//p" "$1" 2>/dev/null |
        sed -E "s/^[\"']//; s/[\"'][[:space:]]*$//; s/[[:space:]]+$//"
}

# Comment out the active lines of FILE whose key matches KEY-REGEX.
disable_lines() { # file key-regex
    sed -i -E "s/^([[:space:]]*(export[[:space:]]+)?($2)[[:space:]]*=)/# disabled by slipway services.sh: \1/" "$1"
}

ensure_rabbit_loopback_conf() {
    need_root "configuring rabbitmq"
    mkdir -p "$RABBIT_ETC"
    local env="$RABBIT_ETC/rabbitmq-env.conf" conf="$RABBIT_ETC/rabbitmq.conf" changed=0
    touch "$env" "$conf"

    # rabbitmq-env.conf (sourced by sh; keys may carry a RABBITMQ_ prefix).
    local epmd nodeip nodename
    epmd=$(active_value "$env" '(RABBITMQ_)?ERL_EPMD_ADDRESS' | tail -n1)
    nodeip=$(active_value "$env" '(RABBITMQ_)?NODE_IP_ADDRESS' | tail -n1)
    nodename=$(active_value "$env" '(RABBITMQ_)?NODENAME' | tail -n1)
    local listeners
    listeners=$(active_value "$conf" 'listeners\.tcp\.[A-Za-z0-9_.-]+')

    local env_ok=0 conf_ok=0
    if [ "$epmd" = "127.0.0.1" ] && [ -n "$nodename" ] &&
        { [ "$nodeip" = "127.0.0.1" ] || { [ -z "$nodeip" ] && [ -n "$listeners" ]; }; }; then
        env_ok=1
    fi
    if [ -n "$listeners" ]; then
        if ! grep -qvx "127.0.0.1:$AMQP_PORT" <<<"$listeners"; then conf_ok=1; fi
    elif [ "$nodeip" = "127.0.0.1" ]; then
        conf_ok=1
    fi

    if [ "$env_ok" -eq 0 ]; then
        cp -p "$env" "$env.slipway-bak"
        local add=""
        [ -n "$nodename" ] || add+=$'NODENAME=rabbit@localhost\n'
        if [ "$epmd" != "127.0.0.1" ]; then
            disable_lines "$env" '(RABBITMQ_)?ERL_EPMD_ADDRESS'
            add+=$'ERL_EPMD_ADDRESS=127.0.0.1\n'
        fi
        if [ -n "$nodeip" ] && [ "$nodeip" != "127.0.0.1" ]; then
            disable_lines "$env" '(RABBITMQ_)?NODE_IP_ADDRESS'
            add+=$'NODE_IP_ADDRESS=127.0.0.1\n'
        elif [ -z "$nodeip" ] && [ -z "$listeners" ]; then
            add+=$'NODE_IP_ADDRESS=127.0.0.1\n'
        fi
        # The inter-node distribution listener (25672) binds 0.0.0.0 otherwise.
        if ! grep -qs 'inet_dist_use_interface' "$env"; then
            add+=$'SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"\n'
        fi
        printf '\n# slipway (scripts/services.sh): bind everything to loopback\n%s' "$add" >>"$env"
        changed=1
    fi

    if [ "$conf_ok" -eq 0 ]; then
        cp -p "$conf" "$conf.slipway-bak"
        [ -z "$listeners" ] || disable_lines "$conf" 'listeners\.tcp\.[A-Za-z0-9_.-]+'
        printf '\n# slipway (scripts/services.sh): AMQP on loopback only\nlisteners.tcp.default = 127.0.0.1:%s\n' "$AMQP_PORT" >>"$conf"
        changed=1
    fi

    # Plugin listeners (only valid keys when the plugin is enabled).
    local plugins="$RABBIT_ETC/enabled_plugins"
    if grep -qs 'rabbitmq_management' "$plugins" && ! grep -qsE '^[[:space:]]*management\.tcp\.ip' "$conf"; then
        printf 'management.tcp.ip = 127.0.0.1\n' >>"$conf"
        changed=1
    fi
    if grep -qs 'rabbitmq_prometheus' "$plugins" && ! grep -qsE '^[[:space:]]*prometheus\.tcp\.ip' "$conf"; then
        printf 'prometheus.tcp.ip = 127.0.0.1\n' >>"$conf"
        changed=1
    fi
    if [ "$changed" -eq 1 ]; then
        chown rabbitmq:rabbitmq "$env" "$conf" 2>/dev/null || true
        log "rabbitmq: wrote loopback config to $env / $conf (backups: *.slipway-bak)"
    fi
}

# await_startup fails at once while the node has not registered with epmd yet
# (the first seconds after `rabbitmq-server -detached`): retry until a deadline.
await_rabbit() { # seconds
    local deadline=$((SECONDS + $1))
    while ((SECONDS < deadline)); do
        timeout 30 rabbitmqctl -q await_startup --timeout 25 </dev/null >/dev/null 2>&1 && return 0
        sleep 1
    done
    return 1
}

ensure_rabbitmq() {
    local state="already running"
    if ! port_open "$AMQP_HOST" "$AMQP_PORT"; then
        need_root "starting rabbitmq"
        state="started"
        if ! command -v rabbitmq-server >/dev/null || ! command -v rabbitmqctl >/dev/null; then
            apt_install rabbitmq-server
            state="installed+started"
        fi
        if timeout 20 rabbitmqctl -q ping </dev/null >/dev/null 2>&1; then
            # A node is up but its AMQP listener is not (yet): still booting,
            # e.g. started by a concurrent run. Do not start a second one.
            log "rabbitmq: node is booting, waiting for it"
        else
            ensure_rabbit_loopback_conf
            log "rabbitmq: starting (about 10 s)"
            (cd / && rabbitmq-server -detached </dev/null)
        fi
        if ! await_rabbit 120; then
            tail -n 30 /var/log/rabbitmq/*.log 2>/dev/null | grep -v '^$' >&2 || true
            die "rabbitmq did not start within 120 s (see /var/log/rabbitmq/)"
        fi
        wait_port "$AMQP_HOST" "$AMQP_PORT" 30 || die "rabbitmq started but $AMQP_HOST:$AMQP_PORT is not open (check $RABBIT_ETC/rabbitmq.conf)"
    fi
    command -v rabbitmqctl >/dev/null ||
        die "a broker answers on $AMQP_HOST:$AMQP_PORT but rabbitmqctl is missing; cannot apply the feature flag and policy"
    await_rabbit 60 ||
        die "a broker answers on $AMQP_HOST:$AMQP_PORT but rabbitmqctl cannot reach its node"
    rabbitmqctl -q enable_feature_flag stream_queue </dev/null >/dev/null
    rabbitmqctl -q set_policy slipway-stage-queues '^(.+\.)?slipway\.(build|provision|deploy)$' \
        '{"delivery-limit":5,"max-length":1000000,"overflow":"reject-publish"}' \
        --apply-to queues --priority 1 </dev/null >/dev/null
    printf 'rabbitmq   %s (127.0.0.1:%s, stream_queue on, policy slipway-stage-queues)\n' "$state" "$AMQP_PORT"
}

# The broker accepts TCP and answers the AMQP protocol header with its
# Connection.Start: a wedged broker accepts connections but never answers.
amqp_answers() {
    # shellcheck disable=SC2016 # $0 and $1 expand in the inner shell
    timeout 5 bash -c 'exec 3<>"/dev/tcp/$0/$1"; printf "AMQP\x00\x00\x09\x01" >&3; head -c 1 <&3 >/dev/null' \
        "$AMQP_HOST" "$AMQP_PORT" 2>/dev/null
}

# The test suite starts RabbitMQ nodes of its own: it needs the broker
# installed, not the host's broker running (whose state it must not depend on).
ensure_rabbitmq_installed() {
    if ! command -v rabbitmq-server >/dev/null || ! command -v rabbitmqctl >/dev/null; then
        need_root "installing rabbitmq"
        apt_install rabbitmq-server
        printf 'rabbitmq   installed (the host broker is not used)\n'
    else
        printf 'rabbitmq   installed (the host broker is not used)\n'
    fi
}

case "${1:-}" in
    --for-tests)
        ensure_postgres
        ensure_rabbitmq_installed
        ;;
    "")
        ensure_postgres
        ensure_rabbitmq
        amqp_answers || die "RabbitMQ on $AMQP_HOST:$AMQP_PORT accepts connections but does not answer AMQP (wedged?). Restart it (rabbitmqctl stop_app; rabbitmqctl start_app) or point SLIPWAY_AMQP_URL at another broker."
        ;;
    *)
        die "usage: scripts/services.sh [--for-tests]"
        ;;
esac
