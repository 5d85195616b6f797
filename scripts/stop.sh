#!/usr/bin/env bash
# Stop the Slipway processes that scripts/run.sh started.
#
# Reads .slipway/run/<binary>.pid, and only signals a pid that is alive AND whose
# /proc/PID/cmdline names that binary (a stale pid file whose pid was reused by
# another process is just removed). SIGTERM, wait up to 20 s (the workers finish
# or hand back in-flight jobs), then SIGKILL. Removes the pid files.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

STATE_DIR=.slipway/run
GRACE_SECONDS="${SLIPWAY_STOP_GRACE_SECONDS:-20}"
# The API first, so no new work is accepted while the workers drain.
NAMES=(slipway-api slipway-worker-build slipway-worker-provision slipway-worker-deploy)

log() { printf 'stop: %s\n' "$*"; }

# is_ours PID NAME: PID is alive and its argv[0] is the binary NAME.
is_ours() {
    local pid=$1 name=$2 argv0
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [ -r "/proc/$pid/cmdline" ] || return 1
    argv0=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | head -n1) || return 1
    [ "${argv0##*/}" = "$name" ]
}

[ -d "$STATE_DIR" ] || {
    log "nothing to stop (no $STATE_DIR)"
    exit 0
}

pids=()
names=()
for name in "${NAMES[@]}"; do
    pidfile="$STATE_DIR/$name.pid"
    [ -f "$pidfile" ] || continue
    pid=$(tr -dc '0-9' <"$pidfile")
    if is_ours "$pid" "$name"; then
        log "SIGTERM $name (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        pids+=("$pid")
        names+=("$name")
    else
        log "$name: not running (stale pid file)"
        rm -f "$pidfile"
    fi
done

if [ "${#pids[@]}" -eq 0 ]; then
    log "nothing running"
    exit 0
fi

deadline=$((SECONDS + GRACE_SECONDS))
while :; do
    alive=0
    for i in "${!pids[@]}"; do
        is_ours "${pids[$i]}" "${names[$i]}" && alive=1
    done
    [ "$alive" -eq 1 ] || break
    ((SECONDS < deadline)) || break
    sleep 0.2
done

for i in "${!pids[@]}"; do
    pid=${pids[$i]} name=${names[$i]}
    if is_ours "$pid" "$name"; then
        log "$name (pid $pid) still running after ${GRACE_SECONDS}s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for _ in $(seq 1 25); do
            is_ours "$pid" "$name" || break
            sleep 0.2
        done
    else
        log "$name (pid $pid) stopped"
    fi
    rm -f "$STATE_DIR/$name.pid"
done
