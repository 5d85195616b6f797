#!/usr/bin/env bash
# Make sure this host has what the tests' own "servers" need beyond the
# platform's tools (scripts/build-tools.sh, scripts/deploy-tools.sh):
#   - Debian's docker.io (dockerd, containerd): a test makes a Docker-only
#     ssh target by starting a dockerd of its own inside a network
#     namespace. The package's service is never started here: no dockerd
#     runs on this host outside a test.
#   - openssh-server (sshd for the ssh targets' namespaces), iproute2
#   - prometheus (with promtool): tests/tests/operator.rs checks the alert
#     rules and runs a Prometheus of its own on loopback against a fleet.
#     The package's service is never started here.
#   - nodejs and npm (when no node is on PATH): the dashboard's build
#     (web/, `npm ci`) and its browser test's driver.
#   - chromium: the dashboard's browser test (tests/tests/browser.rs) drives
#     Debian's Chromium headless through npm's playwright-core (a browser
#     download by Playwright itself cannot work here).
#
#   scripts/test-tools.sh
#
# Idempotent, non-interactive, needs root.
set -euo pipefail
# shellcheck source=scripts/lib/packages.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/packages.sh"

export DEBIAN_FRONTEND=noninteractive CI="${CI:-true}"

log() { printf 'test-tools: %s\n' "$*" >&2; }

[ "$(id -u)" -eq 0 ] || {
    log "ERROR: needs root (apt-get)"
    exit 1
}

# docker.io's maintainer scripts start its service unless policy-rc.d says
# no; a machine without one gets a temporary one for the install.
POLICY=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$POLICY"
    chmod 0755 "$POLICY"
    made_policy=1
fi
cleanup() { [ "$made_policy" -eq 0 ] || rm -f "$POLICY"; }
trap cleanup EXIT

install_missing_packages docker.io openssh-server iproute2 prometheus chromium
command -v dockerd >/dev/null || {
    log "ERROR: dockerd is not on PATH after installing docker.io"
    exit 1
}
log "dockerd $(dockerd --version | sed 's/^Docker version //')"
command -v promtool >/dev/null || {
    log "ERROR: promtool is not on PATH after installing prometheus"
    exit 1
}
log "prometheus $(prometheus --version 2>&1 | sed -n 's/^prometheus, version \([^ ]*\).*/\1/p')"

command -v npm >/dev/null || install_missing_packages nodejs npm
command -v chromium >/dev/null || {
    log "ERROR: chromium is not on PATH after installing chromium"
    exit 1
}
log "$(chromium --version 2>/dev/null | head -1)"

# schemathesis (PyPI), the API fuzzer tests/tests/api/fuzz.rs runs against the
# served /openapi.json: a pinned version in a venv of the repository's own
# (.slipway/schemathesis), reinstalled only when the version differs.
SCHEMATHESIS_VERSION=4.32.5
VENV="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.slipway/schemathesis"
if [ "$("$VENV/bin/schemathesis" --version 2>/dev/null | grep -o '[0-9][0-9.]*$')" != "$SCHEMATHESIS_VERSION" ]; then
    python3 -m venv "$VENV" 2>/dev/null || {
        install_missing_packages python3-venv
        python3 -m venv "$VENV"
    }
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
log "schemathesis $("$VENV/bin/schemathesis" --version | grep -o '[0-9][0-9.]*$') ($VENV)"
