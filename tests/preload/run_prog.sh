#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# run_prog.sh -- run one test program under the shim on a fresh loop-mounted ext4: run_prog.sh SHIM BINDIR PROG [ARGS]
set -euo pipefail
. "$(dirname "$0")/common.sh" "$@"
prog=$3
shift 3
under_shim "$BIN/$prog" "$MNT" "$@"
