#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tchmgr.sh -- Tokyo Cabinet's tchmgr under the shim: its hash database is written through a shared mapping
set -euo pipefail
. "$(dirname "$0")/common.sh" "$@"
command -v tchmgr >/dev/null || skip "no tchmgr (tokyocabinet-bin)"
N=20000
db=$MNT/casket.tch
err=$MNT/stderr

# Records of 10 to 400 bytes, fixed by their number.
awk -v n=$N 'BEGIN { for (i = 0; i < n; i++) { v = ""; for (j = 0; j < 10 + (i * 37) % 391; j++) v = v sprintf("%c", 97 + (i + j) % 26); printf "key%06d\t%s\n", i, v } }' >"$MNT/in.tsv"

# A bucket array of 4096: records land across the whole file, all inside
# the mapped region (tchmgr maps the first 64 MiB), some far apart.
under_shim tchmgr create "$db" 4096 2>"$err"
under_shim tchmgr importtsv "$db" "$MNT/in.tsv" 2>"$err" || { cat "$err"; fail "importtsv"; }
grep libsyncmap "$err" | sed 's/^/    /'
[ "$(counter maps_fault "$err")" -ge 1 ] || fail "no FAULT-mode mapping counted"
[ "$(counter faults "$err")" -ge 1 ] || fail "no FAULT-mode fault counted"

# A few more one at a time, a delete, an overwrite.
under_shim tchmgr put "$db" extra-key extra-value 2>"$err"
under_shim tchmgr out "$db" key000007 2>"$err"
under_shim tchmgr put "$db" key000008 overwritten 2>"$err"
awk -F '\t' 'BEGIN { OFS = "\t" } $1 == "key000007" { next } $1 == "key000008" { $2 = "overwritten" } { print }
	END { print "extra-key", "extra-value" }' "$MNT/in.tsv" | sort >"$MNT/want"

under_shim tchmgr list -pv "$db" 2>"$err" | sort >"$MNT/got"
cmp "$MNT/want" "$MNT/got" || fail "tchmgr list differs from what was put ($(wc -l <"$MNT/got") lines)"
[ "$(under_shim tchmgr get "$db" key012345 2>/dev/null)" = "$(awk -F '\t' '$1 == "key012345" { print $2 }' "$MNT/in.tsv")" ] ||
	fail "tchmgr get key012345"
records=$(under_shim tchmgr inform "$db" 2>/dev/null | awk '/record number:/ { print $3 }')
echo "  $records records read back with tchmgr list/get/inform, all as put"
[ "$records" = "$N" ] || fail "inform: $records records, want $N"
echo "tchmgr: ok"
