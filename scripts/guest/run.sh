#!/usr/bin/env bash
# Boot the POWER test guest (scripts/guest/build.sh) under TCG on a pseries machine, console on stdio:
#
#   scripts/guest/run.sh [-a APPEND] [-x QEMU-ARGS] DISK
#                                                  QEMU's own NVMe on the raw image DISK
#   tcefs run -- scripts/guest/run.sh [-a APPEND] [-x QEMU-ARGS] -v BDF
#                                                  the function BDF passed through with vfio-pci
#
# APPEND goes onto the kernel command line (guest_read=, guest_write=, guest_hold=, disable_ddw: see
# ./init); QEMU-ARGS (words split) go to QEMU after the rest. The guest powers itself off; QEMU then
# exits 0. $QEMU is another QEMU command (words split, so it may carry -L FIRMWARE-DIR).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
append= vfio= extra=
while getopts a:v:x: opt; do
  case $opt in
    a) append=$OPTARG ;;
    v) vfio=$OPTARG ;;
    x) extra=$OPTARG ;;
    *) sed -n '2,10s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
eval "$(bash "$here/build.sh" | sed 's/^/export /')"

if [ -n "$vfio" ]; then
  dev=(-device "vfio-pci,host=$vfio")
else
  [ $# -eq 1 ] || { echo "guest: a disk image, or -v BDF" >&2; exit 2; }
  dev=(-drive "file=$1,if=none,format=raw,id=d0" -device nvme,drive=d0,serial=tcefs0)
fi
# QEMU's defaults otherwise, the 1 GiB default DMA window too: Linux clears all of it at boot, which QEMU
# passes on as one VFIO unmap per 4K entry, answered by the shim from the daemon's unmap lease.
# shellcheck disable=SC2086
exec ${QEMU:-qemu-system-ppc64} -M pseries -accel tcg -m 1G -smp 1 -nographic -nodefaults \
  -serial none -monitor none -chardev stdio,id=c0 -device spapr-vty,chardev=c0 \
  -kernel "$KERNEL" -initrd "$INITRD" -append "console=hvc0 $append" "${dev[@]}" $extra
