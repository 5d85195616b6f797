//! The remote halves of setup's steps: `sh` scripts that look before they
//! change and print what they found as `found=…`, what they changed as
//! `change=…` and what went wrong as `fail=…` lines ([`Report`]). They run
//! as the target's user: root, or the deploy user on a later run, whose
//! changes (if any are needed) go through `sudo -n` — a deploy user
//! without sudo can rerun a setup that has nothing to change. Every value
//! put into a script was validated as a plain word, path or apt line, so
//! single quotes are enough.

use slipway_shared::job::{JobContext, JobError};
use slipway_shared::target::EngineKind;

/// `$SUDO` for the changes: empty for root.
const PRELUDE: &str = r#"set -u
SUDO=; [ "$(id -u)" = 0 ] || SUDO="sudo -n"
"#;

/// Prints `id=`, `like=`, `name=` from `/etc/os-release` (read, never
/// sourced) and the uid the script runs as.
pub(super) const DETECT_OS: &str = r#"v() { sed -n "s/^$1=//p" /etc/os-release 2>/dev/null | head -n 1 | tr -d "\"'"; }
echo "id=$(v ID)"
echo "like=$(v ID_LIKE)"
echo "name=$(v PRETTY_NAME)"
echo "uid=$(id -u)"
"#;

/// Setup installs with apt: Debian, Ubuntu.
pub(super) fn supported(id: &str, _like: &str) -> bool {
    matches!(id, "debian" | "ubuntu")
}

/// The packages a target with `engine` needs: the engine with what
/// rootless podman uses (user namespaces, its network, `--init`, and the
/// login session that gives the deploy user `/run/user/UID` and a lingering
/// systemd manager: `libpam-systemd`, missing from minimal images), and
/// Caddy. `gpg` is named because podman's `libgpgme11` depends on `gnupg |
/// gpg` and apt, left to choose, takes `gnupg` with its agents and 13 more
/// packages nothing here uses (a fresh server's install: 6.2 → 5.4 s).
pub(super) fn packages(engine: EngineKind) -> Vec<&'static str> {
    let mut packages = match engine {
        EngineKind::Podman => vec![
            "podman",
            "gpg",
            "uidmap",
            "slirp4netns",
            "catatonit",
            "libpam-systemd",
            "dbus-user-session",
        ],
        EngineKind::Docker => vec!["docker.io"],
    };
    packages.push("caddy");
    packages
}

/// Writes the apt source (if any, and if it differs), installs the
/// packages not installed, and stops the distribution's Caddy service:
/// Slipway runs its own Caddy as the deploy user, on the same admin port.
pub(super) fn install(packages: &[&str], apt_source: Option<&str>) -> String {
    let body = r#"export DEBIAN_FRONTEND=noninteractive
src='@SOURCE@'
if [ -n "$src" ]; then
  f=/etc/apt/sources.list.d/slipway.list
  if [ "$(cat "$f" 2>/dev/null)" != "$src" ]; then
    if printf '%s\n' "$src" | $SUDO tee "$f" >/dev/null; then echo "change=wrote the apt source $f"
    else echo "fail=cannot write $f"; exit 0; fi
  fi
fi
missing=
for p in @PACKAGES@; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -z "$missing" ]; then echo "found=installed already: @PACKAGES@"
elif out=$($SUDO apt-get update -q 2>&1 && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing 2>&1); then
  echo "change=installed$missing"
else echo "fail=installing$missing failed: $(printf '%s' "$out" | tail -n 5 | tr '\n' ' ')"; exit 0; fi
if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled caddy.service >/dev/null 2>&1; then
  if $SUDO systemctl disable --now caddy.service >/dev/null 2>&1; then
    echo "change=disabled the distribution's caddy.service (Slipway runs its own Caddy)"
  else echo "fail=cannot disable caddy.service"; fi
fi
"#;
    format!(
        "{PRELUDE}{}",
        body.replace("@SOURCE@", apt_source.unwrap_or_default())
            .replace("@PACKAGES@", &packages.join(" "))
    )
}

/// Creates the deploy user (with subordinate ids for rootless podman),
/// authorizes Slipway's key for it and lets its services outlive an SSH
/// session (systemd's linger).
pub(super) fn user(user: &str, public_key: &str) -> String {
    let body = r#"u='@USER@'; key='@KEY@'
if id -u "$u" >/dev/null 2>&1; then echo "found=user $u exists"
elif $SUDO useradd --create-home --shell /bin/sh "$u"; then echo "change=created user $u"
else echo "fail=cannot create user $u"; exit 0; fi
if ! grep -q "^$u:" /etc/subuid 2>/dev/null || ! grep -q "^$u:" /etc/subgid 2>/dev/null; then
  last=$(cat /etc/subuid /etc/subgid 2>/dev/null | awk -F: '{ e = $2 + $3; if (e > m) m = e } END { print m + 0 }')
  [ "$last" -ge 100000 ] || last=100000
  if $SUDO usermod --add-subuids "$last-$((last + 65535))" --add-subgids "$last-$((last + 65535))" "$u"; then
    echo "change=subordinate ids $last-$((last + 65535)) for $u"
  else echo "fail=cannot give $u subordinate ids"; exit 0; fi
fi
h=$(getent passwd "$u" | cut -d: -f6)
if grep -qxF "$key" "$h/.ssh/authorized_keys" 2>/dev/null; then echo "found=Slipway's key is authorized for $u"
elif $SUDO install -d -m 0700 -o "$u" -g "$u" "$h/.ssh" &&
     printf '%s\n' "$key" | $SUDO tee -a "$h/.ssh/authorized_keys" >/dev/null &&
     $SUDO chown "$u:$u" "$h/.ssh/authorized_keys" && $SUDO chmod 0600 "$h/.ssh/authorized_keys"; then
  echo "change=authorized Slipway's key for $u"
else echo "fail=cannot authorize Slipway's key for $u"; exit 0; fi
if [ -d /run/systemd/system ] && [ ! -e "/var/lib/systemd/linger/$u" ]; then
  if $SUDO loginctl enable-linger "$u"; then echo "change=lingering for $u (its services outlive SSH sessions)"
  else echo "fail=cannot enable lingering for $u"; fi
fi
"#;
    format!(
        "{PRELUDE}{}",
        body.replace("@USER@", user).replace("@KEY@", public_key)
    )
}

/// The data folder, owned by the deploy user; unprivileged users may bind
/// ports from 80 (its Caddy serves the apps on 80 and 443); for podman,
/// the deploy user's image storage.
pub(super) fn prepare(user: &str, data_dir: &str, engine: EngineKind) -> String {
    let storage = match engine {
        EngineKind::Podman => ROOTLESS_STORAGE,
        EngineKind::Docker => "",
    };
    let body = r#"u='@USER@'; d='@DIR@'
if [ -d "$d" ] && [ "$(stat -c %U "$d")" = "$u" ]; then echo "found=$d exists, owned by $u"
elif $SUDO mkdir -p "$d" && $SUDO chown "$u:$u" "$d" && $SUDO chmod 0750 "$d"; then echo "change=prepared $d for $u"
else echo "fail=cannot prepare $d"; exit 0; fi
f=/etc/sysctl.d/60-slipway.conf; want='net.ipv4.ip_unprivileged_port_start = 80'
if [ "$(cat "$f" 2>/dev/null)" = "$want" ]; then echo "found=$f lets users bind ports from 80"
elif printf '%s\n' "$want" | $SUDO tee "$f" >/dev/null && $SUDO sysctl -q -p "$f"; then
  echo "change=users may bind ports from 80 ($f)"
else echo "fail=cannot write $f"; fi
"#;
    format!(
        "{PRELUDE}{}{}",
        body.replace("@USER@", user).replace("@DIR@", data_dir),
        storage.replace("@USER@", user)
    )
}

/// Rootless podman's image storage on kernel overlayfs. Debian 12's podman
/// falls back to `vfs` without `fuse-overlayfs` (a recommendation, not
/// installed): a full copy of the image per layer and per container, and
/// layer roots with the image's own mode (0700 for a rootfs from a
/// `mktemp -d`, which then no user but root can enter: `stat
/// /run/podman-init: permission denied`). Kernels from 5.13 (Debian 12
/// has 6.1) mount overlayfs in a user namespace, though not on a home
/// that is itself on overlayfs (left to podman's default). A storage
/// already made with vfs stays (a driver switch would orphan its images).
/// It looks
/// without `sudo`: root and the deploy user (a later run) both read that
/// home.
const ROOTLESS_STORAGE: &str = r#"h=$(getent passwd "$u" | cut -d: -f6); c="$h/.config/containers/storage.conf"
want='[storage]
driver = "overlay"'
if [ "$(cat "$c" 2>/dev/null)" = "$want" ]; then echo "found=$c stores images on overlayfs"
elif [ -e "$c" ]; then echo "found=$c is the deploy user's own (left as it is)"
elif [ -d "$h/.local/share/containers/storage/vfs" ]; then echo "found=$u's podman stores images with vfs already (left as it is)"
elif [ "$(stat -f -c %T "$h" 2>/dev/null)" = overlayfs ]; then echo "found=$h is on overlayfs, where podman cannot stack its own: default storage"
elif $SUDO install -d -m 0700 -o "$u" -g "$u" "$h/.config" "$h/.config/containers" &&
     printf '%s\n' "$want" | $SUDO tee "$c" >/dev/null && $SUDO chown "$u:$u" "$c"; then
  echo "change=podman of $u stores images on overlayfs ($c)"
else echo "fail=cannot write $c"; fi
"#;

/// A script's `key=value` lines.
pub(super) struct Report {
    lines: Vec<(String, String)>,
}

impl Report {
    pub(super) fn parse(out: &str) -> Report {
        let lines = out
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
            .collect();
        Report { lines }
    }

    /// The first value of `key`, or "".
    pub(super) fn value(&self, key: &str) -> &str {
        self.lines
            .iter()
            .find(|(k, _)| k == key)
            .map_or("", |(_, v)| v.as_str())
    }

    fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.lines
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A permanent `code` error naming every `fail=` line, if any. A script
    /// that printed nothing at all (it died) fails too.
    pub(super) fn fail_on(&self, code: &'static str) -> Result<(), JobError> {
        let failures: Vec<&str> = self.all("fail").collect();
        if !failures.is_empty() {
            return Err(JobError::permanent(code, failures.join("; ")));
        }
        if self.lines.is_empty() {
            return Err(JobError::permanent(
                code,
                "the step's script reported nothing",
            ));
        }
        Ok(())
    }

    /// Logs what was found and changed; adds the changes to `changes`.
    pub(super) async fn log(&self, ctx: &JobContext, changes: &mut Vec<String>) {
        for (key, value) in &self.lines {
            match key.as_str() {
                "found" => ctx.logs.info(value.clone()).await,
                "change" => {
                    ctx.logs.info(format!("changed: {value}")).await;
                    changes.push(value.clone());
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_name_failures_and_changes() {
        let report = Report::parse("found=user x exists\nchange=created /d\nfail=no disk\n");
        assert_eq!(report.value("found"), "user x exists");
        let err = report.fail_on("prepare_failed").unwrap_err();
        assert!(format!("{err:?}").contains("no disk"), "{err:?}");
        assert!(Report::parse("").fail_on("x").is_err());
        assert!(Report::parse("found=ok\n").fail_on("x").is_ok());
    }

    #[test]
    fn only_debian_and_ubuntu_are_set_up() {
        assert!(supported("debian", ""));
        assert!(supported("ubuntu", "debian"));
        assert!(!supported("alpine", ""));
        assert!(!supported("fedora", ""));
        assert!(!supported("", ""));
    }

    #[test]
    fn scripts_carry_their_values() {
        let script = install(&packages(EngineKind::Podman), Some("deb http://r/ ./"));
        assert!(script.contains("src='deb http://r/ ./'"));
        assert!(script.contains(
            "for p in podman gpg uidmap slirp4netns catatonit libpam-systemd dbus-user-session caddy;"
        ));
        assert!(install(&packages(EngineKind::Docker), None).contains("for p in docker.io caddy;"));
        assert!(user("slipway", "ssh-ed25519 AAAA").contains("u='slipway'; key='ssh-ed25519 AAAA'"));
        assert!(prepare("slipway", "/d", EngineKind::Podman).contains("driver = \"overlay\""));
        assert!(!prepare("slipway", "/d", EngineKind::Docker).contains("storage.conf"));
    }
}
