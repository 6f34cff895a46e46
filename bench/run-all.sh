#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# run-all.sh -- every benchmark, on the host and in the DAX guest; results and plots into OUT.
#
# Usage: bench/run-all.sh [BUILD_DIR] [OUT_DIR]     (defaults: build, docs/results)
#
# Host: ext4 on a loop device over /dev/shm (page cache, MAP_SYNC refused:
# FAULT mode).  Guest: ext4 and xfs with dax=always on an emulated NVDIMM
# (QEMU TCG, tests/vm), where the kernel grants MAP_SYNC, so the KERNEL rows
# exist and every row of a table comes from one run.  Needs root.
#
# First the tables as users run them (*-users-*.txt: mappings without hints,
# every variant repeated in rounds of alternating order, median and spread of
# each ratio, CPU time of all threads), then the anatomy (the older tables:
# hinted mappings, one run each), then ext4 with and without fast_commit.
# BENCH_ONLY=NAME,... runs only those tables (host-NAME.txt, guest-NAME.txt);
# BENCH_ANATOMY=0 skips the anatomy; BENCH_FASTCOMMIT=0 the fast_commit
# comparison; BENCH_GUEST=0 skips the guest; BENCH_QUICK=1 runs fewer repetitions;
# BENCH_SMP lists the guest's vCPU counts (default "1 2": one vCPU is how the
# crash tests boot, two is how docs/design.md's reference numbers were taken and
# leaves the pre-sync engine a CPU of its own).
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(cd "${1:-build}" && pwd)
out=${2:-docs/results}
mkdir -p "$out"
out=$(cd "$out" && pwd)
runs=5
[ "${BENCH_QUICK:-0}" = 1 ] && runs=2
bash scripts/deps.sh gnuplot-nox

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || commit+="+uncommitted"
rounds=5
[ "${BENCH_QUICK:-0}" = 1 ] && rounds=3
anatomy=${BENCH_ANATOMY:-1}
all=plain,kernel,fault-4k,fault,noreserve,fault-256k,presync # the anatomy's variants

stamp() {
	echo "# $(date -u +%FT%TZ) on $(uname -n): $(nproc) CPUs, kernel $(uname -r), libsyncmap $commit; command: $*"
}

only() { [ -z "${BENCH_ONLY:-}" ] || [[ ",$BENCH_ONLY," == *",$1,"* ]]; }

host() { # NAME CMD...
	local name=$1
	shift
	only "$name" || return 0
	echo "bench: host $name"
	{ stamp "$@"; "$@"; } >"$out/host-$name.txt" 2>&1
}

# Two ext4 file systems on loop devices over /dev/shm, one made with
# fast_commit, the same faults and append runs on each in alternating order.
fastcommit() {
	local tmp img dir pass fs cleanup
	tmp=$(mktemp -d /tmp/bench-fc.XXXXXX)
	cleanup="umount -q '$tmp'/nofc '$tmp'/fc 2>/dev/null; rm -rf '$tmp' /dev/shm/$(basename "$tmp")-*.img"
	# shellcheck disable=SC2064 # expand now: cleanup is local
	trap "$cleanup" EXIT
	for fs in nofc fc; do
		img=/dev/shm/$(basename "$tmp")-$fs.img
		mkdir -p "$tmp/$fs"
		truncate -s 1G "$img"
		# shellcheck disable=SC2046 # no words or one: -O fast_commit
		mkfs.ext4 -q -F -m 0 $([ "$fs" = fc ] && echo "-O fast_commit") "$img" >/dev/null
		mount -o loop,commit=60 "$img" "$tmp/$fs"
	done
	echo "# ext4 without (nofc) and with (fc) fast_commit: mkfs.ext4 -q -F -m 0 [-O fast_commit]," \
		"mount -o loop,commit=60, 1 GiB images on /dev/shm; $rounds passes, order alternating"
	for ((pass = 1; pass <= rounds; pass++)); do
		for dir in nofc fc; do
			((pass % 2)) || dir=$([ "$dir" = nofc ] && echo fc || echo nofc)
			echo "## pass $pass, ext4 $dir"
			"$build/bench/faults" -d "$tmp/$dir" -F empty -L none -v plain,fault,presync
			"$build/bench/append" -d "$tmp/$dir" -n 4000 -s 4096 -T 1 -m syncmap,msync
		done
	done | tee "$tmp/log"
	# Per pass, fc's value over nofc's; then the median over the passes.
	awk '
		function flush(  k, parts) {
			for (k in v) {
				split(k, parts, SUBSEP)
				if (parts[1] == "fc" && (("nofc", parts[2]) in v) && v["nofc", parts[2]] > 0)
					r[parts[2]] = r[parts[2]] " " v[k] / v["nofc", parts[2]]
			}
			delete v
		}
		/^## pass/ { if ($3 != pass) { flush(); pass = $3 } fs = $NF; next }
		$2 == "empty" && $3 == "none" { v[fs, $1 " first-write avg"] = $6; v[fs, $1 " cpu/page"] = $10 }
		$2 == "fresh" { v[fs, $1 " append records/s"] = $6; v[fs, $1 " append p99"] = $8 }
		END {
			flush()
			print "# summary: fc / nofc in the same pass, median [min-max] over the passes"
			for (k in r) {
				n = split(substr(r[k], 2), x, " ")
				for (a = 2; a <= n; a++)
					for (b = a; b > 1 && x[b - 1] + 0 > x[b] + 0; b--) { t = x[b]; x[b] = x[b - 1]; x[b - 1] = t }
				med = n % 2 ? x[(n + 1) / 2] : (x[n / 2] + x[n / 2 + 1]) / 2
				printf "%-32s %.3f [%.3f-%.3f]\n", k, med, x[1], x[n]
			}
		}' "$tmp/log" | sort
	eval "$cleanup"
	trap - EXIT
}

host users-faults-seq "$build/bench/faults" -R "$rounds" -L none -v plain,fault-4k,fault,fault-256k,fault-1m,presync
host users-faults-rand "$build/bench/faults" -R "$rounds" -L none -o rand -v plain,fault,presync
host users-append "$build/bench/append" -n 4000 -r "$rounds" -O
# The pre-sync depth against the append targets (4 KiB, fresh) and the first-write tails.
for d in 16 64; do
	host "users-append-4k-d$d" env SYNCMAP_PRESYNC_DEPTH=$d "$build/bench/append" -n 4000 -s 4096 -T 1 \
		-r $((rounds * 2 - 1)) -m syncmap,msync
done
host users-faults-seq-d64 env SYNCMAP_PRESYNC_DEPTH=64 "$build/bench/faults" -R "$rounds" -F empty -L none \
	-v plain,presync
if [ "$anatomy" != 0 ]; then
	host faults-seq "$build/bench/faults" -m hinted -r "$runs" -H -v "$all"
	host faults-rand "$build/bench/faults" -m hinted -r "$runs" -o rand
	host append "$build/bench/append" -n 4000 -O
	host scale "$build/bench/scale" -w 40000
	host overwrite bench/overwrite.sh "$build" $((runs * 3))
	host anatomy "$build/bench/anatomy" -r "$runs"
	host anatomy-64k "$build/bench/anatomy" -r "$runs" -g 64 -n 64
	host anatomy-1m "$build/bench/anatomy" -r "$runs" -g 1024 -n 8
fi
if [ "${BENCH_FASTCOMMIT:-1}" != 0 ] && only fastcommit; then
	echo "bench: host fastcommit"
	{ stamp fastcommit "(bench/run-all.sh)"; fastcommit; } >"$out/host-fastcommit.txt" 2>&1
fi

if [ "${BENCH_GUEST:-1}" != 0 ]; then
	cache=$build/vm-cache
	work=$cache/bench
	mkdir -p "$work"
	tests/vm/setup.sh "$cache" >/dev/null
	tests/vm/mkinitramfs.sh "$cache" "$work/initramfs.cpio.gz" "$build/bench/faults" "$build/bench/append" \
		"$build/bench/scale" "$build/bench/anatomy" >/dev/null
	# guest NAME NOTE CMD...: the commands in one fresh boot, into guest-NAME.txt.
	# A command starting with SYNCMAP_MODE=fault has its syncmap rows renamed syncmap-F.
	guest() {
		local name=$1 note=$2 script="smvm mkfs" c
		shift 2
		only "$name" || return 0
		for c in "$@"; do
			if [[ $c == SYNCMAP_MODE=fault\ append* ]]; then
				script+=$'\n'"$c 2>&1 | sed 's/^syncmap /syncmap-F/; s/^/SMVM: /'"
			else
				script+=$'\n'"$c 2>&1 | sed 's/^/SMVM: /'"
			fi
		done
		echo "bench: guest $name"
		{
			echo "# $(date -u +%FT%TZ) QEMU TCG guest (tests/vm), $smp vCPU, Debian 6.1 kernel," \
				"$fs dax=always on an emulated NVDIMM; libsyncmap $commit"
			echo "# host $(uname -n): $(nproc) CPUs; commands${note:+ ($note)}:"
			printf '#   %s\n' "$@"
			SMVM_QEMU_ARGS="-smp $smp" tests/vm/vm.sh "$cache" --initrd "$work/initramfs.cpio.gz" \
				--images "$work/images" --fresh --timeout 3000 --log "$work/$name.log" --run "$script"
		} >"$out/guest-$name.txt"
	}
	for smp in ${BENCH_SMP:-1 2}; do
		suffix=
		[ "$smp" = 1 ] || suffix=-smp$smp
		for fs in ext4 xfs; do
			# As users run it: FAULT mode (forced, since the kernel grants
			# MAP_SYNC here) with the library's defaults (presync), against the kernel's MAP_SYNC with its
			# default fault size and with 4 KiB faults.
			users="faults -d /mnt/$fs -R $rounds -L none"
			users+=" -H -v plain,kernel,kernel-4k,fault,presync -b plain,kernel,kernel-4k"
			guest "users-$fs$suffix" "" "$users"
			guest "users-d64-$fs$suffix" "SYNCMAP_PRESYNC_DEPTH=64" \
				"SYNCMAP_PRESYNC_DEPTH=64 faults -d /mnt/$fs -R $rounds -F empty -L none -H -v plain,kernel,presync -b kernel"
			[ "$anatomy" != 0 ] || continue
			# The grain against the kernel's huge faults: where the tails come from.
			guest "grains-$fs$suffix" "" \
				"faults -d /mnt/$fs -R 3 -F empty -L none -H -v plain,kernel,fault,fault-1m,fault-2m,presync -b kernel"
			guest "$fs$suffix" "rows syncmap-F: FAULT forced" \
				"faults -d /mnt/$fs -m hinted -r $runs -H -v $all" \
				"anatomy -d /mnt/$fs -r $runs" \
				"anatomy -d /mnt/$fs -r $runs -g 64 -n 64" \
				"append -d /mnt/$fs -n 2000 -s 64,1024,4096 -T 1,2 -O" \
				"SYNCMAP_MODE=fault append -d /mnt/$fs -n 2000 -s 64,4096 -T 1 -m syncmap"
		done
	done
fi
bench/plot.sh "$out"
echo "bench: results in $out"
