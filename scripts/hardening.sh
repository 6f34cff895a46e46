#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# hardening.sh -- the extra CI legs: clang-format, clang -Werror, ASan+UBSan, TSan, Valgrind.
#
# Usage: scripts/hardening.sh [leg...]     (no argument: every leg, in this order)
#   format    clang-format --dry-run --Werror over every tracked C/C++ file
#   clang     the whole tree built by clang -Wall -Wextra -Werror (build-clang/),
#             and the installed-library consumer built by clang and clang++,
#             through pkg-config and find_package
#   asan      the whole ctest suite built with -fsanitize=address,undefined
#             (build-asan/); the stress test once more under ASan's defaults
#   tsan      the concurrency tests (label "concurrency": the stress test)
#             built with -fsanitize=thread (build-tsan/)
#   valgrind  gcc -Wall -Wextra -Werror build (build-hard/) and every test
#             labelled "valgrind": memcheck over the core driver and over the
#             stress test, Helgrind over the stress test
#
# Environment:
#   SYNCMAP_HARDENING=1          0: do nothing (say so) and exit 0
#   SYNCMAP_HARDENING_LEGS=...   the legs to run when none is named on the command line
#   SYNCMAP_HARDENING_JOBS=2     build and ctest parallelism
#   SYNCMAP_STRESS_SECONDS=60    how long each stress run lasts (asan, tsan)
#   SYNCMAP_CLANG_WERROR=1       0: clang warnings do not fail the clang leg
#
# Each leg runs even if an earlier one failed; the last line says how many
# passed.  Exit status 0 only if every leg passed.  Tests that need root or a
# loop device report "skipped" without them, never "passed".
set -uo pipefail
cd "$(dirname "$0")/.."
jobs=${SYNCMAP_HARDENING_JOBS:-2}
secs=${SYNCMAP_STRESS_SECONDS:-60}
build_type=RelWithDebInfo

log() { printf 'hardening: %s\n' "$*"; }

configure_build() { # dir, cmake args...
	local dir=$1
	shift
	cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=$build_type -DSYNCMAP_STRESS_SECONDS="$secs" "$@" >/dev/null &&
		cmake --build "$dir" -j "$jobs" >"$dir/hardening-build.log" 2>&1 || {
		grep -E 'error|warning' "$dir/hardening-build.log" | head -40
		log "build failed: $dir/hardening-build.log"
		return 1
	}
}

leg_format() {
	local files
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		files=$(git ls-files '*.c' '*.h' '*.cpp')
	else
		files=$(find include lib tests tools examples bench -name '*.[ch]' -o -name '*.cpp' 2>/dev/null)
	fi
	# shellcheck disable=SC2086 # one file name a word: the tree has no spaces
	clang-format --dry-run --Werror $files
}

leg_clang() {
	local werror=ON bin
	[ "${SYNCMAP_CLANG_WERROR:-1}" = 0 ] && werror=OFF
	CC=clang CXX=clang++ configure_build build-clang -DSYNCMAP_WERROR=$werror || return 1
	# tests/consumer/run.sh compiles with cc and c++: let those be clang's.
	bin=$(pwd)/build-clang/clang-bin
	mkdir -p "$bin"
	ln -sf "$(command -v clang)" "$bin/cc"
	ln -sf "$(command -v clang++)" "$bin/c++"
	PATH=$bin:$PATH CC=clang CXX=clang++ bash tests/consumer/run.sh build-clang
}

leg_asan() {
	configure_build build-asan -DSYNCMAP_WERROR=ON "-DSYNCMAP_SANITIZE=address;undefined" || return 1
	(
		cd build-asan || exit 1
		# FAULT mode lives on SIGSEGV.  ASan's own SIGSEGV/SIGBUS handlers
		# would turn the deaths the tests expect (a stray write, a write
		# past EOF, a failed sync) into a report and exit(1): off.
		# allow_user_segv_handler=1 (the default) lets the library install
		# its handler at all; with 0 every FAULT write would be reported.
		# Left out: the VM suite (label vm), Valgrind (it cannot run ASan
		# binaries), the installed consumer (an ASan library needs an ASan
		# program; the clang and main legs build it), and the tests that
		# store to address 0 on purpose to get a SIGSEGV: UBSan stops that
		# store as undefined behaviour before the fault can happen.
		export ASAN_OPTIONS=handle_segv=0:handle_sigbus=0:allow_user_segv_handler=1:detect_leaks=1
		export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
		ctest -j "$jobs" --output-on-failure --timeout 900 -LE 'vm|valgrind|install' \
			-E '^(hardening\.stress|fault\.null_write_still_kills|fault\.ignored_sigsegv_does_not_ignore_a_fault)$' ||
			exit 1
		# The stress test with ASan's defaults: its SIGSEGV handler is
		# installed first, the library's replaces it and chains to it.
		# Without fork: Debian 12's libasan (GCC 12) takes no allocator locks
		# around fork, so a child forked while another thread is inside
		# malloc can block forever in its first malloc (seen: the stress's
		# watchdog caught a child in SizeClassAllocator64::GetFromAllocator,
		# called from the library's adoption buffer).  glibc's malloc is
		# fork-safe; fork stays covered by the plain, TSan and Valgrind runs.
		ASAN_OPTIONS=detect_leaks=1 SYNCMAP_STRESS_NO_FORK=1 ctest --output-on-failure -R '^hardening\.stress$'
	)
}

leg_tsan() {
	configure_build build-tsan -DSYNCMAP_WERROR=ON -DSYNCMAP_SANITIZE=thread || return 1
	(
		cd build-tsan || exit 1
		# Criterion's runner does not start under TSan (its shared arena sits
		# where TSan keeps shadow memory): the concurrency tests are plain C.
		# die_after_fork=0: a forked child that maps starts its own engine
		# thread, which the library is designed to do.
		export TSAN_OPTIONS="halt_on_error=1 die_after_fork=0 report_signal_unsafe=1 second_deadlock_stack=1"
		ctest -j "$jobs" --output-on-failure -L concurrency
	)
}

leg_valgrind() {
	command -v valgrind >/dev/null || {
		log "valgrind not installed"
		return 1
	}
	configure_build build-hard -DSYNCMAP_WERROR=ON -DSYNCMAP_HARDENING_VALGRIND=ON || return 1
	(cd build-hard && ctest -j "$jobs" --output-on-failure -L valgrind)
}

if [ "${SYNCMAP_HARDENING:-1}" = 0 ]; then
	log "skipped (SYNCMAP_HARDENING=0)"
	exit 0
fi
legs=("$@")
# shellcheck disable=SC2206 # a list of words on purpose
[ ${#legs[@]} -eq 0 ] && legs=(${SYNCMAP_HARDENING_LEGS:-format clang asan tsan valgrind})
bash scripts/deps.sh || exit 1
passed=0
failed=0
summary=()
for leg in "${legs[@]}"; do
	if ! declare -F "leg_$leg" >/dev/null; then
		log "unknown leg '$leg' (format clang asan tsan valgrind)"
		exit 2
	fi
	log "--- $leg"
	start=$SECONDS
	if "leg_$leg"; then
		result=ok
		passed=$((passed + 1))
	else
		result=FAILED
		failed=$((failed + 1))
	fi
	summary+=("$leg $result ($((SECONDS - start)) s)")
	log "--- $leg: $result in $((SECONDS - start)) s"
done
for s in "${summary[@]}"; do
	log "$s"
done
echo "hardening: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
