#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench_lmdb.sh -- the same LMDB MDB_WRITEMAP write workload with and without the shim, in one run
# Usage: bench_lmdb.sh SHIM BINDIR [TXNS PUTS SIZE RUNS]
# Each run starts from an empty environment; runs alternate plain/shim; the
# medians and their ratio are printed.  Every run's result is checked with
# mdb_stat (all TXNS*PUTS records there).
set -euo pipefail
. "$(dirname "$0")/common.sh" "$@"
[ -x "$BIN/pl_lmdb" ] || skip "pl_lmdb not built (no liblmdb-dev)"
command -v mdb_stat >/dev/null || skip "no mdb_stat (lmdb-utils)"
txns=${3:-2000} puts=${4:-10} size=${5:-256} runs=${6:-5}

one() { # one [LD_PRELOAD value]: prints us/commit
	rm -rf "$MNT/db" && mkdir "$MNT/db"
	local out
	out=$(LD_PRELOAD=${1:-} "$BIN/pl_lmdb" bench "$MNT/db" "$txns" "$puts" "$size")
	local entries
	entries=$(mdb_stat "$MNT/db" | awk '/Entries:/ { print $2 }')
	[ "$entries" = $((txns * puts)) ] || fail "run ${1:+with the shim}: $entries entries, want $((txns * puts))"
	echo "$out" | awk '{ for (i = 1; i <= NF; i++) if ($i == "us/commit,") print $(i - 1) }'
}

plain="" shim=""
for r in $(seq "$runs"); do
	plain="$plain $(one)"
	shim="$shim $(one "$SHIM")"
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
p=$(echo "$plain" | median)
s=$(echo "$shim" | median)
echo "LMDB MDB_WRITEMAP, $txns durable commits of $puts puts x $size B, ext4 on a loop device over RAM"
echo "  plain:      $p us/commit   (runs:$plain)"
echo "  with shim:  $s us/commit   (runs:$shim)"
awk -v p="$p" -v s="$s" 'BEGIN { printf "  ratio shim/plain: %.2f\n", s / p }'
