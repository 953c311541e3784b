#!/usr/bin/env bash
# Build the C side into build/: libtcefs.so and libtcefs.a (c/libtcefs.c, header include/tcefs/tcefs.h)
# and libtcefs-preload.so, the LD_PRELOAD shim (c/preload.c, c/shim-*.c, with libtcefs linked in).
# A quick no-op when every output is newer than every source. Concurrent runs (parallel test workers)
# serialize on a lock, and each output appears by rename, so nobody loads a half-written library.
set -euo pipefail
cd "$(dirname "$0")/.."

outputs=(build/libtcefs.so build/libtcefs.a build/libtcefs-preload.so)
sources=(c include scripts/build-c.sh)

stale() {
  local o
  for o in "${outputs[@]}"; do
    [ -e "$o" ] || return 0
    [ -z "$(find "${sources[@]}" -newer "$o" -print -quit)" ] || return 0
  done
  return 1
}

stale || exit 0
mkdir -p build
exec 9>build/.lock
flock 9
stale || exit 0

CC=${CC:-gcc}
# -U_FORTIFY_SOURCE: the shim defines open/read/readlink itself, which fortify's inline wrappers forbid.
cflags=(-Wall -Werror -O2 -g -fPIC -pthread -Iinclude -U_FORTIFY_SOURCE)
tmp=$(mktemp -d build/.tmp.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

"$CC" "${cflags[@]}" -c c/libtcefs.c -o "$tmp/libtcefs.o"
"$CC" "${cflags[@]}" -c c/libtcefs-irq.c -o "$tmp/libtcefs-irq.o"
"$CC" "${cflags[@]}" -c c/libtcefs-lease.c -o "$tmp/libtcefs-lease.o"
"$CC" "${cflags[@]}" -c c/libtcefs-post.c -o "$tmp/libtcefs-post.o"
"$CC" "${cflags[@]}" -shared -Wl,-soname,libtcefs.so "$tmp/libtcefs.o" "$tmp/libtcefs-irq.o" "$tmp/libtcefs-lease.o" "$tmp/libtcefs-post.o" -o "$tmp/libtcefs.so"
ar rcs "$tmp/libtcefs.a" "$tmp/libtcefs.o" "$tmp/libtcefs-irq.o" "$tmp/libtcefs-lease.o" "$tmp/libtcefs-post.o"
# Only the interposed libc names leave the shim; libtcefs inside it stays private (-fvisibility=hidden).
"$CC" "${cflags[@]}" -fvisibility=hidden -shared c/preload.c c/shim-*.c c/libtcefs.c c/libtcefs-irq.c c/libtcefs-lease.c c/libtcefs-post.c \
  -o "$tmp/libtcefs-preload.so" -ldl
for o in "${outputs[@]}"; do mv -f "$tmp/$(basename "$o")" "$o"; done
