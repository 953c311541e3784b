#!/usr/bin/env bash
# Fetch Debian packages of any architecture and suite and extract them into a cache directory, through a
# private apt configuration: the system's dpkg architectures, apt sources and package lists stay as they
# are. The mirror is the one the machine's own apt sources name.
#
#   scripts/debian-fetch.sh [-a ARCH] [-s SUITE] [-c COMPONENTS] [-d CACHE] [-D] PACKAGE...
#
# Each PACKAGE ends up extracted in $CACHE/pkgs/<suite>-<arch>/<package>/ and that path is printed, one
# line per package. A package already extracted is not fetched again. -D fetches nothing and prints each
# PACKAGE's Depends line instead (what a metapackage stands for today). Examples:
#   scripts/debian-fetch.sh -a all -s trixie-backports linux-source-7.3
#   scripts/debian-fetch.sh -a ppc64el -s bookworm-backports qemu-system-ppc qemu-system-data
set -euo pipefail

arch=$(dpkg --print-architecture)
suite=
components=main
depends=
cache=${TCEFS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tcefs}

usage() { sed -n '2,13s/^# \{0,1\}//p' "$0" >&2; exit 2; }
while getopts a:s:c:d:Dh opt; do
  case $opt in
    a) arch=$OPTARG ;;
    s) suite=$OPTARG ;;
    c) components=$OPTARG ;;
    d) cache=$OPTARG ;;
    D) depends=1 ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || usage

# The first Debian mirror of the machine's sources (deb822 first, then one-line sources.list).
mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] || continue
    awk '/^URIs:/ && $2 !~ /-security/ {print $2; exit}' "$f"
  done | head -n1 | grep . && return
  grep -hE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
    sed -E 's/\[[^]]*\]//' | awk '$2 !~ /-security/ {print $2; exit}' | grep .
}
MIRROR=$(mirror) || { echo "debian-fetch: no Debian mirror in the machine's apt sources" >&2; exit 1; }
# The machine's own suite when none is given.
: "${suite:=$(. /etc/os-release && echo "$VERSION_CODENAME")}"

# "all" packages are listed under every architecture; apt needs a real one to read the lists.
list_arch=$arch
[ "$arch" = all ] && list_arch=$(dpkg --print-architecture)

A=$cache/apt/$suite-$list_arch
mkdir -p "$A/lists/partial" "$A/cache/archives/partial"
touch "$A/status"
echo "deb [arch=$list_arch signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR $suite $components" >"$A/sources.list"
O=(-o "APT::Architecture=$list_arch" -o "APT::Architectures::=$list_arch"
   -o "Dir::Etc::SourceList=$A/sources.list" -o Dir::Etc::SourceParts=/nonexistent
   -o "Dir::State::Lists=$A/lists" -o "Dir::Cache=$A/cache" -o "Dir::State::status=$A/status"
   -o Debug::NoLocking=1)
# As root, apt would drop to _apt, which cannot write a cache under root's home.
[ "$(id -u)" = 0 ] && O+=(-o APT::Sandbox::User=root)

fresh_lists() {
  # Lists older than a day are read again.
  if [ -z "$(find "$A/lists" -maxdepth 1 -name '*Packages*' -mmin -1440 -print -quit)" ]; then
    apt-get "${O[@]}" -q update >&2
  fi
}

if [ -n "$depends" ]; then
  fresh_lists
  for p in "$@"; do
    apt-cache "${O[@]}" show --no-all-versions "$p" | sed -n 's/^Depends: //p' | grep . ||
      { echo "debian-fetch: $p has no Depends in $suite/$arch" >&2; exit 1; }
  done
  exit 0
fi

out=$cache/pkgs/$suite-$arch
mkdir -p "$out"
need=()
for p in "$@"; do [ -e "$out/$p/.done" ] || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
  fresh_lists
  dl=$A/download
  mkdir -p "$dl"
  (cd "$dl" && apt-get "${O[@]}" -q download "${need[@]}" >&2)
  for p in "${need[@]}"; do
    deb=$(ls -t "$dl/${p}_"*.deb | head -n1)
    rm -rf "${out:?}/$p"
    mkdir -p "$out/$p"
    dpkg-deb -x "$deb" "$out/$p"
    basename "$deb" >"$out/$p/.done"
    rm -f "$deb"
  done
fi
for p in "$@"; do echo "$out/$p"; done
