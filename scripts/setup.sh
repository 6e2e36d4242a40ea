#!/usr/bin/env bash
# Installs what odfs needs on a Debian machine, only what is missing, then
# builds. Used by `npm test` (--test) and `npm run demo` (--demo).
#   Debian packages: libfuse2 + fuse3 (fuse-native's runtime and fusermount; NOT the
#   `fuse` package, which removes fuse3), libsecret (keytar), gnome-keyring + dbus
#   (a Secret Service for keytar on a headless machine), openssl (the emulator's CA),
#   rsync, git and attr's getfattr (mount tests), curl (the by-hand sign-in shown in the README; the
#   bench's baseline), time (GNU time: the bench's CPU time and peak RSS). The bench
#   installs rclone and nginx itself only when run with --install.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(libfuse2 fuse3 libsecret-1-0 libsecret-1-dev gnome-keyring dbus-daemon openssl rsync git curl attr time)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "odfs setup: installing Debian packages: ${missing[*]}" >&2
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "odfs setup: run as root or install: ${missing[*]}" >&2; exit 1; }
    SUDO=sudo
  fi
  $SUDO apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi

# npm ci when node_modules is missing or older than the lockfile.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "odfs setup: npm ci" >&2
  npm ci --no-audit --no-fund >&2
fi

# fuse-native's prebuilt addon hands utimens the access time as the modification
# time; build it from its source with that one argument fixed (see the script).
bash scripts/fuse-native-fix.sh

npm run -s build >&2
