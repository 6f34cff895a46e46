#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# run-suite.sh -- the ctest entries for the DAX guest.
# Usage: run-suite.sh CACHE_DIR CRASH_BINARY CRASH_TP_BINARY   (the crash suite)
#        run-suite.sh --functional CACHE_DIR CRASH_BINARY TEST_BINARY...
#        run-suite.sh --apps CACHE_DIR BUILD_DIR   (pmlog, logd, LMDB: apps-suite.sh)
#        run-suite.sh --failing-device CACHE_DIR FAILDEV [FAILDEV-MUTANT...]
# SYNCMAP_VM: short (default: two rounds, i.e. every storage kind on ext4 and
# on xfs with the library's defaults, the second round crashing FAULT kinds
# at their first grain touch), long (312 cycles, in one guest per core:
# CRASH_LANES), N cycles, or 0 (skip).  For --apps: short is 6 cycles (pmlog
# on DAX, logd on page cache and virtio-pmem, LMDB on DAX FAULT and page
# cache), long 48 (every application on every storage kind four times).
# SYNCMAP_VM_SEED: the seed (default: the time).
# Exits 77 (skipped) where the guest cannot run: not root, or SYNCMAP_VM=0;
# with CI=true a skip is a failure (exit 1): CI machines are root, and a
# durability test that did not run must not look like one that passed.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
functional=0 apps=0 faildev=0
case ${1:-} in
--functional) functional=1; shift ;;
--apps) apps=1; shift ;;
--failing-device) faildev=1; shift ;;
esac
skip() {
	if [ "${CI:-}" = true ]; then
		echo "vm: $*: CI=true, so this is a failure, not a skip"
		exit 1
	fi
	echo "vm: $*: skipped"
	exit 77
}
kinds=4 # crash-suite.sh's storage kinds
case ${SYNCMAP_VM:-short} in
0 | off | no) skip "SYNCMAP_VM=${SYNCMAP_VM}" ;;
short) cycles=$((2 * kinds)) ;;
long)
	cycles=312
	[ "$apps" = 0 ] || cycles=48
	export CRASH_LANES=${CRASH_LANES:-$(nproc)} # one single-vCPU guest per core
	;;
*[!0-9]*) echo "vm: SYNCMAP_VM must be short, long, 0 or a number of cycles" >&2; exit 2 ;;
*) cycles=$SYNCMAP_VM ;;
esac
if [ "$(id -u)" != 0 ]; then
	skip "needs root (apt-get for QEMU, mknod and ldconfig -r for the initramfs)"
fi
if [ "$functional" = 1 ]; then
	exec "$HERE/functional.sh" "$@"
fi
if [ "$apps" = 1 ]; then
	[ $# = 2 ] || { echo "usage: $0 --apps CACHE_DIR BUILD_DIR" >&2; exit 2; }
	[ "${SYNCMAP_VM:-short}" = short ] && cycles=6
	exec "$HERE/apps-suite.sh" "$1" "$2" "$cycles" ${SYNCMAP_VM_SEED:+"$SYNCMAP_VM_SEED"}
fi
if [ "$faildev" = 1 ]; then
	exec "$HERE/faildev.sh" "$@"
fi
[ $# = 3 ] || { echo "usage: $0 CACHE_DIR CRASH_BINARY CRASH_TP_BINARY" >&2; exit 2; }
CRASH_TP=$3 exec "$HERE/crash-suite.sh" "$1" "$2" "$cycles" ${SYNCMAP_VM_SEED:+"$SYNCMAP_VM_SEED"}
