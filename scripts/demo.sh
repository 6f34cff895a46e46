#!/usr/bin/env bash
# demo.sh -- build libsyncmap and run the demo: pmlog appends durable records
# through the library, and prints the mode it got and what it measured.
# Usage: scripts/demo.sh [FILE]   (default /var/tmp/syncmap-demo.pmlog, recreated)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
log=${1:-/var/tmp/syncmap-demo.pmlog}
secs=${SYNCMAP_DEMO_SECONDS:-4}
bash scripts/deps.sh
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j 2 --target pmlog_cli syncmap_info >/dev/null
# The default file is the demo's own: start it afresh.  A FILE given is
# appended to (pmlog refuses anything that is not a pmlog log).
[ -n "${1:-}" ] || rm -f "$log" "$log.fsync"
echo "== where the log lives: syncmap-info $(dirname "$log")"
"$build/tools/syncmap-info" "$(dirname "$log")" | grep -E '^  (filesystem|dax mount|MAP_SYNC|syncmap mode|persist by) '
echo
echo "== pmlog bench: 128-byte records through libsyncmap, each durable before the next"
"$build/examples/pmlog" bench -t "$secs" -s 128 "$log"
echo
echo "== the same with write + fdatasync, for comparison"
"$build/examples/pmlog" bench --fsync -t "$secs" -s 128 "$log.fsync"
[ -n "${1:-}" ] || rm -f "$log" "$log.fsync"
