#!/usr/bin/env bash
# demo.sh -- build libsyncmap and run the demo: the mode a mapping gets and what it costs.
# Usage: scripts/demo.sh [DIR]   (default: a fresh ext4 on a loop device, which needs root)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
bash scripts/deps.sh
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j 2 >/dev/null
exec "$build/bench/faults" -r 3 -v plain,fault-4k,fault,kernel ${1:+-d "$1"}
