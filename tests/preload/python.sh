#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# python.sh -- Python's mmap module under the shim: FAULT-mode faults counted, blocks allocated, data verified
set -euo pipefail
. "$(dirname "$0")/common.sh" "$@"
SRC=$(dirname "$(readlink -f "$0")")
# Debian's interpreter, not whatever a version manager puts first on PATH.
PY=/usr/bin/python3
[ -x "$PY" ] || skip "no /usr/bin/python3"
err=$MNT/stderr

under_shim "$PY" "$SRC/py_mmap.py" "$MNT" 2>"$err" || { cat "$err"; fail "py_mmap.py under the shim"; }
cat "$err"
maps=$(counter maps_fault "$err")
faults=$(counter faults "$err")
[ "${maps:-0}" -ge 1 ] || fail "no FAULT-mode mapping counted"
[ "${faults:-0}" -ge 1 ] || fail "no FAULT-mode fault counted"
echo "  counters: maps_fault=$maps faults=$faults"

echo "control, without the shim:"
"$PY" "$SRC/py_mmap.py" "$MNT" --control
echo "python: ok"
