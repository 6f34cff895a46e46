#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench_read.sh -- the cost of read(2) with and without the shim, 5 alternating runs, medians
# Usage: bench_read.sh SHIM BINDIR [READS]
set -euo pipefail
. "$(dirname "$0")/common.sh" "$@"
reads=${3:-1000000}
# Four configurations: no shim; no shim with an idle second thread (what
# the shim's engine thread costs libc's read by itself); the shim; the
# shim without its engine thread (SYNCMAP_PRESYNC=0).
for run in 1 2 3 4 5; do
	"$BIN/pl_readcost" "$MNT" "$reads" | sed 's/^/plain|/'
	"$BIN/pl_readcost" "$MNT" "$reads" thread | sed 's/^/thread|/'
	LD_PRELOAD=$SHIM "$BIN/pl_readcost" "$MNT" "$reads" | sed 's/^/shim|/'
	SYNCMAP_PRESYNC=0 LD_PRELOAD=$SHIM "$BIN/pl_readcost" "$MNT" "$reads" | sed 's/^/nopresync|/'
done >"$MNT/runs"
grep -q '^shim|.*mode of the file mapping: 2' "$MNT/runs" || fail "the shim did not take the mapping"
echo "read(fd, buf, 64) from /dev/zero, median of 5 runs of $reads reads (ns per call):"
awk -F'|' '/ ns$/ {
	name = substr($2, 3, 44); sub(/ +$/, "", name); v = $2; sub(/ ns$/, "", v); sub(/.* /, "", v)
	key = $1 SUBSEP name; vals[key] = vals[key] " " v
	if (!(name in seen)) { seen[name] = 1; order[++n] = name }
}
function median(s,   a, k, i, j, t) {
	k = split(s, a, " ")
	for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
	return a[int((k + 1) / 2)]
}
END {
	printf "  %-44s %8s %8s %8s %8s\n", "buffer", "plain", "+thread", "shim", "shim,PRESYNC=0"
	for (i = 1; i <= n; i++)
		printf "  %-44s %8.1f %8.1f %8.1f %8.1f\n", order[i], median(vals["plain" SUBSEP order[i]]),
			median(vals["thread" SUBSEP order[i]]), median(vals["shim" SUBSEP order[i]]),
			median(vals["nopresync" SUBSEP order[i]])
}' "$MNT/runs"
