#!/usr/bin/env bash
# Build the POWER test guest: Debian's ppc64el kernel and an initramfs of busybox-static, the NVMe modules
# and ./init. Both come from scripts/debian-fetch.sh (private apt config) and are cached; a second run only
# prints the paths:
#
#   scripts/guest/build.sh     -> KERNEL=<path of vmlinux>  INITRD=<path of initramfs.cpio.gz>
#
# The kernel is the one bookworm's linux-image-powerpc64le depends on (asked again once a day; old
# kernels leave the suite); TCEFS_GUEST_KVER=6.1.0-NN picks one.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${TCEFS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tcefs}
fetch() { bash "$here/../debian-fetch.sh" -a ppc64el -s bookworm -d "$cache" "$@"; }

current=$cache/guest/kernel
if [ -n "${TCEFS_GUEST_KVER:-}" ]; then
  kver=$TCEFS_GUEST_KVER-powerpc64le
else
  if [ -z "$(find "$current" -mmin -1440 2>/dev/null)" ]; then
    k=$(fetch -D linux-image-powerpc64le | grep -o 'linux-image-[0-9][^ ,]*-powerpc64le' | head -n1) || k=
    if [ -n "$k" ]; then
      mkdir -p "$(dirname "$current")"
      echo "${k#linux-image-}" >"$current"
    fi
  fi
  [ -s "$current" ] || { echo "guest: cannot tell bookworm's current ppc64el kernel" >&2; exit 1; }
  kver=$(cat "$current")
fi
kpkg=linux-image-$kver

out=$cache/guest/$kver
# Named by what goes into it: checkouts with different inits share the cache without rebuilding over
# each other's image.
initrd=$out/initramfs-$(cat "$here/init" "$0" | sha256sum | cut -c1-12).cpio.gz
if [ ! -e "$initrd" ]; then
  command -v cpio >/dev/null || { echo "guest: cpio is missing (scripts/setup.sh installs it)" >&2; exit 1; }
  pkgs=$(fetch "$kpkg" busybox-static)
  kdir=$(sed -n 1p <<<"$pkgs")
  bdir=$(sed -n 2p <<<"$pkgs")
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  mkdir -p "$root"/{bin,sbin,lib/modules,proc,sys,dev,tmp}
  cp "$bdir/bin/busybox" "$root/bin/busybox"
  # nvme and what it needs, flat: the init loads them by name in dependency order.
  for m in crct10dif_common crct10dif_generic crc-t10dif crc64 crc64_rocksoft_generic crc64-rocksoft \
           t10-pi nvme-core nvme; do
    f=$(find "$kdir/lib/modules" -name "$m.ko" | head -n1)
    [ -n "$f" ] || { echo "guest: $m.ko is not in $kpkg" >&2; exit 1; }
    cp "$f" "$root/lib/modules/"
  done
  # For guest_nic: a PCnet (pcnet32) driver, whose 32-bit DMA mask keeps it in the default window.
  for m in mii pcnet32; do
    f=$(find "$kdir/lib/modules" -name "$m.ko" | head -n1)
    [ -n "$f" ] || { echo "guest: $m.ko is not in $kpkg" >&2; exit 1; }
    cp "$f" "$root/lib/modules/"
  done
  cp "$here/init" "$root/init"
  mkdir -p "$out"
  ln -sf "$kdir/boot/vmlinux-$kver" "$out/vmlinux"
  (cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$initrd.tmp"
  mv "$initrd.tmp" "$initrd"
fi
echo "KERNEL=$out/vmlinux"
echo "INITRD=$initrd"
