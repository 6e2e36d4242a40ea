#!/usr/bin/env bash
# fuse-native 2.2.6's addon gets utimens wrong in two ways, inside its prebuilt
# binary where no JavaScript can work around them:
#  1. it passes the access time twice (the second FUSE_UINT64_TO_INTS_ARGV takes
#     l->atime where it must take l->mtime), so `rsync -t` and `os.utime` with
#     atime and mtime apart set the wrong modification time;
#  2. it does not set flag_utime_omit_ok, so libfuse drops a utimensat that sets
#     only one of the two times (`touch -m -d`, `touch -a`), and it turns UTIME_NOW
#     and UTIME_OMIT into the same 1073 ms.
# This script fixes those lines in the installed source (UTIME_OMIT arrives as 1072
# ms and UTIME_NOW as 1073 ms, see src/fuse/adapter.ts) and builds the addon from
# it with node-gyp, offline: Node's headers come from the machine (as npm builds
# keytar) and libfuse's from fuse-shared-library-linux, a fuse-native dependency.
# node-gyp-build loads build/Release before the prebuilt addon. Idempotent; run by
# scripts/setup.sh after npm ci.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=node_modules/fuse-native
src=$dir/fuse-native.c
[ -f "$src" ] || { echo "odfs setup: $src not found (run npm ci first)" >&2; exit 1; }
marker='/* odfs: utimens fixed */'
if ! grep -qF "$marker" "$src"; then
  sed -i \
    -e 's|^  l->atime = timespec_to_uint64(&tv\[0\]);$|  l->atime = tv[0].tv_nsec == UTIME_OMIT ? 1072 : tv[0].tv_nsec == UTIME_NOW ? 1073 : timespec_to_uint64(\&tv[0]);|' \
    -e 's|^  l->mtime = timespec_to_uint64(&tv\[1\]);$|  l->mtime = tv[1].tv_nsec == UTIME_OMIT ? 1072 : tv[1].tv_nsec == UTIME_NOW ? 1073 : timespec_to_uint64(\&tv[1]); '"$marker"'|' \
    -e 's|^  FUSE_UINT64_TO_INTS_ARGV(l->atime, 5)$|  FUSE_UINT64_TO_INTS_ARGV(l->mtime, 5)|' \
    -e 's|^  if (implemented\[op_utimens\]) ops.utimens = fuse_native_utimens;$|  if (implemented[op_utimens]) { ops.utimens = fuse_native_utimens; ops.flag_utime_omit_ok = 1; }|' \
    "$src"
  rm -rf "$dir/build"
fi
for want in "$marker" 'FUSE_UINT64_TO_INTS_ARGV(l->mtime, 5)' 'ops.flag_utime_omit_ok = 1;' 'tv[0].tv_nsec == UTIME_OMIT ? 1072'; do
  grep -qF "$want" "$src" || { echo "odfs setup: fuse-native's utimens is not the code this fix knows ($want missing); check $src" >&2; exit 1; }
done
if [ ! -f "$dir/build/Release/fuse.node" ]; then
  echo "odfs setup: building fuse-native with the utimens fix" >&2
  nodedir=$(npm config get nodedir 2>/dev/null || true)
  if [ -z "$nodedir" ] || [ "$nodedir" = undefined ]; then
    nodedir=$(dirname "$(dirname "$(command -v node)")")
  fi
  [ -f "$nodedir/include/node/node_api.h" ] || { echo "odfs setup: Node's headers are not in $nodedir/include/node; cannot build fuse-native" >&2; exit 1; }
  (cd "$dir" && npm_config_nodedir="$nodedir" ../.bin/node-gyp rebuild >build.log 2>&1 || { cat build.log >&2; exit 1; })
fi
