# shellcheck shell=bash
# Sourced by scripts/*-tools.sh. install_missing_packages PKG...: installs
# those of the Debian packages that are not installed yet. Uses the caller's
# `log`. Package installs do not start services here (policy-rc.d).
install_missing_packages() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$pkg")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        log "packages: all present"
        return
    fi
    log "packages: installing ${missing[*]}"
    apt-get update -qq </dev/null || log "apt-get update failed; trying the install anyway"
    apt-get install -y -qq "${missing[@]}" </dev/null >&2
}
