#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# demo.sh -- build libsyncmap and run the demo: what the library chooses here
# and why, the guarantee itself (a crash image: plain mmap loses the blocks of
# pages written but not persisted, libsyncmap keeps them), and pmlog
# appending durable records through the library next to write + fdatasync.
# Usage: scripts/demo.sh [FILE]   (default /var/tmp/syncmap-demo.pmlog, recreated)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
log=${1:-/var/tmp/syncmap-demo.pmlog}
secs=${SYNCMAP_DEMO_SECONDS:-4}
bash scripts/deps.sh
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j 2 --target pmlog_cli syncmap_info guarantee >/dev/null
# The default file is the demo's own: start it afresh.  A FILE given is
# appended to (pmlog refuses anything that is not a pmlog log).
[ -n "${1:-}" ] || rm -f "$log" "$log.fsync"

# guarantee_demo: ext4 on a loop device over /dev/shm (a RAM disk with a real
# journal); 'guarantee write' stores into 1024 pages of a plain mapping and
# of a libsyncmap one and persists half of each; while it waits with both
# mappings live, the device is copied (what a power cut would leave); the
# copy is mounted (its journal replayed) and 'guarantee check' counts.
guarantee_demo() {
	local dir img dev out
	if [ "$(id -u)" != 0 ] || ! command -v losetup >/dev/null; then
		echo "skipped: needs root and loop devices"
		return 0
	fi
	dir=$(mktemp -d /dev/shm/syncmap-demo-XXXXXX)
	img=$dir/fs.img
	truncate -s 128M "$img" && mkfs.ext4 -q -F "$img" >/dev/null 2>&1 && mkdir "$dir/live" "$dir/crashed" &&
		dev=$(losetup --find --show "$img") || { echo "skipped: no loop device"; rm -rf "$dir"; return 0; }
	# commit=60: the journal commits only when someone syncs, as a busy
	# filesystem's would between a write and a crash.
	mount -o commit=60 "$dev" "$dir/live"
	mkfifo "$dir/go"
	"$build/examples/guarantee" write "$dir/live" 1024 <"$dir/go" >"$dir/out" &
	exec 9>"$dir/go"
	for _ in $(seq 100); do grep -q ready "$dir/out" && break; sleep 0.1; done
	head -n 1 "$dir/out"
	dd if="$dev" of="$dir/crash.img" bs=1M status=none conv=fsync
	exec 9>&-
	wait
	umount "$dir/live"
	losetup -d "$dev"
	mount -o loop "$dir/crash.img" "$dir/crashed"
	echo "after the crash (the device copied while both programs' mappings were live):"
	"$build/examples/guarantee" check "$dir/crashed" 1024 | sed 's/^/  /'
	umount "$dir/crashed"
	rm -rf "$dir"
	echo "  (persisted pages survive either way; the pages stored but not yet persisted keep"
	echo "   their blocks only under libsyncmap: that allocation is what MAP_SYNC promises)"
}

echo "== where the log lives: syncmap-info $(dirname "$log")"
"$build/tools/syncmap-info" "$(dirname "$log")" | grep -E '^  (filesystem|dax mount|MAP_SYNC|syncmap mode|persist by) '
echo
echo
echo "== the guarantee: a crash image taken while both mappings are live"
guarantee_demo
echo
echo "== pmlog bench: 128-byte records through libsyncmap, each durable before the next"
"$build/examples/pmlog" bench -t "$secs" -s 128 "$log"
echo
echo "== the same with write + fdatasync, for comparison"
"$build/examples/pmlog" bench --fsync -t "$secs" -s 128 "$log.fsync"
[ -n "${1:-}" ] || rm -f "$log" "$log.fsync"
