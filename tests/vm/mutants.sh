#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# mutants.sh -- prove that a green crash suite means something: it must catch each deliberate defect.
#
# Usage: tests/vm/mutants.sh CACHE_DIR BUILD_ROOT [CYCLES] [SEED] [MUTANT...]
#
# For each mutant (default: all, see lib/testpoint.h) a build tree
# BUILD_ROOT/mutant-NAME is configured with -DSYNCMAP_MUTANT=NAME and its
# crash-tp built: the library with that one defect.  crash-suite.sh then
# runs up to CYCLES cycles (default 6) with that program as both crash and
# crash-tp, on the FAULT kinds (dax-fault, pagecache: KERNEL mode does not
# run the library's grain path), stopping at the first failed cycle.  The
# mutant is CAUGHT if that cycle failed check (a) (acknowledged pages lost)
# or (b) (stored pages not in a written extent); a cycle that failed for
# another reason (boot, set-up) is a harness failure, not a catch.
#
# Before the mutants, one negative check without the library: the case is a
# plain mapping persisted by msync on page cache, which keeps every
# acknowledged page and must still be caught by (b).
#
# The run fails unless every one is caught.  A summary file
# (CACHE_DIR/mutants/mutants-SEED-DATE.txt) records the command, commit,
# guest kernel, QEMU, and each outcome; each suite run keeps its own
# result file beside it.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
COMMAND="$0 $*"
[ $# -ge 2 ] || { echo "usage: $0 CACHE_DIR BUILD_ROOT [CYCLES] [SEED] [MUTANT...]" >&2; exit 2; }
mkdir -p "$1" "$2"
CACHE=$(cd "$1" && pwd)
ROOT=$(cd "$2" && pwd)
CYCLES=${3:-6}
SEED=${4:-$(date +%s)}
shift $(($# < 4 ? $# : 4))
# sync_on_programs_description is not here: it hides a writeback error and
# loses nothing, so no crash can show it; vm.failing_device (faildev.sh)
# catches it.
ALL=(skip_grain_msync mprotect_before_msync adopt_without_fdatasync engine_ready_early persist_no_sync)
MUTANTS=("$@")
[ ${#MUTANTS[@]} -gt 0 ] || MUTANTS=(plain-msync "${ALL[@]}")
OUTDIR=$CACHE/mutants
mkdir -p "$OUTDIR"
SUMMARY=$OUTDIR/mutants-$SEED-$(date +%Y%m%d-%H%M%S).txt

"$HERE/setup.sh" "$CACHE" >/dev/null
# shellcheck source=/dev/null
. "$CACHE/kernel.env"
exec > >(tee "$SUMMARY") 2>&1
TEE=$!
commit=$(git -C "$SRC" rev-parse HEAD 2>/dev/null || echo unknown)
[ -z "$(git -C "$SRC" status --porcelain --untracked-files=no 2>/dev/null)" ] || commit="$commit+uncommitted"
echo "# command: $COMMAND"
echo "# commit: $commit"
echo "# seed: $SEED  cycles per mutant: $CYCLES"
echo "# guest kernel: $SMVM_KVER  qemu: $(${SMVM_QEMU:-qemu-system-x86_64} --version | head -n 1)"
echo "# host: $(uname -r), $(nproc) CPUs; $(date -u +%Y-%m-%dT%H:%M:%SZ)"

# build NAME -- BUILD_ROOT/mutant-NAME/tests/vm/crash-tp with the defect
# (none: without one).  Configured with the tests (tests/vm is only added
# with them), built for crash-tp alone.
build() {
	local b=$ROOT/mutant-$1 def=$1
	[ "$def" = none ] && def=""
	if ! cmake -S "$SRC" -B "$b" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSYNCMAP_MUTANT="$def" \
		-DSYNCMAP_BUILD_BENCH=OFF -DSYNCMAP_BUILD_EXAMPLES=OFF >"$OUTDIR/build-$1.log" 2>&1 ||
		! cmake --build "$b" -j 2 --target vm_crash_tp >>"$OUTDIR/build-$1.log" 2>&1; then
		echo "mutants: build of $1 failed (log $OUTDIR/build-$1.log)" >&2
		return 1
	fi
	echo "$b/tests/vm/crash-tp"
}

caught=0
missed=0
for m in "${MUTANTS[@]}"; do
	kinds="dax-fault pagecache"
	env=()
	if [ "$m" = plain-msync ]; then
		bin=$(build none) || { missed=$((missed + 1)); continue; }
		kinds=pagecache
		env=(CRASH_CASE_MODE=plain-msync)
	else
		bin=$(build "$m") || { missed=$((missed + 1)); continue; }
	fi
	log=$OUTDIR/suite-$m-$SEED.txt
	echo
	echo "== $m: up to $CYCLES cycles on $kinds"
	rc=0
	env "${env[@]}" CRASH_TP="$bin" CRASH_KINDS="$kinds" CRASH_STOP_ON_FAIL=1 CRASH_WORK="$OUTDIR/work" \
		CRASH_RESULTS="$log" CRASH_NOTE="mutant $m" \
		"$HERE/crash-suite.sh" "$CACHE" "$bin" "$CYCLES" "$SEED" >/dev/null 2>&1 || rc=$?
	grep -E '^(ok|FAIL) ' "$log" | sed 's/^/   /' || true
	grep -E '^     - ' "$log" || true
	fail_line=$(grep -E '^FAIL ' "$log" | head -n 1 || true)
	if [ -n "$fail_line" ] && grep -qE '^     - \((a|b)\) ' "$log"; then
		echo "CAUGHT $m: $(grep -E '^     - \((a|b)\) ' "$log" | head -n 2 | sed 's/^     - //' | tr '\n' ';')" \
			"in ${fail_line%%:*}"
		caught=$((caught + 1))
	else
		echo "MISSED $m: $([ -n "$fail_line" ] && echo "a cycle failed for another reason" || echo "no cycle failed") (suite exit $rc, $log)"
		missed=$((missed + 1))
	fi
done
echo
echo "mutants: seed $SEED, $caught caught, $missed missed"
exec >&- 2>&-
wait "$TEE" || true
[ "$missed" = 0 ]
