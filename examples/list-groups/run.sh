#!/bin/sh
# Build list-groups and run it, unmodified, against a private tcefs mount. Arguments go to `tcefs run`
# (for example --topology FILE, or --mount DIR for a running mount).
#   examples/list-groups/run.sh
set -e
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# A machine that never ran the project's setup gets it first (Debian packages, npm dependencies).
if [ ! -d "$root/node_modules/fuse-native" ] || ! command -v fusermount >/dev/null 2>&1 || ! command -v gcc >/dev/null 2>&1; then
  bash "$root/scripts/setup.sh"
fi
mkdir -p "$root/build"
gcc -Wall -Werror -O2 -I"$root/include" "$here/list-groups.c" -o "$root/build/list-groups"
exec "$root/bin/tcefs" run "$@" -- "$root/build/list-groups"
