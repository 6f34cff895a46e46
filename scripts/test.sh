#!/usr/bin/env bash
# test.sh -- build libsyncmap and run the whole test suite (ctest's summary last).
#
# On a fresh Debian 12 machine it installs what is missing first (as root).
# Tests that need root, a loop device or DAX report "skipped" where the
# machine lacks them, never "passed".
#
# Environment:
#   BUILD_DIR=build        where to build
#   SYNCMAP_TEST_JOBS=2    ctest parallelism
#   SYNCMAP_VM=short|long|0  the DAX guest crash suite (default: short)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
jobs=${SYNCMAP_TEST_JOBS:-2}

bash scripts/deps.sh
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSYNCMAP_WERROR=ON >/dev/null
cmake --build "$build" -j "$jobs"
cd "$build"
ctest --output-on-failure -j "$jobs" --timeout 900
