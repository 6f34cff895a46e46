#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# functional.sh -- the library's Criterion tests inside the DAX guest.
#
# Usage: tests/vm/functional.sh CACHE_DIR CRASH_BINARY TEST_BINARY...
#
# One boot.  On ext4 and on xfs (dax=always) every test binary runs twice:
# with SYNCMAP_MODE=auto, where the kernel grants MAP_SYNC (KERNEL mode), and
# with SYNCMAP_MODE=fault (FAULT mode forced on DAX).  SYNCMAP_TEST_DIR points
# the tests at the DAX mount; tests of FAULT-only behaviour skip in KERNEL
# mode and tests that need a loop filesystem of their own skip everywhere
# here (they run on the host).  The run fails on any failing or crashing
# test, or if a mode ran no test at all.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# -ge 3 ] || { echo "usage: $0 CACHE_DIR CRASH_BINARY TEST_BINARY..." >&2; exit 2; }
mkdir -p "$1"
CACHE=$(cd "$1" && pwd)
shift
WORK=$CACHE/functional
mkdir -p "$WORK"

"$HERE/setup.sh" "$CACHE" >/dev/null
"$HERE/mkinitramfs.sh" "$CACHE" "$WORK/initramfs.cpio.gz" "$@" >/dev/null

tests=""
for t in "${@:2}"; do tests="$tests $(basename "$t")"; done
# Criterion's runner keeps its arena in POSIX shared memory: /dev/shm.
script="smvm mkfs
mkdir -p /dev/shm && mount -t tmpfs tmpfs /dev/shm
for fs in ext4 xfs; do
	for mode in auto fault; do
		dir=/mnt/\$fs/t-\$mode
		mkdir -p \$dir
		for t in$tests; do
			SYNCMAP_TEST_DIR=\$dir SYNCMAP_MODE=\$mode \$t --verbose --jobs 1 >/tmp/out 2>&1 || true
			grep -E '^\\[(PASS|FAIL|SKIP)\\]|Crashing: [1-9]|Failing: [1-9]|^\\[----\\] +[^ C]' /tmp/out | sed \"s/^/SMVM: \$fs \$mode /\"
			grep -q Synthesis /tmp/out || { echo \"SMVM: \$fs \$mode \$t: no synthesis\"; tail -n 5 /tmp/out; }
		done
	done
done
crash info /mnt/ext4 || true
SYNCMAP_MODE=fault crash info /mnt/xfs || true"

OUT=$("$HERE/vm.sh" "$CACHE" --initrd "$WORK/initramfs.cpio.gz" --images "$WORK/images" --fresh \
	--log "$WORK/serial.log" --status "$WORK/status" --timeout 1800 --run "$script") || {
	echo "functional: the guest run failed (log $WORK/serial.log)"
	exit 1
}
failed=0
for fs in ext4 xfs; do
	for mode in auto fault; do
		lines=$(grep -E "^$fs $mode " <<<"$OUT" || true)
		pass=$(grep -c '\[PASS\]' <<<"$lines" || true)
		fail=$(grep -cE '\[FAIL\]|Crashing: [1-9]|Failing: [1-9]|no synthesis' <<<"$lines" || true)
		skip=$(grep -c '\[SKIP\]' <<<"$lines" || true)
		printf 'functional %-4s %-5s passed %3s  failed %s  skipped %s\n' "$fs" "$mode" "$pass" "$fail" "$skip"
		grep -E '\[FAIL\]|no synthesis|\[----\]' <<<"$lines" | sed 's/^/  /' || true
		if [ "$fail" != 0 ] || [ "$pass" = 0 ]; then
			failed=$((failed + 1))
		fi
	done
done
grep -E '^info ' <<<"$OUT" | sed 's/^/functional /' || true
# Which guest this was: the kernel setup.sh resolved (Debian moves it on) and QEMU.
# shellcheck source=/dev/null
. "$CACHE/kernel.env"
echo "functional: guest kernel $SMVM_KVER, $(qemu-system-x86_64 --version | head -n 1)"
echo "functional: $failed failure(s)"
[ "$failed" = 0 ]
