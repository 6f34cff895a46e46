#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# plot.sh -- PNG plots of the first-write latency histograms in a results directory.
#
# Usage: bench/plot.sh DIR
# For each result file holding `faults -H` histograms (host-faults-seq.txt,
# guest-ext4.txt, guest-xfs.txt and their -smp2 twins), one PNG per file state (empty,
# preallocated) without load: the power-of-two latency buckets of every
# variant side by side, as clustered bars (log scale).
set -euo pipefail
dir=${1:?usage: plot.sh DIR}
command -v gnuplot >/dev/null || { echo "plot.sh: gnuplot not installed (apt-get install gnuplot-nox)" >&2; exit 1; }

for f in "$dir"/host-faults-seq.txt "$dir"/guest-ext4.txt "$dir"/guest-xfs.txt "$dir"/guest-ext4-smp2.txt \
	"$dir"/guest-xfs-smp2.txt; do
	[ -f "$f" ] || continue
	base=$(basename "$f" .txt)
	for state in empty preallocated; do
		dat="$dir/$base-$state.dat"
		# Rows: bucket low bound; columns: one per variant, in order of appearance.
		awk -v state="$state" '
			/^ *[a-z0-9-]+, (empty|preallocated) file, load none:$/ {
				v = $1; sub(/,$/, "", v)
				cur = (index($0, state " file") ? v : "")
				if (cur != "" && !(cur in seen)) { seen[cur] = 1; order[++nv] = cur }
				next
			}
			/^ *[a-z0-9-]+, / { cur = ""; next }
			cur != "" && /us: [0-9]+$/ {
				lo = $1 + 0; n = $NF + 0
				count[cur, lo] = n; if (!(lo in lows)) { lows[lo] = 1; nl++; lowv[nl] = lo }
			}
			END {
				if (nv == 0) exit 1
				printf "bucket"; for (i = 1; i <= nv; i++) printf " %s", order[i]; printf "\n"
				n = nl  # insertion sort: mawk has no asort()
				for (a = 2; a <= n; a++)
					for (b = a; b > 1 && lowv[b - 1] > lowv[b]; b--) { t = lowv[b]; lowv[b] = lowv[b - 1]; lowv[b - 1] = t }
				for (j = 1; j <= n; j++) {
					lo = lowv[j]; hi = (lo == 0 ? 1 : 2 * lo - 1)
					printf "%d-%d", lo, hi
					for (i = 1; i <= nv; i++) printf " %d", count[order[i], lo] + 0
					printf "\n"
				}
			}' "$f" >"$dat" || { rm -f "$dat"; continue; }
		ncol=$(head -n 1 "$dat" | wc -w)
		gnuplot <<EOF
set terminal pngcairo size 1100,520 font ",10"
set output "$dir/$base-$state.png"
set title "First-write latency, $state file, no load ($base)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set logscale y
set yrange [0.8:*]
set ylabel "writes"
set xlabel "latency bucket (microseconds)"
set xtics rotate by -45
set key top right
plot for [c=2:$ncol] "$dat" using c:xtic(1) title columnheader(c)
EOF
		echo "plot.sh: $dir/$base-$state.png"
	done
done
