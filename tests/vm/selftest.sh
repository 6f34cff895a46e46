#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# selftest.sh -- prove the DAX guest harness works, without libsyncmap.
#
# Usage: tests/vm/selftest.sh CACHE_DIR [PAGES]
#
# 1. setup.sh, then builds guest/mapsync_probe.c (dynamically linked; set
#    SMVM_STATIC=1 for -static) and an initramfs holding it.
# 2. One boot: MAP_SYNC must be accepted on the ext4 and xfs DAX mounts
#    (statx reports DAX) and refused with EOPNOTSUPP on tmpfs and on ext4
#    mounted dax=never.
# 3. Crash pairs, for ext4 and xfs, crashed by sysrq-b inside the guest and by
#    SIGKILL of QEMU from the host (0-300 ms after "ready-to-crash" while the
#    program keeps writing): after the crash every MAP_SYNC page (PAGES, 512)
#    must be intact and every plain MAP_SHARED page lost.  Pages are written
#    by 4 KiB faults; one more pair per filesystem lets 2 MiB DAX faults happen.
# 4. A positive control: sync(1) before the crash, and the plain pages survive.
# Prints one line per check and "N passed, N failed"; exits non-zero on failure.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# -ge 1 ] || { echo "usage: $0 CACHE_DIR [PAGES]" >&2; exit 2; }
mkdir -p "$1"
CACHE=$(cd "$1" && pwd)
PAGES=${2:-512}
WORK=$CACHE/selftest
mkdir -p "$WORK/logs"

"$HERE/setup.sh" "$CACHE"
cflags=(-O2 -Wall -Wextra -Werror)
[ "${SMVM_STATIC:-0}" = 1 ] && cflags+=(-static)
gcc "${cflags[@]}" -o "$WORK/mapsync_probe" "$HERE/guest/mapsync_probe.c"
"$HERE/mkinitramfs.sh" "$CACHE" "$WORK/initramfs.cpio.gz" "$WORK/mapsync_probe"

passed=0 failed=0
check() { # NAME REGEX: pass iff a line of OUT matches REGEX
	if grep -qE -- "$2" <<<"$OUT"; then
		echo "ok   $1"
		passed=$((passed + 1))
	else
		echo "FAIL $1: no line matching /$2/ in:"
		printf '       %s\n' "$OUT"
		failed=$((failed + 1))
	fi
}
# vm NAME VM.SH-ARGS... -- one boot; OUT = its result lines, STATUS_* = status file.
vm() {
	local name=$1 rc=0
	shift
	OUT=$("$HERE/vm.sh" "$CACHE" --initrd "$WORK/initramfs.cpio.gz" --images "$WORK/images" \
		--log "$WORK/logs/$name.log" --status "$WORK/logs/$name.status" "$@") || rc=$?
	if [ "$rc" != 0 ]; then
		echo "FAIL $name: vm.sh exit $rc (log $WORK/logs/$name.log)"
		failed=$((failed + 1))
		return 1
	fi
	BOOT_MS=$(sed -n 's/^boot_ms=//p' "$WORK/logs/$name.status")
	TOTAL_MS=$(sed -n 's/^total_ms=//p' "$WORK/logs/$name.status")
}

echo "== probe: is MAP_SYNC granted where it should be?"
if vm probe --run "
smvm mkfs
mapsync_probe probe /mnt/ext4
mapsync_probe probe /mnt/xfs
mapsync_probe probe /tmp
umount /mnt/ext4
smvm mount-ext4 dax=never
mapsync_probe probe /mnt/ext4"; then
	echo "     boot to program ${BOOT_MS} ms, whole run ${TOTAL_MS} ms"
	check "ext4 dax=always: MAP_SYNC accepted, statx DAX" '^probe dir=/mnt/ext4 statx_dax=1 map_sync=accepted$'
	check "xfs dax=always: MAP_SYNC accepted, statx DAX" '^probe dir=/mnt/xfs statx_dax=1 map_sync=accepted$'
	check "tmpfs: MAP_SYNC refused" '^probe dir=/tmp statx_dax=0 map_sync=refused errno=EOPNOTSUPP\(95\)$'
	check "ext4 dax=never: MAP_SYNC refused" '^probe dir=/mnt/ext4 statx_dax=0 map_sync=refused errno=EOPNOTSUPP\(95\)$'
fi

# pair NAME FS HOW WRITE-FLAGS -- crash while writing, boot again, count pages.
pair() {
	local name=$1 fs=$2 how=$3 flags=$4 t0=$SECONDS
	echo "== crash pair $name: $fs, crash by $how, mapsync_probe write$flags"
	if [ "$how" = sysrq ]; then
		vm "$name-1" --fresh --expect-crash \
			--run "smvm mkfs-$fs; mapsync_probe write /mnt/$fs $PAGES$flags; smvm crash" || return 0
	else
		vm "$name-1" --fresh --kill-on ready-to-crash --kill-delay-ms 0-300 \
			--run "smvm mkfs-$fs; mapsync_probe write /mnt/$fs $PAGES$flags --hold" || return 0
	fi
	echo "     $(grep '^wrote' <<<"$OUT")"
	echo "     $(grep -E '^(outcome|boot_ms|marker_ms|kill_delay_ms)=' "$WORK/logs/$name-1.status" | tr '\n' ' ')"
	vm "$name-2" --reuse --run "smvm mount-$fs; mapsync_probe check /mnt/$fs $PAGES" || return 0
	echo "     $(grep '^survived' <<<"$OUT")"
	echo "     pair took $((SECONDS - t0)) s"
	check "$name: every MAP_SYNC page survived" "^survived dir=/mnt/$fs sync=$PAGES/$PAGES "
	check "$name: every plain MAP_SHARED page lost" "^survived dir=/mnt/$fs .* plain=0/$PAGES "
}

for fs in ext4 xfs; do
	for how in sysrq kill; do
		pair "$fs-$how" "$fs" "$how" ""
	done
	# 2 MiB DAX faults: one synchronous fault allocates a whole PMD.
	pair "$fs-pmd-sysrq" "$fs" sysrq " --pmd"
done
# The control can survive: with a sync(1) before the crash every page of both
# files must come back, on both filesystems.  This shows that the check boot
# reads what was made durable, so "plain=0" above is a real loss.
echo "== crash pair synced: ext4 + xfs, sync(1) before sysrq-b"
t0=$SECONDS
if vm synced-1 --fresh --expect-crash --run "smvm mkfs
mapsync_probe write /mnt/ext4 $PAGES
mapsync_probe write /mnt/xfs $PAGES
sync
smvm crash" && vm synced-2 --reuse --run "smvm mount
mapsync_probe check /mnt/ext4 $PAGES
mapsync_probe check /mnt/xfs $PAGES"; then
	grep '^survived' <<<"$OUT" | sed 's/^/     /'
	echo "     pair took $((SECONDS - t0)) s"
	for fs in ext4 xfs; do
		check "synced/$fs: every page of both files survived" "^survived dir=/mnt/$fs sync=$PAGES/$PAGES plain=$PAGES/$PAGES "
	done
fi

rm -rf "$WORK/images"
echo "selftest: $passed passed, $failed failed"
[ "$failed" = 0 ]
