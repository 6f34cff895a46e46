#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# early.sh -- the start of a process: a constructor that maps before or after the shim's, and a malloc
# that calls mmap while the shim resolves its functions (dlsym, realpath, atexit)
set -euo pipefail
. "$(dirname "$0")/common.sh" "$@"
err=$MNT/stderr
orders=""
for preload in "$SHIM:$BIN/libpl_early.so" "$BIN/libpl_early.so:$SHIM"; do
	echo "LD_PRELOAD=${preload//$BIN\//}"
	PL_EARLY_FILE=$MNT/early.dat LD_PRELOAD=$preload SYNCMAP_STATS=1 "$BIN/pl_early" "$MNT" early >"$MNT/out" 2>"$err" ||
		{ cat "$MNT/out" "$err"; fail "pl_early with LD_PRELOAD=$preload"; }
	cat "$MNT/out" "$err"
	orders="$orders $(awk '/early constructor ran/ { print $4 }' "$MNT/out")"
done
# One of the two orders must have mapped before the shim's constructor ran,
# or the path this test is for was not taken.
case "$orders" in
*before*) ;;
*) fail "in neither order did the early constructor run before the shim's:$orders" ;;
esac

# SYNCMAP_PRELOAD_PATHS makes the shim's start allocate (strdup, realpath).
echo "LD_PRELOAD=libpl_alloc.so:shim"
SYNCMAP_PRELOAD_PATHS=$MNT LD_PRELOAD="$BIN/libpl_alloc.so:$SHIM" SYNCMAP_STATS=1 \
	timeout 30 "$BIN/pl_early" "$MNT" alloc 2>"$err" || { cat "$err"; fail "pl_early over libpl_alloc"; }
cat "$err"
grep -q "pl_alloc: [1-9]" "$err" || fail "libpl_alloc was not used"
for prog in "ls $MNT" "/bin/sh -c true" "/usr/bin/python3 -c pass"; do
	SYNCMAP_PRELOAD_PATHS=$MNT LD_PRELOAD="$BIN/libpl_alloc.so:$SHIM" timeout 30 $prog >/dev/null 2>"$err" ||
		{ cat "$err"; fail "$prog over libpl_alloc"; }
done
echo "  ls, sh, python3 run over libpl_alloc + the shim"
echo "early: ok"
