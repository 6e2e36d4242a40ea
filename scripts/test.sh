#!/usr/bin/env bash
# Runs every tap test inside a private D-Bus session with an unlocked
# gnome-keyring, so keytar talks to a real Secret Service. Keyring files go to a
# throw-away XDG_DATA_HOME. Extra arguments go to tap (e.g. a test file).
set -uo pipefail
cd "$(dirname "$0")/.."
export ODFS_TEST_KEYRING_DIR
ODFS_TEST_KEYRING_DIR=$(mktemp -d /tmp/odfs-keyring.XXXXXX)
trap 'rm -rf "$ODFS_TEST_KEYRING_DIR"' EXIT
exec dbus-run-session -- bash -c '
  export XDG_DATA_HOME="$ODFS_TEST_KEYRING_DIR"
  eval "$(printf "odfs-test-keyring" | gnome-keyring-daemon --unlock --components=secrets 2>/dev/null)" || true
  export GNOME_KEYRING_CONTROL
  exec npx tap "$@"
' odfs-test "$@"
