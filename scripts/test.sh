#!/usr/bin/env bash
# Slipway's test command (see README): backing services, format, lints, binaries, tests.
#
#   scripts/test.sh
#
# Every step runs even when an earlier one failed (so one run shows every
# problem), except that the tests are skipped when the services or the build
# are broken. The exit code is non-zero when any step failed.
#
# Environment (defaults in brackets):
#   SLIPWAY_TEST_DATABASE_URL [postgres://postgres@127.0.0.1:5432/postgres]
#       admin connection; tests create their own databases (slipway_test_*)
#   SLIPWAY_TEST_AMQP_URL     [amqp://guest:guest@127.0.0.1:5672/%2f]
#   SLIPWAY_TEST_THREADS      [2]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

export CI="${CI:-true}"
export SLIPWAY_TEST_DATABASE_URL="${SLIPWAY_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
# The suite runs against a RabbitMQ node of its own (started below) unless
# SLIPWAY_TEST_AMQP_URL names one: it creates and deletes many queues, and a
# shared broker's state must not decide whether the tests pass.
OWN_BROKER=0
[ -n "${SLIPWAY_TEST_AMQP_URL:-}" ] || OWN_BROKER=1
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
TEST_THREADS="${SLIPWAY_TEST_THREADS:-2}"

STEPS=12
step_no=0
failed=()
passed=()

header() {
    step_no=$((step_no + 1))
    printf '\n==> [%d/%d] %s\n' "$step_no" "$STEPS" "$1"
}

# run_step NAME CMD... : run a step, record its result, never abort the script.
run_step() {
    local name=$1 start rc=0
    shift
    header "$name"
    printf '    $ %s\n' "$*"
    start=$SECONDS
    "$@" </dev/null || rc=$?
    if [ "$rc" -eq 0 ]; then
        printf '<== %s: ok (%ds)\n' "$name" $((SECONDS - start))
        passed+=("$name")
    else
        printf '<== %s: FAILED with exit code %d (%ds)\n' "$name" "$rc" $((SECONDS - start))
        failed+=("$name")
    fi
    return "$rc"
}

skip_step() {
    header "$1"
    printf '<== %s: SKIPPED (%s)\n' "$1" "$2"
    failed+=("$1 (skipped)")
}

drop_leftover_test_databases() {
    # Databases that earlier (killed or failed) test runs left behind. A plain
    # DROP fails for a database that still has connections, so the databases
    # of a test run that is going on right now are left alone.
    local dbs db n=0
    dbs=$(psql -X -w "$SLIPWAY_TEST_DATABASE_URL" -Atc \
        "select datname from pg_database where datname like 'slipway\_test\_%' order by 1") || return 1
    while IFS= read -r db; do
        [ -n "$db" ] || continue
        if psql -X -w "$SLIPWAY_TEST_DATABASE_URL" -qc "drop database if exists \"$db\"" >/dev/null 2>&1; then
            n=$((n + 1))
        else
            printf '    kept %s (in use)\n' "$db"
        fi
    done <<<"$dbs"
    printf '    dropped %d leftover test database(s)\n' "$n"
}

services_ok=1
build_ok=1

run_tests() {
    mkdir -p .slipway
    local rc=0
    cargo test --workspace --lib --bins --tests --no-fail-fast -- --test-threads="$TEST_THREADS" 2>&1 |
        tee .slipway/test-output.log || rc=$?
    # One closing line with the totals over every test binary.
    awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
         END { printf "tests: %d passed, %d failed\n", p, f }' .slipway/test-output.log >.slipway/test-totals
    TEST_TOTALS=$(cat .slipway/test-totals)
    return "$rc"
}
TEST_TOTALS=

# The dashboard's assets for the browser test (tests/tests/browser.rs) and
# the API's `/`; cargo itself never needs npm.
build_dashboard() {
    (cd web && npm ci --no-audit --no-fund --loglevel=error && npm run --silent check && npm test && npm run --silent build)
}

if [ "$OWN_BROKER" -eq 1 ]; then
    run_step "backing services (scripts/services.sh --for-tests)" bash scripts/services.sh --for-tests || services_ok=0
else
    run_step "backing services (scripts/services.sh)" bash scripts/services.sh || services_ok=0
fi
run_step "build tools and base images (scripts/build-tools.sh)" bash scripts/build-tools.sh --env-file .slipway/build-tools.env && . .slipway/build-tools.env || true
run_step "Caddy for deployed apps (scripts/deploy-tools.sh)" bash scripts/deploy-tools.sh --env-file .slipway/deploy-tools.env && . .slipway/deploy-tools.env || true
run_step "test servers' tools (scripts/test-tools.sh)" bash scripts/test-tools.sh || true
run_step "test hosts with their own root (scripts/test-hosts.sh)" bash scripts/test-hosts.sh --env-file .slipway/test-hosts.env && . .slipway/test-hosts.env || true
run_step "dashboard (npm ci && npm run build in web/)" build_dashboard || true
run_step "format (cargo fmt --check)" cargo fmt --all --check || true
run_step "lint (cargo clippy)" cargo clippy --workspace --all-targets -- -D warnings || true
run_step "build binaries (cargo build --bins)" cargo build --workspace --bins || build_ok=0

if [ "$services_ok" -eq 1 ]; then
    run_step "drop leftover slipway_test_* databases" drop_leftover_test_databases || true
else
    skip_step "drop leftover slipway_test_* databases" "services are not up"
fi

BROKER_PID=
stop_test_broker() {
    if [ -n "$BROKER_PID" ] && kill -0 "$BROKER_PID" 2>/dev/null; then
        kill -TERM "$BROKER_PID" 2>/dev/null || true
        wait "$BROKER_PID" 2>/dev/null || true
    fi
}
trap stop_test_broker EXIT

start_test_broker() {
    mkdir -p .slipway
    cargo build -p slipway-testkit --bin slipway-test-broker || return 1
    : >.slipway/test-broker.url
    target/debug/slipway-test-broker >.slipway/test-broker.url 2>.slipway/test-broker.log &
    BROKER_PID=$!
    local waited=0
    until [ -s .slipway/test-broker.url ]; do
        if ! kill -0 "$BROKER_PID" 2>/dev/null || [ "$waited" -ge 120 ]; then
            tail -n 20 .slipway/test-broker.log
            return 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
    SLIPWAY_TEST_AMQP_URL=$(head -n 1 .slipway/test-broker.url)
    export SLIPWAY_TEST_AMQP_URL
    printf '    test broker: %s (pid %s)\n' "$SLIPWAY_TEST_AMQP_URL" "$BROKER_PID"
}

if [ "$OWN_BROKER" -eq 1 ] && [ "$services_ok" -eq 1 ] && [ "$build_ok" -eq 1 ]; then
    run_step "test-owned RabbitMQ node" start_test_broker || build_ok=0
fi

if [ "$services_ok" -eq 1 ] && [ "$build_ok" -eq 1 ]; then
    # No doc tests: the crates have none, and their empty results would be
    # the run's closing lines.
    run_step "tests (cargo test)" run_tests || true
else
    skip_step "tests (cargo test)" "services or build failed"
fi

printf '\n==> steps: %d ok, %d not ok\n' "${#passed[@]}" "${#failed[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
    printf '    FAILED: %s\n' "${failed[@]}"
    [ -z "$TEST_TOTALS" ] || printf '%s\n' "$TEST_TOTALS"
    exit 1
fi
printf '    all steps passed\n'
# The closing line: totals over every test binary.
[ -z "$TEST_TOTALS" ] || printf '%s\n' "$TEST_TOTALS"
