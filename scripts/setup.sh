#!/usr/bin/env bash
# Make this machine able to run tcefs and its tests; quick and silent when everything is already there.
# Installs from Debian: libfuse2 (fuse-native's prebuilt binding loads libfuse.so.2), fuse (fusermount),
# gcc (the C client library and C tests), strace (a test watches the shim's prctl), qemu-system-ppc (a real
# VFIO client), cpio (the POWER guest's initramfs), libcap-dev (the
# kernel's iommufd selftests link -lcap), pciutils (lspci) and dpdk (its EAL bus scan), real
# clients of the emulated sysfs; from npm: the locked dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
# grep reads the whole list: with pipefail, an early exit (-q) can kill ldconfig with SIGPIPE and fail the test.
ldconfig -p 2>/dev/null | grep 'libfuse\.so\.2 ' >/dev/null || need+=(libfuse2)
command -v fusermount >/dev/null 2>&1 || need+=(fuse)
command -v gcc >/dev/null 2>&1 || need+=(gcc libc6-dev)
command -v strace >/dev/null 2>&1 || need+=(strace)
command -v qemu-system-ppc64 >/dev/null 2>&1 || need+=(qemu-system-ppc)
command -v lspci >/dev/null 2>&1 || need+=(pciutils)
# dpdk 22.11 only recommends its libraries, and recommends are not installed here: name them (EAL, its
# PCI bus, and the ConnectX-5 driver EAL loads from its plugin directory to match the emulated NICs).
[ -e /usr/lib/x86_64-linux-gnu/librte_bus_pci.so.23 ] && [ -e /usr/lib/x86_64-linux-gnu/librte_net_mlx5.so.23 ] ||
  need+=(dpdk librte-eal23 librte-bus-pci23 librte-net-mlx5-23)
command -v cpio >/dev/null 2>&1 || need+=(cpio)
[ -e /usr/include/sys/capability.h ] || need+=(libcap-dev)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq >&2
  # Another apt run (a parallel setup) holds the lock for a while; wait for it rather than fail.
  $sudo apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 "${need[@]}" >&2
fi
[ -e /dev/fuse ] || { echo "setup: /dev/fuse is missing; tcefs needs FUSE" >&2; exit 1; }

if [ ! -d node_modules/fuse-native ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm dependencies" >&2
  npm ci --no-audit --no-fund >&2
fi

# The C library and the preload shim (a quick no-op when build/ is current).
bash scripts/build-c.sh
