#!/usr/bin/env bash
# run-suite.sh -- the ctest entry for the DAX guest crash suite.
# Usage: run-suite.sh CACHE_DIR CRASH_BINARY
# SYNCMAP_VM: short (default, 4 cycles), long (104), N cycles, or 0 (skip).
# Exits 77 (skipped) where the guest cannot run: not root, or SYNCMAP_VM=0.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
case ${SYNCMAP_VM:-short} in
0 | off | no) echo "vm: SYNCMAP_VM=${SYNCMAP_VM}: skipped"; exit 77 ;;
short) cycles=4 ;;
long) cycles=104 ;;
*[!0-9]*) echo "vm: SYNCMAP_VM must be short, long, 0 or a number of cycles" >&2; exit 2 ;;
*) cycles=$SYNCMAP_VM ;;
esac
if [ "$(id -u)" != 0 ]; then
	echo "vm: needs root (packages, loop-free NVDIMM images are fine, but mknod and apt are not): skipped"
	exit 77
fi
exec "$HERE/crash-suite.sh" "$1" "$2" "$cycles" ${SYNCMAP_VM_SEED:+"$SYNCMAP_VM_SEED"}
