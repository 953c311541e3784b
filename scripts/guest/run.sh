#!/usr/bin/env bash
# Boot the POWER test guest (scripts/guest/build.sh) under TCG on a pseries machine, console on stdio:
#
#   scripts/guest/run.sh [-a APPEND] DISK          QEMU's own NVMe on the raw image DISK
#   tcefs run -- scripts/guest/run.sh [-a APPEND] -v BDF
#                                                  the function BDF passed through with vfio-pci
#
# APPEND goes onto the kernel command line (guest_read=, guest_write=, guest_hold=, disable_ddw: see
# ./init). The guest powers itself off; QEMU then exits 0. $QEMU is another QEMU command (words split,
# so it may carry -L FIRMWARE-DIR).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
append= vfio=
while getopts a:v: opt; do
  case $opt in
    a) append=$OPTARG ;;
    v) vfio=$OPTARG ;;
    *) sed -n '2,9s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
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
# QEMU tells the IOMMU of every entry the guest clears in its default DMA window, and Linux clears it all
# at boot: 32 MiB (8192 entries) instead of the default 1 GiB keeps that from dominating the boot.
exec ${QEMU:-qemu-system-ppc64} -M pseries -accel tcg -m 1G -smp 1 -nographic -nodefaults \
  -serial none -monitor none -chardev stdio,id=c0 -device spapr-vty,chardev=c0 \
  -global spapr-pci-host-bridge.dma_win_size=0x2000000 \
  -kernel "$KERNEL" -initrd "$INITRD" -append "console=hvc0 $append" "${dev[@]}"
