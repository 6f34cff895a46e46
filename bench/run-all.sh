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
# BENCH_GUEST=0 skips the guest; BENCH_QUICK=1 runs fewer repetitions;
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

stamp() { echo "# $(date -u +%FT%TZ) on $(uname -n): $(nproc) CPUs, kernel $(uname -r); command: $*"; }

host() { # NAME CMD...
	local name=$1
	shift
	echo "bench: host $name"
	{ stamp "$@"; "$@"; } >"$out/host-$name.txt" 2>&1
}

all=plain,kernel,fault-4k,fault,noreserve,fault-256k,presync
host faults-seq "$build/bench/faults" -r "$runs" -H -v "$all"
host faults-rand "$build/bench/faults" -r "$runs" -o rand
host append "$build/bench/append" -n 4000 -O
host scale "$build/bench/scale" -w 40000
host overwrite bench/overwrite.sh "$build" $((runs * 3))
host anatomy "$build/bench/anatomy" -r "$runs"
host anatomy-64k "$build/bench/anatomy" -r "$runs" -g 64 -n 64

if [ "${BENCH_GUEST:-1}" != 0 ]; then
	cache=$build/vm-cache
	work=$cache/bench
	mkdir -p "$work"
	tests/vm/setup.sh "$cache" >/dev/null
	tests/vm/mkinitramfs.sh "$cache" "$work/initramfs.cpio.gz" "$build/bench/faults" "$build/bench/append" \
		"$build/bench/scale" "$build/bench/anatomy" >/dev/null
	for smp in ${BENCH_SMP:-1 2}; do
		suffix=
		[ "$smp" = 1 ] || suffix=-smp$smp
		for fs in ext4 xfs; do
			cmds=(
				"faults -d /mnt/$fs -r $runs -H -v $all"
				"anatomy -d /mnt/$fs -r $runs"
				"anatomy -d /mnt/$fs -r $runs -g 64 -n 64"
				"append -d /mnt/$fs -n 2000 -s 64,1024,4096 -T 1,2 -O"
			)
			forced="SYNCMAP_MODE=fault append -d /mnt/$fs -n 2000 -s 64,4096 -T 1 -m syncmap"
			script="smvm mkfs"
			for c in "${cmds[@]}"; do
				script+=$'\n'"$c 2>&1 | sed 's/^/SMVM: /'"
			done
			script+=$'\n'"$forced 2>&1 | sed 's/^syncmap /syncmap-F/; s/^/SMVM: /'"
			echo "bench: guest $fs, $smp vCPU"
			{
				echo "# $(date -u +%FT%TZ) QEMU TCG guest (tests/vm), $smp vCPU, Debian 6.1 kernel," \
					"$fs dax=always on an emulated NVDIMM"
				echo "# host $(uname -n): $(nproc) CPUs; commands (rows syncmap-F: FAULT forced):"
				printf '#   %s\n' "${cmds[@]}" "$forced"
				SMVM_QEMU_ARGS="-smp $smp" tests/vm/vm.sh "$cache" --initrd "$work/initramfs.cpio.gz" \
					--images "$work/images" --fresh --timeout 3000 --log "$work/$fs$suffix.log" \
					--run "$script"
			} >"$out/guest-$fs$suffix.txt"
		done
	done
fi
bench/plot.sh "$out"
echo "bench: results in $out"
