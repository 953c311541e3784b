#!/usr/bin/env bash
# Build the kernel's own iommufd selftests (tools/testing/selftests/iommu of Debian's linux-source-7.3) the
# way their Makefile does, against the uAPI headers of the same tree. The sources come from
# scripts/debian-fetch.sh (private apt configuration); the extracted subset, the installed headers and the
# binaries are cached, so a second run only prints the paths:
#
#   scripts/kselftest/build.sh   -> DIR=<cache dir>  IOMMUFD=<binary>  FAIL_NTH=<binary>
#
# Nothing of the kernel is copied into the project: it is fetched and built at test time.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${TCEFS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tcefs}
pkg=linux-source-7.3
src=$(bash "$here/../debian-fetch.sh" -a all -s trixie-backports -d "$cache" "$pkg")
version=$(cat "$src/.done" 2>/dev/null || echo unknown)
out=$cache/kselftest/$pkg
tree=$out/$pkg
bin=$out/bin

# A newer package of the same name starts over.
[ "$(cat "$out/.version" 2>/dev/null)" = "$version" ] || rm -f "$out/.extracted"
if [ ! -e "$out/.extracted" ]; then
  rm -rf "$out" && mkdir -p "$out"
  # One pass over the tarball (xz cannot seek) for everything the build and a reader of the tests need.
  tar -xJf "$src/usr/src/$pkg.tar.xz" -C "$out" \
    "$pkg/tools/testing/selftests/iommu" "$pkg/tools/testing/selftests/kselftest_harness.h" \
    "$pkg/tools/testing/selftests/kselftest.h" "$pkg/drivers/iommu/iommufd" "$pkg/include/uapi" \
    "$pkg/scripts/headers_install.sh" "$pkg/scripts/unifdef.c"
  echo "$version" >"$out/.version"
  touch "$out/.extracted"
fi

if [ ! -e "$out/usr/.installed" ]; then
  command -v gcc >/dev/null || { echo "kselftest: gcc is missing (scripts/setup.sh installs it)" >&2; exit 1; }
  gcc -O2 -o "$tree/scripts/unifdef" "$tree/scripts/unifdef.c"
  rm -rf "$out/usr"
  # headers_install.sh runs scripts/unifdef relative to the tree; the selftests' KHDR_INCLUDES points here.
  (cd "$tree" && find include/uapi -name '*.h' -printf '%P\n' | while read -r h; do
    mkdir -p "$out/usr/include/$(dirname "$h")"
    sh scripts/headers_install.sh "include/uapi/$h" "$out/usr/include/$h"
  done)
  touch "$out/usr/.installed"
fi

sel=$tree/tools/testing/selftests
mkdir -p "$bin"
for t in iommufd iommufd_fail_nth; do
  if [ ! -x "$bin/$t" ] || [ "$sel/iommu/$t.c" -nt "$bin/$t" ]; then
    [ -e /usr/include/sys/capability.h ] || { echo "kselftest: libcap-dev is missing (scripts/setup.sh installs it)" >&2; exit 1; }
    # The selftests' own Makefile flags (CFLAGS of iommu/Makefile and lib.mk's KHDR_INCLUDES).
    # Built from its own directory, so that assertions name iommufd.c, not a cache path.
    (cd "$sel/iommu" && gcc -Wall -O2 -Wno-unused-function -isystem "$out/usr/include" -D_GNU_SOURCE= -I .. \
      "$t.c" -o "$bin/$t.tmp" -lcap)
    mv "$bin/$t.tmp" "$bin/$t"
  fi
done
echo "DIR=$out"
echo "IOMMUFD=$bin/iommufd"
echo "FAIL_NTH=$bin/iommufd_fail_nth"
