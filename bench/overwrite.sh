#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# overwrite.sh -- after the first write, does store + persist cost what it costs on a plain mapping?
#
# Usage: bench/overwrite.sh [BUILD_DIR] [RUNS] [SIZE]     (defaults: build, 15, 4096)
#
# One `append -O -m syncmap,msync` run measures both on the same machine a
# moment apart: the overwrite pass of a syncmap mapping (syncmap_persist)
# and of a plain mapping (msync), over files already written.  One run is
# not enough on a shared machine, so this repeats it RUNS times, every other
# one with -R (msync first), and prints each run's throughput ratio, then the
# median and the middle half of the ratios.  Runs on the host's loop ext4.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
runs=${2:-15}
size=${3:-4096}
ratios=()
echo "# $(date -u +%FT%TZ) on $(uname -n): $(nproc) CPUs, kernel $(uname -r)"
echo "# $runs x: $build/bench/append -n 4000 -s $size -T 1 -m syncmap,msync -O, every other one with -R"
for ((i = 0; i < runs; i++)); do
	first=syncmap rev=()
	((i % 2)) && first=msync rev=(-R)
	out=$("$build/bench/append" -n 4000 -s "$size" -T 1 -m syncmap,msync -O "${rev[@]}")
	s=$(awk '$1 == "syncmap" && $2 == "overwrite" { print $6 }' <<<"$out")
	m=$(awk '$1 == "msync" && $2 == "overwrite" { print $6 }' <<<"$out")
	[[ $s =~ ^[0-9]+$ && $m =~ ^[0-9]+$ && $m != 0 ]] ||
		{ echo "overwrite.sh: no numeric overwrite rows in:"; echo "$out"; exit 1; } >&2
	r=$(awk -v s="$s" -v m="$m" 'BEGIN { printf "%.3f", s / m }')
	ratios+=("$r")
	printf 'run %2d (%s first): syncmap %s records/s, msync %s records/s, ratio %s\n' "$((i + 1))" \
		"$first" "$s" "$m" "$r"
done
printf '%s\n' "${ratios[@]}" | sort -n | awk '
	{ v[NR] = $1 }
	END {
		q1 = v[int((NR + 3) / 4)]; med = v[int((NR + 1) / 2)]; q3 = v[int((3 * NR + 3) / 4)]
		printf "syncmap / msync records/s over %d runs: median %.3f, middle half %.3f .. %.3f, all %.3f .. %.3f\n",
			NR, med, q1, q3, v[1], v[NR]
	}'
