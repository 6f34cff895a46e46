#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# apps-suite.sh -- real programs under power cuts in the DAX guest: pmlog, logd and LMDB, each beside a control that must lose.
#
# Usage: tests/vm/apps-suite.sh CACHE_DIR BUILD_DIR CYCLES [SEED]
#
# BUILD_DIR is a build tree with the examples, the preload shim and tests/vm
# built (examples/logd, lib/preload/libsyncmap-preload.so, tests/vm/
# {pmlog-crash,pmlog-crash-plain,logd-crash,logd-plain,lmdb-crash}; LMDB
# also needs mdb_stat and mdb_dump from lmdb-utils).  Each cycle is two
# boots on the same pmem images, one application, one storage kind
# (suite-lib.sh: dax-kernel, dax-fault, pagecache, virtio), the library's
# defaults (no SYNCMAP_* setting but dax-fault's forced mode).
#
#   pmlog  Boot 1: pmlog-crash appends records with known content (length 0
#          to 20000 bytes, each derived from a seed and its index) to a fresh
#          log on one filesystem and prints an acknowledgement after each
#          pmlog_append returned.  In step with it, the control appends the
#          same way with pmlog-crash-plain: pmlog's code over plain mmap and
#          CPU flushes (tests/vm/nosync.c), on the other filesystem.  The
#          guest is reset once K records were acknowledged, K uniform in
#          [MIN_K, records]: sysrq-b at once (acked); at a random moment
#          during the next append (timer); inside that append, right after
#          its records' persist (records: a torn tail is left) or its commit
#          words' (commit); or SIGKILL of QEMU by the host on a marker (kill).
#   logd   Boot 1: logd (as built, on libsyncmap) and logd-plain (the same
#          server on nosync.c) each log to one filesystem; logd-crash sends
#          both the same numbered lines in step, W in flight, and counts the
#          "OK n" acks.  Reset once the case acked K lines: acked, timer (a
#          random moment, often inside logd's group commit), or kill.
#   lmdb   Boot 1: lmdb-crash commits transactions of 1 to 12 known records
#          (up to 20000 bytes: overflow pages) with MDB_WRITEMAP under the
#          preload shim, which takes LMDB's map (KERNEL on dax-kernel, FAULT
#          elsewhere), and acknowledges each commit that returned.  The
#          control: the same program without the shim and with MDB_NOSYNC.
#          Reset after K commits: acked, timer (inside a transaction), kill.
#   Boot 2: both filesystems are mounted (journal replay, log recovery).
#          pmlog, logd: pmlog-crash check opens each log: every acknowledged
#          record must be present and exact, in order (lost); no record
#          recovery returns may differ from what was written at its place
#          (bad: a torn or garbage record returned); recovery's torn tail is
#          reported, cut (zero past the tail after a writable open) and
#          appending goes on after it (again).  lmdb: lmdb-crash check
#          under the shim: every acknowledged transaction present and exact
#          (lost), none partly present (torn), no record nobody wrote (bad);
#          then the stock mdb_stat (its Entries must be what the committed
#          transactions put) and mdb_dump (exit 0, every entry dumped).
#
# A cycle FAILS if: boot 1 did not end in the crash; a writer printed an
# error or exited; the case did not get its mode and persist kind; a
# program-side crash was not announced ("reset ..." line); the case
# acknowledged fewer than MIN_ACK records; the case lost a record, returned
# a bad one, was missing or unreadable; its log's tail was not cut or did not
# take a new record (pmlog, logd); it kept part of a transaction, or
# mdb_stat or mdb_dump failed or disagreed (lmdb); the control acknowledged
# nothing or lost nothing (then the cycle could not have failed), or its
# pmlog recovery returned a bad record.  A run fails if a cycle fails.
#
# Cycle i runs application i mod #applications (pmlog, logd, lmdb); that
# application's j-th cycle (j = i / #applications) runs kind j + s mod
# #kinds, s = 0 for pmlog, 2 for logd, 1 for lmdb: so 6 cycles put pmlog on
# DAX (KERNEL, FAULT), logd on page cache and virtio-pmem, LMDB on DAX FAULT
# and page cache, and 12 every application on every kind.  The filesystem
# alternates by kind and round (j / #kinds), the crash method follows j;
# pmlog's chunk is 1 MiB (its default) in even rounds and 64 KiB (many grows)
# in odd ones.  Every draw depends on SEED and the cycle number alone
# (APPS_FIRST=i reruns cycle i exactly).
#
# Every run writes a result file (APPS_RESULTS, default
# CACHE_DIR/apps-suite/results/apps-SEED-DATE.txt) starting with the
# command, git commit, seed, guest kernel, QEMU version and program hashes,
# then one line per cycle and a summary.
#
# APPS_CASE_PLAIN=1 is the negative check: each case runs as its control
# does (pmlog-crash-plain, logd-plain, LMDB without the shim and with
# MDB_NOSYNC; pmlog's records and commit points become acked), expecting no
# mode; every cycle must then FAIL by losing acknowledged records, or the
# checks could not tell the library from its absence.
#
# Environment: APPS_KINDS, APPS_APPS (pmlog logd lmdb; without lmdb-crash,
# pmlog logd), APPS_RECORDS (pmlog records, 3000), APPS_LINES (logd lines,
# 1500), APPS_TXNS (LMDB transactions, 300), APPS_MIN_K (64),
# APPS_MIN_ACK (32), APPS_FIRST, APPS_STOP_ON_FAIL=1, APPS_WORK
# (CACHE_DIR/apps-suite), APPS_RESULTS, APPS_NOTE (a line for the result file).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/vm/suite-lib.sh
. "$HERE/suite-lib.sh"
COMMAND="$0 $*"
[ $# -ge 3 ] || { echo "usage: $0 CACHE_DIR BUILD_DIR CYCLES [SEED]" >&2; exit 2; }
mkdir -p "$1"
CACHE=$(cd "$1" && pwd)
BUILD=$(cd "$2" && pwd)
CYCLES=$3
SEED=${4:-$(date +%s)}
read -ra KINDS <<<"${APPS_KINDS:-dax-kernel dax-fault pagecache virtio}"
LMDB_NOTE=""
if [ -z "${APPS_APPS:-}" ] && [ ! -x "$BUILD/tests/vm/lmdb-crash" ]; then
	APPS_APPS="pmlog logd"
	LMDB_NOTE="lmdb not run: $BUILD/tests/vm/lmdb-crash not built (liblmdb-dev missing?)"
fi
read -ra APPS <<<"${APPS_APPS:-pmlog logd lmdb}"
RECORDS=${APPS_RECORDS:-3000}
LINES=${APPS_LINES:-1500}
TXNS=${APPS_TXNS:-300}
MIN_K=${APPS_MIN_K:-64}
MIN_ACK=${APPS_MIN_ACK:-32}
FIRST=${APPS_FIRST:-0}
WORK=${APPS_WORK:-$CACHE/apps-suite}
LOGS=$WORK/logs
mkdir -p "$LOGS" "$WORK/results"
RESULTS=${APPS_RESULTS:-$WORK/results/apps-$SEED-$(date +%Y%m%d-%H%M%S).txt}
PROGS=("$BUILD/tests/vm/pmlog-crash" "$BUILD/tests/vm/pmlog-crash-plain" "$BUILD/tests/vm/logd-crash"
	"$BUILD/tests/vm/logd-plain" "$BUILD/examples/logd")
SHIM=$BUILD/lib/preload/libsyncmap-preload.so
if [[ " ${APPS[*]} " == *" lmdb "* ]]; then
	PROGS+=("$BUILD/tests/vm/lmdb-crash" "$(command -v mdb_stat || echo mdb_stat)" "$(command -v mdb_dump || echo mdb_dump)")
	[ -f "$SHIM" ] || { echo "apps-suite: $SHIM missing" >&2; exit 2; }
	# In the guest the shim is /lib/libsyncmap-preload.so.
	export SMVM_EXTRA_FILES="${SMVM_EXTRA_FILES:-} $SHIM:/lib/libsyncmap-preload.so"
fi
for p in "${PROGS[@]}"; do
	[ -x "$p" ] || { echo "apps-suite: $p missing (build the examples and tests/vm; lmdb-utils)" >&2; exit 2; }
done
for k in "${KINDS[@]}"; do
	kind_setup "$k" || { echo "apps-suite: unknown kind $k" >&2; exit 2; }
done
for a in "${APPS[@]}"; do
	case $a in pmlog | logd | lmdb) ;; *) echo "apps-suite: unknown application $a" >&2; exit 2 ;; esac
done

"$HERE/setup.sh" "$CACHE" >/dev/null
"$HERE/mkinitramfs.sh" "$CACHE" "$WORK/initramfs.cpio.gz" "${PROGS[@]}" >/dev/null
# shellcheck source=/dev/null
. "$CACHE/kernel.env"

mkdir -p "$(dirname "$RESULTS")"
exec > >(tee "$RESULTS") 2>&1
TEE=$!
suite_identity "$SEED  cycles: $FIRST..$((CYCLES - 1))  kinds: ${KINDS[*]}  applications: ${APPS[*]}"
for p in "${PROGS[@]}"; do echo "# $(basename "$p"): $p sha256 $(sha256sum "$p" | cut -c1-16)"; done
[[ " ${APPS[*]} " != *" lmdb "* ]] || echo "# preload shim: $SHIM sha256 $(sha256sum "$SHIM" | cut -c1-16)"
[ -z "$LMDB_NOTE" ] || echo "# note: $LMDB_NOTE"
[ "${APPS_CASE_PLAIN:-0}" != 1 ] || echo "# negative check (APPS_CASE_PLAIN=1): the cases run without the library; every cycle must fail by losing records"
[ -z "${APPS_NOTE:-}" ] || echo "# note: $APPS_NOTE"
echo "# pmlog $RECORDS records, logd $LINES lines, lmdb $TXNS transactions; crash after K acknowledged, K in [$MIN_K, N]; min acked $MIN_ACK"

CYCLE_LINES=$WORK/cycles.$$
: >"$CYCLE_LINES"
trap 'rm -f "$CYCLE_LINES"' EXIT

acked_of() { # TAG: the last acknowledgement count of TAG in OUT
	local l
	l=$(grep -E "^p $1 [0-9]+$" <<<"$OUT" | tail -n 1 || true)
	echo "${l:-p $1 0}" | cut -d' ' -f3
}

PMLOG_METHODS=(timer records kill acked commit)
LOGD_METHODS=(timer acked kill)
LMDB_METHODS=(timer acked kill)
declare -A SHIFT=([pmlog]=0 [logd]=2 [lmdb]=1)
for ((i = FIRST; i < CYCLES; i++)); do
	RANDOM=$((SEED + 7919 * i)) # each cycle's draws depend on SEED and i alone
	nk=${#KINDS[@]}
	app=${APPS[$((i % ${#APPS[@]}))]}
	j=$((i / ${#APPS[@]})) # the application's own cycle number
	rr=$((j / nk))         # and round
	k=$(((j + SHIFT[$app]) % nk))
	kind=${KINDS[$k]}
	fs=$([ $(((k + rr) % 2)) = 0 ] && echo ext4 || echo xfs)
	cfs=$([ "$fs" = ext4 ] && echo xfs || echo ext4)
	seed=$(big_random)
	kind_setup "$kind"
	pname=$([ "$persist" = cpu ] && echo "cache-line flush" || echo msync)
	MODE=$(tr '[:lower:]' '[:upper:]' <<<"$mode")
	# The negative check: the cases without the library.
	plain=${APPS_CASE_PLAIN:-0} sfx="" shim="LD_PRELOAD=/lib/libsyncmap-preload.so " nosync=""
	if [ "$plain" = 1 ]; then
		MODE=NONE persist=cpu pname="cache-line flush" sfx=-plain shim="" nosync=" nosync=1"
	fi
	if [ "$app" = pmlog ]; then
		n=$RECORDS
		method=${PMLOG_METHODS[$((j % ${#PMLOG_METHODS[@]}))]}
		chunk=$([ $((rr % 2)) = 0 ] && echo 0 || echo 65536)
		detail="chunk=$([ "$chunk" = 0 ] && echo default || echo "$chunk")"
	elif [ "$app" = logd ]; then
		n=$LINES
		method=${LOGD_METHODS[$((j % ${#LOGD_METHODS[@]}))]}
		window=$((1 + RANDOM % 8))
		detail="window=$window"
	else
		n=$TXNS
		method=${LMDB_METHODS[$((j % ${#LMDB_METHODS[@]}))]}
		detail="WRITEMAP"
	fi
	K=$((MIN_K + $(big_random) % (n - MIN_K + 1)))
	if [ "$plain" = 1 ] && { [ "$method" = records ] || [ "$method" = commit ]; }; then method=acked; fi
	if [ "$method" = kill ]; then trig="mark=$K"; else trig="crash=$K stage=$method"; fi
	name=$(printf 'c%03d-%s-%s-%s' "$i" "$app" "$kind" "$fs")

	if [ "$app" = pmlog ]; then
		run="pmlog-crash-plain write log=/mnt/$cfs/control.log seed=$((seed + 1)) records=$n chunk=$chunk tag=control mode=NONE persist=cpu follow=/tmp/step &
rc=0
pmlog-crash$sfx write log=/mnt/$fs/case.log seed=$seed records=$n chunk=$chunk tag=case mode=$MODE persist=$persist lead=/tmp/step $trig || rc=\$?
smvm say writer-exit rc=\$rc"
	elif [ "$app" = lmdb ]; then
		run="mkdir -p /mnt/$fs/db /mnt/$cfs/db
lmdb-crash write dir=/mnt/$cfs/db seed=$((seed + 1)) txns=$n tag=control nosync=1 mode=NONE follow=/tmp/step &
rc=0
${shim}lmdb-crash write dir=/mnt/$fs/db seed=$seed txns=$n tag=case mode=$MODE$nosync lead=/tmp/step $trig || rc=\$?
smvm say writer-exit rc=\$rc"
	else
		# logd prints its listening line (mode, persist) once it accepts.
		run="ip link set lo up
logd$sfx -q -p 7411 /mnt/$fs/case.log >/tmp/case.out 2>&1 &
logd-plain -q -p 7412 /mnt/$cfs/control.log >/tmp/control.out 2>&1 &
w=0
while [ \$(cat /tmp/case.out /tmp/control.out 2>/dev/null | grep -c listening) -lt 2 ] && [ \$w -lt 100 ]; do
	w=\$((w + 1)); sleep 0.1
done
smvm say \"server case \$(head -n 1 /tmp/case.out)\"
smvm say \"server control \$(head -n 1 /tmp/control.out)\"
rc=0
logd-crash run case=7411 control=7412 seed=$seed lines=$n window=$window $trig || rc=\$?
smvm say writer-exit rc=\$rc
smvm say \"server-out \$(tail -n 3 /tmp/case.out /tmp/control.out | tr '\n' ' ')\""
	fi
	script="$devs
$HOLD_WRITEBACK
smvm mkfs-ext4 $opts_e
smvm mkfs-xfs $opts_x
$env
$run"
	vmargs=("${vmdev[@]}" --fresh --expect-crash)
	[ "$method" = kill ] && vmargs=("${vmdev[@]}" --fresh --kill-on crashpoint --kill-delay-ms 0-20)
	why=()
	b1=0
	boot "$name-1" "${vmargs[@]}" --run "$script" || b1=$?
	out1=$OUT
	acked=$(acked_of case)
	cacked=$(acked_of control)
	reset=$(grep -E '^reset ' <<<"$out1" | head -n 1 || true)
	[ "$b1" = 0 ] || why+=("boot 1: $(boot_outcome "$name-1"), vm.sh exit $b1")
	grep -qE '^(error|writer-exit)' <<<"$out1" && why+=("writer: $(grep -E '^(error|writer-exit)' <<<"$out1" | head -n 2 | tr '\n' ' ')")
	if [ "$app" = pmlog ]; then
		start=$(grep -E '^start case ' <<<"$out1" | head -n 1 || true)
		[ -n "$start" ] || why+=("no start line")
		[ "$(grep -cE '^start control mode=NONE persist=cpu ' <<<"$out1")" = 1 ] || why+=("control did not start as plain mmap + CPU flush")
		start=${start#start case }
	elif [ "$app" = lmdb ]; then
		start=$(grep -E '^start case ' <<<"$out1" | head -n 1 || true)
		[ -n "$start" ] || why+=("no start line")
		[ "$(grep -cE '^start control mode=NONE flags=WRITEMAP[|]NOSYNC$' <<<"$out1")" = 1 ] || why+=("control did not start as MDB_NOSYNC without the shim")
		start="${start#start case } shim"
	else
		start=$(grep -E '^server case ' <<<"$out1" | head -n 1 || true)
		grep -qF "syncmap $MODE, persist by $pname," <<<"$start" || why+=("case server: want syncmap $MODE, persist by $pname: '${start#server case }'")
		grep -qF "syncmap NONE, persist by cache-line flush," <<<"$(grep -E '^server control ' <<<"$out1")" ||
			why+=("control server is not plain mmap + CPU flush")
		start="mode=$MODE persist=$persist"
	fi
	[ "$method" = kill ] || [ -n "$reset" ] || why+=("no reset line: the crash was not the program's")
	[ "$acked" -ge "$MIN_ACK" ] || why+=("case acknowledged $acked < $MIN_ACK")

	text=$([ "$app" = logd ] && echo 1 || echo 0)
	checks="pmlog-crash check log=/mnt/$fs/case.log seed=$seed acked=$acked tag=case text=$text
pmlog-crash check log=/mnt/$cfs/control.log seed=$((seed + 1)) acked=$cacked tag=control text=$text"
	# LMDB: the program's check and the stock tools, all under the shim.
	[ "$app" = lmdb ] && checks="export LD_PRELOAD=/lib/libsyncmap-preload.so
lmdb-crash check dir=/mnt/$fs/db seed=$seed acked=$acked tag=case
rc=0; mdb_stat /mnt/$fs/db >/tmp/stat 2>&1 || rc=\$?
smvm say \"tool stat rc=\$rc entries=\$(sed -n 's/^ *Entries: //p' /tmp/stat | head -n 1)\"
rc=0; mdb_dump /mnt/$fs/db >/tmp/dump 2>&1 || rc=\$?
smvm say \"tool dump rc=\$rc pairs=\$((\$(grep -c '^ ' /tmp/dump) / 2)) end=\$(grep -c '^DATA=END\$' /tmp/dump)\"
unset LD_PRELOAD
lmdb-crash check dir=/mnt/$cfs/db seed=$((seed + 1)) acked=$cacked tag=control"
	check="$devs
smvm mount-ext4 $opts_e
smvm mount-xfs $opts_x
$env
$checks"
	b2=0
	boot "$name-2" "${vmdev[@]}" --reuse --run "$check" || b2=$?
	rc_line=$(grep -E '^result case ' <<<"$OUT" || true)
	rk_line=$(grep -E '^result control ' <<<"$OUT" || true)
	grep -qE '^error' <<<"$OUT" && why+=("check: $(grep -E '^error' <<<"$OUT" | head -n 2 | tr '\n' ' ')")
	if [ "$b2" != 0 ] || [ -z "$rc_line" ] || [ -z "$rk_line" ]; then
		why+=("check boot failed (vm.sh exit $b2, log $LOGS/$name-2.log)")
		rc_line="result case found=- lost=- bad=- torn=- why=- cut=- again=- missing=-"
		rk_line="result control found=- lost=- bad=- missing=-"
	else
		[ "$(field "$rc_line" lost)" = 0 ] || why+=("case lost $(field "$rc_line" lost) acknowledged records")
		[ "$(field "$rc_line" bad)" = 0 ] || why+=("case: recovery returned $(field "$rc_line" bad) records not as written")
		[ "$(field "$rc_line" missing)" = 0 ] || why+=("case log missing")
		[ "$cacked" -gt 0 ] && [ "$(field "$rk_line" lost)" -gt 0 ] ||
			why+=("control lost nothing ($(field "$rk_line" lost) of $cacked)")
		if [ "$app" = lmdb ]; then
			stat=$(grep -E '^tool stat ' <<<"$OUT" || true)
			dump=$(grep -E '^tool dump ' <<<"$OUT" || true)
			[ "$(field "$rc_line" corrupt)" = 0 ] || why+=("case: LMDB could not read it (corrupt=$(field "$rc_line" corrupt))")
			[ "$(field "$rc_line" torn)" = 0 ] || why+=("case: $(field "$rc_line" torn) transactions partly present")
			[ "$(field "$stat" rc)" = 0 ] && [ "$(field "$stat" entries)" = "$(field "$rc_line" entries)" ] ||
				why+=("mdb_stat: '$stat', want entries=$(field "$rc_line" entries)")
			[ "$(field "$dump" rc)" = 0 ] && [ "$(field "$dump" pairs)" = "$(field "$rc_line" entries)" ] && [ "$(field "$dump" end)" = 1 ] ||
				why+=("mdb_dump: '$dump', want pairs=$(field "$rc_line" entries)")
			rc_line="$rc_line cut=- again=- why=-"
			start="$start | mdb_stat entries=$(field "$stat" entries) mdb_dump pairs=$(field "$dump" pairs)"
		else
			[ "$(field "$rc_line" cut)" = 1 ] || why+=("case: torn tail not cut")
			[ "$(field "$rc_line" again)" = 1 ] || why+=("case: no append after recovery")
			[ "$(field "$rk_line" bad)" = 0 ] || why+=("control: recovery returned $(field "$rk_line" bad) records not as written")
		fi
	fi
	verdict=ok
	[ ${#why[@]} -eq 0 ] || verdict=FAIL
	{
		printf '%-4s %s: %s@%s %s | case acked=%s found=%s lost=%s bad=%s torn=%s why=%s cut=%s again=%s missing=%s | control(%s) acked=%s found=%s lost=%s bad=%s missing=%s | %s | %s\n' \
			"$verdict" "$name" "$method" "$K" "$detail" "$acked" "$(field "$rc_line" found)" \
			"$(field "$rc_line" lost)" "$(field "$rc_line" bad)" "$(field "$rc_line" torn)" \
			"$(field "$rc_line" why)" "$(field "$rc_line" cut)" "$(field "$rc_line" again)" \
			"$(field "$rc_line" missing)" "$cfs" "$cacked" "$(field "$rk_line" found)" \
			"$(field "$rk_line" lost)" "$(field "$rk_line" bad)" "$(field "$rk_line" missing)" \
			"${reset:-reset by the host}" "$start"
		for w in "${why[@]}"; do echo "     - $w"; done
	} | tee -a "$CYCLE_LINES"
	if [ "$verdict" = FAIL ] && [ "${APPS_STOP_ON_FAIL:-0}" = 1 ]; then break; fi
done

# The summary, from the cycle lines; a cycle whose check failed ("-")
# counts as failed, not in the sums.
echo
awk -v apps="${APPS[*]}" -v kinds="${KINDS[*]}" -v expected=$((CYCLES - FIRST)) -v stop="${APPS_STOP_ON_FAIL:-0}" '
function val(piece, key) { return match(piece, " " key "=[^ ]+") ? substr(piece, RSTART + length(key) + 2, RLENGTH - length(key) - 2) : "-" }
/^(ok  |FAIL) c[0-9]+-/ {
	n++
	if ($1 == "FAIL") f++
	split($0, part, " [|] ")
	name = $2; sub(/:$/, "", name); sub(/^c[0-9]+-/, "", name)
	app = name; sub(/-.*/, "", app)
	fs = name; sub(/.*-/, "", fs)
	kind = name; sub(/^[^-]*-/, "", kind); sub(/-[^-]*$/, "", kind)
	if (val(part[2], "lost") == "-") next
	key = app "/" kind "/" fs
	c[key]++
	a[key] += val(part[2], "acked"); l[key] += val(part[2], "lost"); b[key] += val(part[2], "bad")
	x[key] += val(part[2], "found") - val(part[2], "acked")
	if (val(part[2], "torn") > 0) t[key]++
	if (part[4] ~ /inside=1/ || part[4] ~ /^reset (records|commit) /) mid[key]++
	ka[key] += val(part[3], "acked"); kl[key] += val(part[3], "lost"); kb[key] += val(part[3], "bad")
}
END {
	na = split(apps, A, " "); nk = split(kinds, K, " ")
	print "case                   cycles  acked  lost  bad  found-unacked  torn-tails  mid-call | control acked  lost  bad"
	for (p = 1; p <= na; p++) for (q = 1; q <= nk; q++) for (j = 1; j <= 2; j++) {
		key = A[p] "/" K[q] "/" (j == 1 ? "ext4" : "xfs")
		if (key in c)
			printf "%-22s %6d %6d %5d %4d %14d %11d %9d | %13d %5d %4d\n", key, c[key], a[key], l[key], b[key], x[key], t[key], mid[key], ka[key], kl[key], kb[key]
	}
	if (n < expected && !(stop == 1 && f > 0)) {
		printf "apps-suite: %d of %d cycles have no result line\n", expected - n, expected
		f += expected - n
	}
	printf "%d %d\n", n, f > "/dev/stderr"
}' "$CYCLE_LINES" 2>"$CYCLE_LINES.n"
suite_finish apps-suite
