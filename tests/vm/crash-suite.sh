#!/usr/bin/env bash
# crash-suite.sh -- crash the DAX guest while it writes; count what survived.
#
# Usage: tests/vm/crash-suite.sh CACHE_DIR CRASH_BINARY CYCLES [SEED]
#
# Each cycle is two boots on the same NVDIMM images.
#   Boot 1: ext4 (pmem0) and xfs (pmem1) are made fresh.  On one of them the
#     case under test writes a distinct pattern to the pages of a sparse file
#     (KERNEL mode = the kernel's MAP_SYNC, or FAULT mode forced), persisting
#     and acknowledging each page; on the other a plain MAP_SHARED control
#     does the same with CPU flushes only.  The two filesystems have separate
#     journals, so the case's syncs cannot save the control.  The guest is
#     then crashed at a random moment while both write: sysrq-b from inside,
#     or SIGKILL of QEMU from the host.
#   Boot 2: both filesystems are mounted (journal replay, log recovery) and
#     every page is read back.  An acknowledged page that does not read back
#     exactly is lost.
# Cycles rotate through {ext4, xfs} x {KERNEL, FAULT} x {sysrq, SIGKILL}.
# The library runs as it ships (no SYNCMAP_* setting but the forced FAULT
# mode) in the first four cycles and in half of the others; the rest run
# with the engine off (SYNCMAP_PRESYNC=0) or 4 KiB grains, drawn from SEED,
# as are the order (sequential/random) and the crash moment.  The run fails if the case loses any acknowledged page, or
# if the controls lose nothing on a filesystem (then the test could not fail).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# -ge 3 ] || { echo "usage: $0 CACHE_DIR CRASH_BINARY CYCLES [SEED]" >&2; exit 2; }
mkdir -p "$1"
CACHE=$(cd "$1" && pwd)
CRASH=$2
CYCLES=$3
SEED=${4:-$(date +%s)}
WORK=$CACHE/crash-suite
LOGS=$WORK/logs
mkdir -p "$LOGS"
CASE_PAGES=${CRASH_CASE_PAGES:-16384}
CONTROL_PAGES=${CRASH_CONTROL_PAGES:-1024}
RANDOM=$SEED

"$HERE/setup.sh" "$CACHE" >/dev/null
"$HERE/mkinitramfs.sh" "$CACHE" "$WORK/initramfs.cpio.gz" "$CRASH" >/dev/null
echo "crash-suite: $CYCLES cycles, seed $SEED, case $CASE_PAGES pages, control $CONTROL_PAGES pages"

declare -A c_cycles c_acked c_lost c_flight k_acked k_lost k_cycles
failed=0

# boot NAME VM.SH-ARGS... -- sets OUT (result lines); returns vm.sh's status.
boot() {
	local name=$1 rc=0
	shift
	OUT=$("$HERE/vm.sh" "$CACHE" --initrd "$WORK/initramfs.cpio.gz" --images "$WORK/images" \
		--log "$LOGS/$name.log" --status "$LOGS/$name.status" --timeout 240 "$@" 2>>"$LOGS/vm.err") || rc=$?
	return $rc
}

last_ack() { # TAG: the highest acknowledged count seen in OUT
	grep -E "^ack $1 [0-9]+$" <<<"$OUT" | tail -n 1 | awk '{print $3}' || true
}

field() { # LINE KEY
	sed -n "s/.*[ ^]$2=\([0-9]*\).*/\1/p" <<<"$1"
}

for ((i = 0; i < CYCLES; i++)); do
	combo=$((i % 4))
	fs=$([ $((combo % 2)) = 0 ] && echo ext4 || echo xfs)
	cfs=$([ "$fs" = ext4 ] && echo xfs || echo ext4)
	mode=$([ "$combo" -lt 2 ] && echo kernel || echo fault)
	method=$([ $(((i + i / 4) % 2)) = 0 ] && echo sysrq || echo kill)
	order=$([ $((RANDOM % 2)) = 0 ] && echo seq || echo rand)
	# The configuration that ships first, then half the time.
	pick=$((RANDOM % 4))
	cfg=defaults
	[ "$i" -ge 4 ] && [ "$pick" = 2 ] && cfg=engine-off
	[ "$i" -ge 4 ] && [ "$pick" = 3 ] && cfg=grain-4k
	delay=$((RANDOM % 2500))
	seed=$((RANDOM * 32768 + RANDOM))
	# KERNEL is what auto mode picks on DAX; FAULT has to be forced there.
	env=":"
	[ "$mode" = fault ] && env="export SYNCMAP_MODE=fault"
	[ "$cfg" = engine-off ] && env="$env; export SYNCMAP_PRESYNC=0"
	[ "$cfg" = grain-4k ] && env="$env; export SYNCMAP_GRAIN=4096"
	name=$(printf 'c%03d-%s-%s-%s' "$i" "$fs" "$mode" "$method")

	script="smvm mkfs
$env
crash info /mnt/$fs
crash write /mnt/$fs/case.dat $mode $order $CASE_PAGES $seed case /tmp/case.started &
crash write /mnt/$cfs/control.dat plain $order $CONTROL_PAGES $((seed + 1)) control /tmp/control.started &
while [ ! -e /tmp/case.started ] || [ ! -e /tmp/control.started ]; do sleep 0.02; done
smvm say ready"
	if [ "$method" = sysrq ]; then
		script="$script
crash sysrq-after $delay"
		args=(--fresh --expect-crash)
	else
		script="$script
wait"
		args=(--fresh --kill-on ready --kill-delay-ms "$delay")
	fi
	if ! boot "$name-1" "${args[@]}" --run "$script"; then
		echo "FAIL $name: boot 1 did not end in a crash (log $LOGS/$name-1.log)"
		failed=$((failed + 1))
		continue
	fi
	if ! grep -q "^start case mode=${mode^^}" <<<"$OUT"; then
		echo "FAIL $name: the case did not get $mode mode: $(grep -E '^(start|error|info)' <<<"$OUT" | tr '\n' ' ')"
		failed=$((failed + 1))
		continue
	fi
	info=$(grep -E '^info ' <<<"$OUT" | head -n 1)
	acked=$(last_ack case)
	cacked=$(last_ack control)
	acked=${acked:-0}
	cacked=${cacked:-0}

	check="smvm mount
crash check /mnt/$fs/case.dat $order $CASE_PAGES $seed $acked case
crash check /mnt/$cfs/control.dat $order $CONTROL_PAGES $((seed + 1)) $cacked control"
	if ! boot "$name-2" --reuse --run "$check"; then
		echo "FAIL $name: check boot failed (log $LOGS/$name-2.log)"
		failed=$((failed + 1))
		continue
	fi
	rc_line=$(grep -E '^result case ' <<<"$OUT" || true)
	rk_line=$(grep -E '^result control ' <<<"$OUT" || true)
	if [ -z "$rc_line" ] || [ -z "$rk_line" ]; then
		echo "FAIL $name: no result lines from the check boot"
		failed=$((failed + 1))
		continue
	fi
	lost=$(field "$rc_line" lost)
	klost=$(field "$rk_line" lost)
	key="$fs/$mode"
	c_cycles[$key]=$((${c_cycles[$key]:-0} + 1))
	c_acked[$key]=$((${c_acked[$key]:-0} + acked))
	c_lost[$key]=$((${c_lost[$key]:-0} + lost))
	[ "$acked" -lt "$CASE_PAGES" ] && c_flight[$key]=$((${c_flight[$key]:-0} + 1))
	k_cycles[$cfs]=$((${k_cycles[$cfs]:-0} + 1))
	k_acked[$cfs]=$((${k_acked[$cfs]:-0} + cacked))
	k_lost[$cfs]=$((${k_lost[$cfs]:-0} + klost))
	verdict=ok
	if [ "$lost" != 0 ]; then
		verdict=FAIL
		failed=$((failed + 1))
	fi
	printf '%-4s %s: %s %s order=%s cfg=%s %s@%sms case acked=%s lost=%s | control(%s) acked=%s lost=%s | %s\n' \
		"$verdict" "$name" "$fs" "$mode" "$order" "$cfg" "$method" "$delay" "$acked" "$lost" "$cfs" \
		"$cacked" "$klost" "${info#info }"
done

echo
echo "case         cycles  in-flight  pages acked  lost"
for key in ext4/kernel xfs/kernel ext4/fault xfs/fault; do
	[ -n "${c_cycles[$key]:-}" ] || continue
	printf '%-12s %6s %10s %12s %5s\n' "$key" "${c_cycles[$key]}" "${c_flight[$key]:-0}" "${c_acked[$key]}" \
		"${c_lost[$key]}"
done
echo "control      cycles  pages acked  lost"
for f in ext4 xfs; do
	[ -n "${k_cycles[$f]:-}" ] || continue
	printf '%-12s %6s %12s %5s\n' "plain/$f" "${k_cycles[$f]}" "${k_acked[$f]}" "${k_lost[$f]}"
	if [ "${k_acked[$f]}" -gt 0 ] && [ "${k_lost[$f]}" = 0 ]; then
		echo "FAIL the plain control on $f lost nothing: the crash test could not have failed"
		failed=$((failed + 1))
	fi
done
echo "crash-suite: seed $SEED, $failed failure(s)"
[ "$failed" = 0 ]
