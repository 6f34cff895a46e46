#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# lmdb.sh -- LMDB under the shim: our MDB_WRITEMAP program, then the stock mdb_stat, mdb_dump and mdb_load
set -euo pipefail
. "$(dirname "$0")/common.sh" "$@"
[ -x "$BIN/pl_lmdb" ] || skip "pl_lmdb not built (no liblmdb-dev)"
for tool in mdb_stat mdb_dump mdb_load; do
	command -v "$tool" >/dev/null || skip "no $tool (lmdb-utils)"
done
N=20000
want=$((N - (N + 6) / 7)) # every 7th record deleted
err=$MNT/stderr
mkdir "$MNT/db" "$MNT/db2"

show() { # the counters of the last run, for the log
	grep libsyncmap "$err" | sed 's/^/    /' || true
}

under_shim "$BIN/pl_lmdb" write "$MNT/db" $N 2>"$err" || { cat "$err"; fail "pl_lmdb write"; }
show
[ "$(counter maps_fault "$err")" -ge 1 ] || fail "no FAULT-mode mapping counted"
[ "$(counter faults "$err")" -ge 1 ] || fail "no FAULT-mode fault counted"

under_shim "$BIN/pl_lmdb" verify "$MNT/db" $N 2>"$err" || { cat "$err"; fail "pl_lmdb verify"; }
show

under_shim mdb_stat "$MNT/db" >"$MNT/stat" 2>"$err"
entries=$(awk '/Entries:/ {print $2}' "$MNT/stat")
echo "  mdb_stat: Entries: $entries"
[ "$entries" = "$want" ] || fail "mdb_stat says $entries entries, want $want"

under_shim mdb_dump "$MNT/db" >"$MNT/dump1" 2>"$err"
under_shim mdb_load -f "$MNT/dump1" "$MNT/db2" 2>"$err"
show
under_shim mdb_dump "$MNT/db2" >"$MNT/dump2" 2>"$err"
cmp "$MNT/dump1" "$MNT/dump2" || fail "mdb_dump of the mdb_load copy differs"
echo "  mdb_dump -> mdb_load -> mdb_dump: identical ($(wc -l <"$MNT/dump1") lines)"
under_shim "$BIN/pl_lmdb" verify "$MNT/db2" $N ro 2>"$err" || { cat "$err"; fail "verify the copy"; }
echo "lmdb: ok"
