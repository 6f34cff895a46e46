#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# crash-suite.sh -- power-cut the DAX guest while the library writes; check what survived.
#
# Usage: tests/vm/crash-suite.sh CACHE_DIR CRASH_BINARY CYCLES [SEED]
#
# Each cycle is two boots on the same pmem images.
#   Boot 1: ext4 (pmem0) and xfs (pmem1) are made fresh, both of the cycle's
#     storage kind.  One process writes the *case* file on one of them and a
#     plain MAP_SHARED *control* (CPU flush only) on the other, in step, so
#     that any crash point cuts both mid-write.  Each case page is stored,
#     reported ("stored"), persisted 32 pages later (syncmap_persist) and then
#     acknowledged.  The guest is reset at a point drawn uniformly over the
#     write phase (after page K, K in [MIN_K, pages]): sysrq-b by the writer
#     itself, or SIGKILL of QEMU by the host on the writer's marker.  Or, on
#     FAULT kinds, at a deterministic point inside the library (crash-tp,
#     lib/testpoint.h): right after a grain's touch, after its msync, after
#     the upgrade, or inside an engine window.
#   Boot 2: both filesystems are mounted (journal replay, log recovery) and
#     checked: (a) every acknowledged page reads back exactly; (b) every
#     stored page lies in an allocated, written extent (FIEMAP: not a hole,
#     not unwritten), persisted or not -- the MAP_SYNC guarantee itself.
#
# Storage kinds (CRASH_KINDS, default all of them):
#   dax-kernel  dax=always, auto mode: the kernel's MAP_SYNC (KERNEL)
#   dax-fault   dax=always, SYNCMAP_MODE=fault: FAULT mode persisting by
#               CPU flush (the kernel grants MAP_SYNC to the file)
#   pagecache   the same devices mounted dax=never: MAP_SYNC refused, auto
#               mode picks FAULT and persists by msync
#   virtio      two virtio-pmem devices (vm.sh --virtio-pmem), dax=always:
#               DAX without MAP_SYNC (the cloud-VM case), auto mode picks
#               FAULT and persists by msync (a flush request to QEMU)
# Cycle i runs kind i mod #kinds; its round i / #kinds chooses the rest.
# Rounds 0 to 2 run the library as it ships (no SYNCMAP_* setting but the
# forced FAULT mode of dax-fault), on ext4 and on xfs; later rounds draw
# half of their cycles from {engine off, 4 KiB grains} by SEED.  Crash
# triggers by round: 0 random point, 1 the first touch (before any grain
# msync: adopted pages must have been committed at map time), 2 the third
# engine window (the first ones start behind the writer; from the second on
# the engine runs ahead), then random points and the four library points
# in turn.
#
# A cycle FAILS if: boot 1 did not end in the crash; the writer printed an
# error or exited; the case did not get its mode, persist kind or settings;
# a library crash point was never reached; the case acknowledged fewer than
# CRASH_MIN_ACK pages (random points) or 8 (library points); the case lost
# an acknowledged page (a) or left a stored page unbacked (b); or the
# control lost nothing, or left nothing unbacked (then the cycle could not
# have failed).
#
# Every run writes a result file (CRASH_RESULTS, default
# CACHE_DIR/crash-suite/results/crash-SEED-DATE.txt) that starts with the
# command, git commit, seed, guest kernel, QEMU version and binaries.
#
# Environment: CRASH_TP (crash-tp; default beside CRASH_BINARY), CRASH_WORK
# (CACHE_DIR/crash-suite: initramfs, images, logs), CRASH_CASE_MODE
# (plain-msync: the case is plain mmap + msync, for mutants.sh),
# CRASH_KINDS, CRASH_RESULTS, CRASH_CASE_PAGES (16384), CRASH_CONTROL_PAGES
# (2048), CRASH_MIN_K (256), CRASH_MIN_ACK (64), CRASH_STOP_ON_FAIL=1 (stop
# at the first failed cycle), CRASH_FIRST=i (start at cycle i: with the same
# SEED it runs exactly as in the full run), CRASH_NOTE (a line for the
# result file), CRASH_LANES=N (run the cycles in N guests at once, cycle i
# in lane i mod N, each lane in CRASH_WORK/laneJ; the result file then
# holds every lane's cycles in order and one summary: the same run, in a
# fraction of the time on an N-core host).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/vm/suite-lib.sh
. "$HERE/suite-lib.sh"
COMMAND="$0 $*"
[ $# -ge 3 ] || { echo "usage: $0 CACHE_DIR CRASH_BINARY CYCLES [SEED]" >&2; exit 2; }
mkdir -p "$1"
CACHE=$(cd "$1" && pwd)
CRASH=$(readlink -f "$2")
CRASH_TP=$(readlink -f "${CRASH_TP:-$(dirname "$CRASH")/crash-tp}")
CYCLES=$3
SEED=${4:-$(date +%s)}
read -ra KINDS <<<"${CRASH_KINDS:-dax-kernel dax-fault pagecache virtio}"
PAGES=${CRASH_CASE_PAGES:-16384}
CPAGES=${CRASH_CONTROL_PAGES:-2048}
MIN_K=${CRASH_MIN_K:-256}
MIN_ACK=${CRASH_MIN_ACK:-64}
PRE=64
LAG=32
LANES=${CRASH_LANES:-1}
PARENT=""
[ "$LANES" -gt 1 ] && [ -z "${CRASH_LANE:-}" ] && PARENT=1
WORK=${CRASH_WORK:-$CACHE/crash-suite}
LOGS=$WORK/logs
mkdir -p "$LOGS" "$WORK/results"
RESULTS=${CRASH_RESULTS:-$WORK/results/crash-$SEED-$(date +%Y%m%d-%H%M%S).txt}
if [ ! -x "$CRASH" ] || [ ! -x "$CRASH_TP" ]; then
	echo "crash-suite: need $CRASH and $CRASH_TP" >&2
	exit 2
fi
for k in "${KINDS[@]}"; do
	case $k in dax-kernel | dax-fault | pagecache | virtio) ;; *) echo "crash-suite: unknown kind $k" >&2; exit 2 ;; esac
done

"$HERE/setup.sh" "$CACHE" >/dev/null
# In the guest they are /bin/crash and /bin/crash-tp, whatever their names here.
mkdir -p "$WORK/bin"
ln -sfn "$CRASH" "$WORK/bin/crash"
ln -sfn "$CRASH_TP" "$WORK/bin/crash-tp"
"$HERE/mkinitramfs.sh" "$CACHE" "$WORK/initramfs.cpio.gz" "$WORK/bin/crash" "$WORK/bin/crash-tp" >/dev/null
# shellcheck source=/dev/null
. "$CACHE/kernel.env"

# Everything below goes to the terminal and to the result file.
mkdir -p "$(dirname "$RESULTS")"
exec > >(tee "$RESULTS") 2>&1
TEE=$!
suite_identity "$SEED  cycles: ${CRASH_FIRST:-0}..$((CYCLES - 1))  kinds: ${KINDS[*]}${CRASH_LANE:+  lane: $CRASH_LANE of $LANES}${PARENT:+  lanes: $LANES}"
echo "# crash: $CRASH sha256 $(sha256sum "$CRASH" | cut -c1-16)"
echo "# crash-tp: $CRASH_TP sha256 $(sha256sum "$CRASH_TP" | cut -c1-16)"
[ -z "${CRASH_NOTE:-}" ] || echo "# note: $CRASH_NOTE"
echo "# case $PAGES pages (pre-written $PRE, persist lag $LAG), control $CPAGES pages;" \
	"random points K in [$MIN_K, $PAGES]; min acked $MIN_ACK (library points 8)"

# Every cycle's line (and its reasons) also goes here: the summary is made
# from these lines, in one lane or from all of them.
CYCLE_LINES=$WORK/cycles.$$
: >"$CYCLE_LINES"
trap 'rm -f "$CYCLE_LINES"' EXIT

progress() { # TAG: "STORED ACKED" from the last report of TAG in OUT
	local l
	l=$(grep -E "^p $1 [0-9]+ [0-9]+$" <<<"$OUT" | tail -n 1 || true)
	[ -n "$l" ] && echo "${l#p "$1" }" || echo "0 0"
}

TP_TURN=(msync mprotect touch engine)
for ((i = ${CRASH_FIRST:-0}; i < CYCLES; i++)); do
	[ -z "$PARENT" ] || break
	[ $((i % LANES)) = "${CRASH_LANE:-0}" ] || continue
	RANDOM=$((SEED + 7919 * i)) # each cycle's draws depend on SEED and i alone
	nk=${#KINDS[@]}
	k=$((i % nk))
	r=$((i / nk))
	kind=${KINDS[$k]}
	fs=$([ $(((k + r) % 2)) = 0 ] && echo ext4 || echo xfs)
	cfs=$([ "$fs" = ext4 ] && echo xfs || echo ext4)
	method=$([ $(((k + r / 2) % 2)) = 0 ] && echo sysrq || echo kill)
	order=$([ $((RANDOM % 2)) = 0 ] && echo seq || echo rand)
	pick=$((RANDOM % 4))
	cfg=defaults
	if [ "$r" -ge 3 ] && [ "$pick" = 2 ]; then cfg=engine-off; fi
	if [ "$r" -ge 3 ] && [ "$pick" = 3 ]; then cfg=grain-4k; fi
	# The trigger: a random point, or a point inside the library.
	tp=""
	if [ "$kind" != dax-kernel ]; then
		if [ "$r" = 1 ]; then tp=touch:1
		elif [ "$r" = 2 ]; then tp=engine:3
		elif [ "$r" -ge 4 ] && [ $((r % 2)) = 0 ]; then
			p=${TP_TURN[$(((r / 2 - 2) % 4))]}
			tp="$p:$((1 + RANDOM % 32))"
			[ "$p" = engine ] && tp="engine:$((2 + RANDOM % 6))"
		fi
	fi
	if [ "${tp%%:*}" = engine ]; then
		order=seq # the engine runs ahead of in-order writers only
		[ "$cfg" = engine-off ] && cfg=defaults
	fi
	crash_k=$((MIN_K + $(big_random) % (PAGES - MIN_K + 1)))
	stage=$([ $((RANDOM % 2)) = 0 ] && echo store || echo persist)
	seed=$(big_random)
	[ -n "$tp" ] && method=testpoint

	kind_setup "$kind"
	# A negative check (mutants.sh): the mapping the library replaces.
	[ -n "${CRASH_CASE_MODE:-}" ] && mode=$CRASH_CASE_MODE
	[ "$cfg" = engine-off ] && env="$env; export SYNCMAP_PRESYNC=0"
	[ "$cfg" = grain-4k ] && env="$env; export SYNCMAP_GRAIN=4096"
	prog=crash
	args="case=/mnt/$fs/case.dat mode=$mode persist=$persist order=$order pages=$PAGES seed=$seed pre=$PRE lag=$LAG"
	args="$args control=/mnt/$cfs/control.dat cpages=$CPAGES"
	case $method in
	sysrq) args="$args crash=$crash_k stage=$stage" trig="sysrq@$crash_k/$stage" ;;
	kill) args="$args mark=$crash_k" trig="kill@$crash_k" ;;
	testpoint)
		prog=crash-tp args="$args end=crash" trig="tp=$tp"
		# The engine runs ahead of a writer that leaves it time (one vCPU).
		[ "${tp%%:*}" = engine ] && args="$args pace=30" trig="$trig pace=30"
		env="$env; export SYNCMAP_TESTPOINT=$tp"
		;;
	esac
	name=$(printf 'c%03d-%s-%s' "$i" "$kind" "$fs")

	# Timers held back (suite-lib.sh), before the mounts.
	script="$devs
$HOLD_WRITEBACK
smvm mkfs-ext4 $opts_e
smvm mkfs-xfs $opts_x
$env
rc=0
$prog write $args || rc=\$?
smvm say writer-exit rc=\$rc"
	vmargs=("${vmdev[@]}" --fresh --expect-crash)
	[ "$method" = kill ] && vmargs=("${vmdev[@]}" --fresh --kill-on crashpoint --kill-delay-ms 0-20)
	why=()
	b1=0
	boot "$name-1" "${vmargs[@]}" --run "$script" || b1=$?
	out1=$OUT
	start=$(grep -E '^start case ' <<<"$out1" | head -n 1 || true)
	read -r stored acked <<<"$(progress case)"
	read -r cstored cacked <<<"$(progress control)"
	[ "$b1" = 0 ] || why+=("boot 1: $(boot_outcome "$name-1"), vm.sh exit $b1")
	grep -qE '^(error|writer-exit)' <<<"$out1" && why+=("writer: $(grep -E '^(error|writer-exit)' <<<"$out1" | head -n 2 | tr '\n' ' ')")
	[ -n "$start" ] || why+=("no start line")
	if [ -n "$start" ]; then
		case $cfg in
		engine-off) [ "$(field "$start" presync)" = 0 ] || why+=("engine not off: $start") ;;
		grain-4k) [ "$(field "$start" grain)" = 4096 ] || why+=("grain not 4 KiB: $start") ;;
		esac
	fi
	min=$MIN_ACK
	if [ -n "$tp" ]; then
		min=8
		grep -qE '^done case' <<<"$out1" && why+=("library crash point $tp never reached")
	fi
	[ "$acked" -ge "$min" ] || why+=("case acknowledged $acked < $min")

	check="$devs
smvm mount-ext4 $opts_e
smvm mount-xfs $opts_x
crash check case=/mnt/$fs/case.dat order=$order pages=$PAGES seed=$seed pre=$PRE acked=$acked stored=$stored tag=case
crash check case=/mnt/$cfs/control.dat order=$order pages=$CPAGES seed=$((seed + 1)) pre=0 acked=$cacked stored=$cstored tag=control"
	b2=0
	boot "$name-2" "${vmdev[@]}" --reuse --run "$check" || b2=$?
	rc_line=$(grep -E '^result case ' <<<"$OUT" || true)
	rk_line=$(grep -E '^result control ' <<<"$OUT" || true)
	lost=- unbacked=- klost=- kunbacked=-
	if [ "$b2" != 0 ] || [ -z "$rc_line" ] || [ -z "$rk_line" ]; then
		why+=("check boot failed (vm.sh exit $b2, log $LOGS/$name-2.log)")
	else
		lost=$(field "$rc_line" lost)
		unbacked=$(field "$rc_line" unbacked)
		klost=$(field "$rk_line" lost)
		kunbacked=$(field "$rk_line" unbacked)
		[ "$lost" = 0 ] || why+=("(a) $lost acknowledged pages lost")
		[ "$unbacked" = 0 ] || why+=("(b) $unbacked stored pages not in a written extent")
		[ "$cacked" -gt 0 ] && [ "$klost" -gt 0 ] || why+=("control lost nothing ($klost of $cacked)")
		[ "$kunbacked" -gt 0 ] || why+=("control left no stored page unbacked")
	fi
	verdict=ok
	[ ${#why[@]} -eq 0 ] || verdict=FAIL
	tpseen=$(grep -E '^testpoint ' <<<"$out1" | head -n 1 | cut -d' ' -f2- || true)
	{
		printf '%-4s %s: %s %s order=%s %s | case stored=%s acked=%s lost=%s unbacked=%s | control(%s) stored=%s acked=%s lost=%s unbacked=%s | %s%s\n' \
			"$verdict" "$name" "$cfg" "$method" "$order" "$trig" "$stored" "$acked" "$lost" "$unbacked" \
			"$cfs" "$cstored" "$cacked" "$klost" "$kunbacked" "${start#start case }" "${tpseen:+ | tp: $tpseen}"
		for w in "${why[@]}"; do echo "     - $w"; done
	} | tee -a "$CYCLE_LINES"
	if [ "$verdict" = FAIL ] && [ "${CRASH_STOP_ON_FAIL:-0}" = 1 ]; then break; fi
done

if [ -n "$PARENT" ]; then
	# One suite per lane, each in its own work directory and guest; their
	# cycles are then put back in order, as one run would have printed them.
	pids=()
	for ((j = 0; j < LANES; j++)); do
		CRASH_LANE=$j CRASH_WORK=$WORK/lane$j CRASH_RESULTS=$WORK/lane$j/result.txt \
			"$HERE/crash-suite.sh" "$CACHE" "$CRASH" "$CYCLES" "$SEED" >"$WORK/lane$j.out" 2>&1 &
		pids+=($!)
	done
	echo "crash-suite: $LANES lanes running (progress: $WORK/lane*.out)"
	for p in "${pids[@]}"; do wait "$p" || true; done
	for ((j = 0; j < LANES; j++)); do
		awk '/^(ok  |FAIL) c[0-9]+-/ { key = $2 } key != "" && (/^(ok  |FAIL) c[0-9]+-/ || /^     - /) { print key "\t" $0 }' \
			"$WORK/lane$j/result.txt" 2>/dev/null || true
	done | sort -s -t "$(printf '\t')" -k1,1 | cut -f2- | tee "$CYCLE_LINES"
fi

# The summary, from the cycle lines: cycles whose check boot failed (lost
# "-") count as failed, not in the sums.
expected=$((CYCLES - ${CRASH_FIRST:-0}))
[ -n "${CRASH_LANE:-}" ] && expected=$(seq "${CRASH_FIRST:-0}" $((CYCLES - 1)) | awk -v n="$LANES" -v j="$CRASH_LANE" '$1 % n == j' | wc -l)
echo
awk -v kinds="${KINDS[*]}" -v pages="$PAGES" -v expected="$expected" -v stop="${CRASH_STOP_ON_FAIL:-0}" '
function num(piece, key, m) { return match(piece, " " key "=[^ ]+") ? substr(piece, RSTART + length(key) + 2, RLENGTH - length(key) - 2) : "-" }
/^(ok  |FAIL) c[0-9]+-/ {
	n++
	if ($1 == "FAIL") f++
	split($0, part, " [|] ")
	name = $2; sub(/:$/, "", name); sub(/^c[0-9]+-/, "", name)
	fs = name; sub(/.*-/, "", fs); kind = name; sub(/-[^-]*$/, "", kind)
	cfs = part[3]; sub(/^control[(]/, "", cfs); sub(/[)].*/, "", cfs)
	lost = num(part[2], "lost")
	if (lost == "-") next
	acked = num(part[2], "acked")
	key = kind "/" fs
	sc[key]++; if (acked + 0 < pages + 0) sf[key]++
	sa[key] += acked; sl[key] += lost; ss[key] += num(part[2], "stored"); su[key] += num(part[2], "unbacked")
	key = kind "/" cfs
	kc[key]++; ka[key] += num(part[3], "acked"); kl[key] += num(part[3], "lost"); ku[key] += num(part[3], "unbacked")
}
END {
	nk = split(kinds, K, " ")
	print "case             cycles  mid-write  pages acked  lost  pages stored  unbacked"
	for (i = 1; i <= nk; i++) for (j = 1; j <= 2; j++) {
		key = K[i] "/" (j == 1 ? "ext4" : "xfs")
		if (key in sc) printf "%-16s %6d %10d %12d %5d %13d %9d\n", key, sc[key], sf[key], sa[key], sl[key], ss[key], su[key]
	}
	print "control (plain)  cycles  pages acked  lost  unbacked"
	for (i = 1; i <= nk; i++) for (j = 1; j <= 2; j++) {
		key = K[i] "/" (j == 1 ? "ext4" : "xfs")
		if (key in kc) printf "%-16s %6d %12d %5d %9d\n", key, kc[key], ka[key], kl[key], ku[key]
	}
	if (n < expected && !(stop == 1 && f > 0)) {
		printf "crash-suite: %d of %d cycles have no result line\n", expected - n, expected
		f += expected - n
	}
	printf "%d %d\n", n, f > "/dev/stderr"
}' "$CYCLE_LINES" 2>"$CYCLE_LINES.n"
suite_finish crash-suite
