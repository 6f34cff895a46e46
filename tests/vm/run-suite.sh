#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# run-suite.sh -- the ctest entries for the DAX guest.
# Usage: run-suite.sh CACHE_DIR CRASH_BINARY              (the crash suite)
#        run-suite.sh --functional CACHE_DIR CRASH_BINARY TEST_BINARY...
# SYNCMAP_VM: short (default, 4 cycles), long (104), N cycles, or 0 (skip).
# Exits 77 (skipped) where the guest cannot run: not root, or SYNCMAP_VM=0.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
functional=0
if [ "${1:-}" = --functional ]; then
	functional=1
	shift
fi
case ${SYNCMAP_VM:-short} in
0 | off | no) echo "vm: SYNCMAP_VM=${SYNCMAP_VM}: skipped"; exit 77 ;;
short) cycles=4 ;;
long) cycles=104 ;;
*[!0-9]*) echo "vm: SYNCMAP_VM must be short, long, 0 or a number of cycles" >&2; exit 2 ;;
*) cycles=$SYNCMAP_VM ;;
esac
if [ "$(id -u)" != 0 ]; then
	echo "vm: needs root (apt-get for QEMU, mknod and ldconfig -r for the initramfs): skipped"
	exit 77
fi
if [ "$functional" = 1 ]; then
	exec "$HERE/functional.sh" "$@"
fi
exec "$HERE/crash-suite.sh" "$1" "$2" "$cycles" ${SYNCMAP_VM_SEED:+"$SYNCMAP_VM_SEED"}
