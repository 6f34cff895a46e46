#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# policy.sh -- what the shim takes and leaves, SYNCMAP_PRELOAD=0, SYNCMAP_PRELOAD_PATHS (with a bad entry)
set -euo pipefail
. "$(dirname "$0")/common.sh" "$@"
err=$MNT/stderr

under_shim "$BIN/pl_policy" "$MNT" default 2>"$err" || { cat "$err"; fail "default"; }
cat "$err"
grep -q "a mapping left without the guarantee (Too many open files)" "$err" || fail "no warning for the plain mapping"
[ "$(counter maps_unguarded "$err")" = 1 ] || fail "maps_unguarded is not 1"

SYNCMAP_PRELOAD=0 under_shim "$BIN/pl_policy" "$MNT" off 2>"$err"
cat "$err"
if grep -q libsyncmap "$err"; then
	fail "SYNCMAP_PRELOAD=0 still started the library"
fi

mkdir "$MNT/in" "$MNT/in-not"
ln -s in "$MNT/link"
SYNCMAP_PRELOAD_PATHS="$MNT/in:/no/such/dir" under_shim "$BIN/pl_policy" "$MNT" paths 2>"$err"
cat "$err"
grep -q "ignoring SYNCMAP_PRELOAD_PATHS entry=/no/such/dir" "$err" || fail "no warning for a bad path entry"
echo "policy: ok"
