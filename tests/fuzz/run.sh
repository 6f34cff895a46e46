#!/bin/sh
# SPDX-License-Identifier: MIT
# run.sh -- run the pmlog recovery fuzzer for a bounded time (a ctest test).
# Usage: run.sh FUZZER SEED_CORPUS WORKDIR SECONDS
# New inputs go to WORKDIR/corpus, never into the source tree; a crash leaves
# its input in WORKDIR and fails the test.
set -eu
fuzzer=$1 seeds=$2 work=$3 secs=$4
[ -x "$fuzzer" ] || { echo "run.sh: $fuzzer was not built" >&2; exit 1; }
mkdir -p "$work/corpus"
cd "$work"
rm -f crash-* leak-* timeout-* oom-*
# libFuzzer exits 77 on a crash by default, which ctest would take for a skip:
# exit codes are set explicitly.  -max_len: a few records past a header;
# larger inputs only repeat the loop.
"$fuzzer" -max_total_time="$secs" -timeout=10 -error_exitcode=1 -timeout_exitcode=1 -rss_limit_mb=2048 -max_len=16384 \
	-print_final_stats=1 "$work/corpus" "$seeds"
