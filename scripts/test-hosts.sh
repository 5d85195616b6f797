#!/usr/bin/env bash
# Build, once, what the tests' "servers with their own root" need
# (testkit/src/host/): a podman image of a debootstrapped Debian with
# systemd and sshd, run as a privileged container with its own root
# filesystem (so installing packages, adding users or editing /etc on a test
# host never touches this machine), and a local apt repository of the
# packages server setup installs there.
#   - $SLIPWAY_TEST_HOST_IMAGE: systemd as PID 1, sshd, no apt source inside
#     (packages come from the test's repository); the test's host key,
#     authorized key and files come from a seed folder mounted at /seed
#   - $DIR/repo: the .debs of podman, Caddy and what they need beyond the
#     image, with a Packages index (dpkg-scanpackages), served over HTTP
#     inside each host's network namespace by the tests
#   (KVM virtual machines were tried first and do not boot here: see
#   docs/architecture.md, "Test hosts with their own root".)
#
#   scripts/test-hosts.sh [--env-file FILE]
#
# Idempotent, non-interactive, needs root and podman (scripts/build-tools.sh,
# whose CONTAINERS_CONF it uses). A few seconds when all is in place; a build
# from nothing takes a few minutes (each part's time is printed). A recipe
# change rebuilds what it is about: the machine's files (debootstrap) are
# kept as a tarball, so another package list for the repository does not run
# debootstrap again. stdout gets the environment the tests need (also
# written to FILE with --env-file).
#
# Environment (defaults in brackets):
#   SLIPWAY_TEST_HOSTS        [.slipway/hosts]  the cache folder
#   SLIPWAY_TEST_HOST_IMAGE   [localhost/slipway/testhost:bookworm]
#   SLIPWAY_DEBIAN_MIRROR     [http://deb.debian.org/debian]
#   CONTAINERS_CONF           [/var/lib/slipway/containers.conf when it exists]
set -euo pipefail
# shellcheck source=scripts/lib/packages.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/packages.sh"

export DEBIAN_FRONTEND=noninteractive CI="${CI:-true}"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DIR="${SLIPWAY_TEST_HOSTS:-$PWD/.slipway/hosts}"
MIRROR="${SLIPWAY_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
ENV_FILE=
# What the image holds; the repository holds what setup installs.
IMAGE="${SLIPWAY_TEST_HOST_IMAGE:-localhost/slipway/testhost:bookworm}"
IMAGE_PACKAGES=systemd-sysv,dbus,openssh-server,iproute2,ca-certificates,sudo,procps
# What setup installs (worker-provision/src/setup/script.rs) and what podman
# recommends, with everything they need that the image lacks.
REPO_PACKAGES="podman gpg caddy runc crun catatonit containernetworking-plugins iptables uidmap slirp4netns libpam-systemd dbus-user-session curl"
IMAGE_RECIPE="v2 bookworm $MIRROR $IMAGE_PACKAGES"

log() { printf 'test-hosts: %s\n' "$*" >&2; }
die() {
    printf 'test-hosts: ERROR: %s\n' "$*" >&2
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

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, apt-get)"
mkdir -p "$DIR"
start=$SECONDS
# Other work on this machine may hold apt's lock for a while: wait for it.
printf 'DPkg::Lock::Timeout "600";\n' >"$DIR/apt.conf"
export APT_CONFIG="$DIR/apt.conf"

if [ -z "${CONTAINERS_CONF:-}" ] && [ -f /var/lib/slipway/containers.conf ]; then
    export CONTAINERS_CONF=/var/lib/slipway/containers.conf
fi
command -v podman >/dev/null || die "podman is missing: run scripts/build-tools.sh first"

# --- image and repository -----------------------------------------------------

hash_of() { printf '%s' "$1" | sha256sum | cut -c1-16; }
ROOTFS_HASH=$(hash_of "$IMAGE_RECIPE")
REPO_HASH=$(hash_of "$ROOTFS_HASH $REPO_PACKAGES")
ROOTFS_TAR="$DIR/rootfs-$ROOTFS_HASH.tar"

# configure_machine ROOT: no apt source (setup is given one), root in by key
# only, and the boot command: the seed (the test's host key, authorized key
# and files, mounted at /seed) applied, then systemd as PID 1.
configure_machine() {
    local root=$1
    [ -n "$root" ] && [ -d "$root/etc" ] && [ "$root" != / ] || die "configure_machine: bad root '$root'"
    : >"$root/etc/apt/sources.list"
    printf 'APT::Install-Recommends "false";\n' >"$root/etc/apt/apt.conf.d/99slipway"
    echo slipway-host >"$root/etc/hostname"
    printf '%s\n' 'PasswordAuthentication no' 'KbdInteractiveAuthentication no' \
        'PermitRootLogin prohibit-password' 'UseDNS no' 'HostKey /etc/ssh/ssh_host_ed25519_key' \
        >"$root/etc/ssh/sshd_config.d/slipway.conf"
    rm -f "$root"/etc/ssh/ssh_host_*
    printf '%s\n' '#!/bin/sh' '# Applies the seed at /seed, then becomes systemd.' 'set -e' \
        'if [ -d /seed/files ]; then cp -a /seed/files/. /; fi' \
        'install -d -m 0700 /root/.ssh' \
        'install -m 0600 /seed/authorized_keys /root/.ssh/authorized_keys' \
        'install -m 0600 /seed/ssh_host_ed25519_key /etc/ssh/ssh_host_ed25519_key' \
        '# As on a stock Debian (udev): rootless podman opens it for slirp4netns.' \
        '[ ! -c /dev/net/tun ] || chmod 0666 /dev/net/tun' \
        'exec /sbin/init' >"$root/usr/local/sbin/slipway-boot"
    chmod 0755 "$root/usr/local/sbin/slipway-boot"
    chroot "$root" systemctl enable ssh.service >/dev/null 2>&1 || die "enabling sshd failed"
    # Nothing that waits for a clock or a console, nor apt's timers.
    chroot "$root" systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_reap.service \
        systemd-timesyncd.service getty@tty1.service console-getty.service >/dev/null 2>&1 || true
    chroot "$root" passwd -d root >/dev/null
}

# The machine's files, debootstrapped once and kept as a tarball.
ensure_rootfs_tar() {
    [ -s "$ROOTFS_TAR" ] && return
    install_missing_packages debootstrap dpkg-dev
    local root="$DIR/rootfs" t=$SECONDS
    rm -rf "$root"
    log "image: debootstrap bookworm with $IMAGE_PACKAGES"
    debootstrap --variant=minbase --include="$IMAGE_PACKAGES" bookworm "$root" "$MIRROR" \
        >"$DIR/debootstrap.log" 2>&1 || {
        tail -n 20 "$DIR/debootstrap.log" >&2
        die "debootstrap failed (log: $DIR/debootstrap.log)"
    }
    log "image: debootstrap took $((SECONDS - t)) s"
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
    rm -f "$DIR"/rootfs-*.tar
    tar -C "$root" -cf "$ROOTFS_TAR.tmp" .
    mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
    rm -rf "$root"
}

# unpack_rootfs DIR: the machine's files in DIR (a fresh folder).
unpack_rootfs() {
    rm -rf "$1"
    mkdir -p "$1"
    tar -C "$1" -xf "$ROOTFS_TAR"
}

build_image() {
    ensure_rootfs_tar
    local root="$DIR/image-root" t=$SECONDS
    unpack_rootfs "$root"
    configure_machine "$root"
    tar -C "$root" -c . | podman import --quiet --change "LABEL=io.slipway.recipe=$IMAGE_HASH" \
        --change 'CMD=["/usr/local/sbin/slipway-boot"]' --change 'STOPSIGNAL=SIGRTMIN+3' - "$IMAGE" \
        >/dev/null || die "podman import failed"
    rm -rf "$root"
    log "image: $IMAGE in $((SECONDS - t)) s"
}

# The repository: what setup installs, downloaded by the image's own apt
# (with Debian's sources for the while), so exactly what it lacks is there.
build_repo() {
    ensure_rootfs_tar
    local root="$DIR/repo-root" t=$SECONDS
    unpack_rootfs "$root"
    printf 'deb %s bookworm main\n' "$MIRROR" >"$root/etc/apt/sources.list"
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    env -u APT_CONFIG chroot "$root" apt-get update -qq </dev/null >&2 || die "apt-get update in the image failed"
    # shellcheck disable=SC2086
    env -u APT_CONFIG chroot "$root" apt-get install -y -qq --no-install-recommends --download-only $REPO_PACKAGES \
        </dev/null >&2 || die "downloading the repository's packages failed"
    rm -rf "$DIR/repo"
    mkdir -p "$DIR/repo"
    mv "$root"/var/cache/apt/archives/*.deb "$DIR/repo/"
    (cd "$DIR/repo" && dpkg-scanpackages --multiversion . >Packages 2>/dev/null) ||
        die "dpkg-scanpackages failed"
    rm -rf "$root"
    log "repository: $(find "$DIR/repo" -name '*.deb' | wc -l) packages in $((SECONDS - t)) s"
    echo "$REPO_HASH" >"$DIR/repo.recipe"
}

# The image is rebuilt when the debootstrap or configure_machine changes.
IMAGE_HASH=$(hash_of "$ROOTFS_HASH $(declare -f configure_machine)")
if [ "$(podman image inspect --format '{{ index .Labels "io.slipway.recipe" }}' "$IMAGE" 2>/dev/null)" = "$IMAGE_HASH" ]; then
    log "image: $IMAGE present"
else
    build_image
fi
if [ "$(cat "$DIR/repo.recipe" 2>/dev/null)" = "$REPO_HASH" ] && [ -s "$DIR/repo/Packages" ]; then
    log "repository: present ($DIR/repo)"
else
    build_repo
fi

log "ready in $((SECONDS - start)) s"
out="export SLIPWAY_TEST_HOSTS=$DIR
export SLIPWAY_TEST_HOST_IMAGE=$IMAGE"
printf '%s\n' "$out"
[ -z "$ENV_FILE" ] || printf '%s\n' "$out" >"$ENV_FILE"
