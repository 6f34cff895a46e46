#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# vm.sh -- boot the DAX guest once, run a script in it, report its result lines.
#
# Usage: tests/vm/vm.sh CACHE_DIR (--run 'CMDS' | --script FILE) [options]
#
#   --run CMDS          guest shell commands (busybox sh -e), e.g.
#                       'smvm mkfs; mapsync_probe probe /mnt/ext4'
#   --script FILE       the same, from a file
#   --initrd FILE       initramfs from mkinitramfs.sh (CACHE_DIR/initramfs.cpio.gz)
#   --images DIR        pmem image files pmem0.img, pmem1.img (CACHE_DIR/images)
#   --fresh             new zeroed images (the default)
#   --reuse             boot on the existing images, as left by the last run
#                       (the check boot of a crash pair)
#   --timeout SEC       SIGKILL QEMU and fail after SEC s (SMVM_TIMEOUT, 300)
#   --kill-on TEXT      SIGKILL QEMU when the guest prints the line "SMVM: TEXT"
#   --kill-delay-ms D   ... D ms after it; D is N (exactly) or A-B (uniform
#                       random in [A, B]); default 0
#   --kill-after SEC    SIGKILL QEMU SEC s (decimal) after it started
#   --expect-crash      success means the guest crashed (smvm crash, or a
#                       kill above, which implies this); finishing is a failure
#   --log FILE          serial console log (CACHE_DIR/serial.log)
#   --status FILE       write key=value lines: outcome, rc, boot_ms, ...
#   --append ARGS       extra kernel command line
#   --virtio-pmem       two virtio-pmem devices as well (vpmem0.img 256M,
#                       vpmem1.img 512M in the images dir): DAX without
#                       MAP_SYNC; the guest links them as /dev/vpmem0, vpmem1
#   -v, --verbose       copy the serial console to stderr (SMVM_VERBOSE=1)
#
# Stdout: the payload of every "SMVM: " line of the guest, one per line, as
# it arrives.  Exit status: 0 expected end (clean finish with rc 0, or the
# expected crash), 1 the run script failed (its rc is in the status file),
# 2 usage/host error, 3 the guest could not be set up (SMVM-FAIL), 4 timeout,
# 5 unexpected end (crash or kernel panic when none was expected, finished
# when a crash was expected, QEMU died).
#
# Environment: SMVM_QEMU (qemu-system-x86_64), SMVM_QEMU_ARGS (extra QEMU
# arguments, split at blanks), SMVM_MEM (512M),
# SMVM_PMEM0_SIZE (256M, ext4), SMVM_PMEM1_SIZE (512M, xfs: mkfs.xfs wants
# >= 300 MB), SMVM_VPMEM0_SIZE, SMVM_VPMEM1_SIZE (the same for virtio-pmem),
# SMVM_VIRTIO_PMEM=1 (as --virtio-pmem), SMVM_TIMEOUT, SMVM_VERBOSE.
set -euo pipefail

say() { printf 'vm.sh: %s\n' "$*" >&2; }
usage() { # [EXIT]: the header above, to stderr on error
	local out=2
	[ "${1:-2}" = 0 ] && out=1
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&"$out"
	exit "${1:-2}"
}
die() { say "error: $*"; exit 2; }

CACHE="" INITRD="" SCRIPT="" CMDS="" IMAGES="" FRESH=1 EXPECT_CRASH=0
TIMEOUT=${SMVM_TIMEOUT:-300} KILL_ON="" KILL_DELAY=0 KILL_AFTER="" LOG="" STATUS=""
APPEND="" VERBOSE=${SMVM_VERBOSE:-0} HAVE_CMDS=0 VIRTIO=${SMVM_VIRTIO_PMEM:-0}
while [ $# -gt 0 ]; do
	case $1 in
	--run) CMDS=$2 HAVE_CMDS=1; shift ;;
	--script) SCRIPT=$2; shift ;;
	--initrd) INITRD=$2; shift ;;
	--images) IMAGES=$2; shift ;;
	--fresh) FRESH=1 ;;
	--reuse) FRESH=0 ;;
	--timeout) TIMEOUT=$2; shift ;;
	--kill-on) KILL_ON=$2 EXPECT_CRASH=1; shift ;;
	--kill-delay-ms) KILL_DELAY=$2; shift ;;
	--kill-after) KILL_AFTER=$2 EXPECT_CRASH=1; shift ;;
	--expect-crash) EXPECT_CRASH=1 ;;
	--log) LOG=$2; shift ;;
	--status) STATUS=$2; shift ;;
	--append) APPEND=$2; shift ;;
	--virtio-pmem) VIRTIO=1 ;;
	-v | --verbose) VERBOSE=1 ;;
	-h | --help) usage 0 ;;
	-*) die "unknown option $1 (--help)" ;;
	*) [ -z "$CACHE" ] || die "one CACHE_DIR only"; CACHE=$1 ;;
	esac
	shift
done
[ -n "$CACHE" ] || usage
CACHE=$(cd "$CACHE" && pwd) || die "no cache dir"
[ -f "$CACHE/kernel.env" ] || die "$CACHE/kernel.env missing: run tests/vm/setup.sh $CACHE"
# shellcheck source=/dev/null
. "$CACHE/kernel.env"
KERNEL=$SMVM_KDIR/boot/vmlinuz-$SMVM_KVER
INITRD=${INITRD:-$CACHE/initramfs.cpio.gz}
IMAGES=${IMAGES:-$CACHE/images}
LOG=${LOG:-$CACHE/serial.log}
QEMU=${SMVM_QEMU:-qemu-system-x86_64}
[ -f "$KERNEL" ] || die "no kernel $KERNEL"
[ -f "$INITRD" ] || die "no initramfs $INITRD (tests/vm/mkinitramfs.sh)"
if [ -n "$SCRIPT" ]; then
	[ "$HAVE_CMDS" = 0 ] || die "--run and --script exclude each other"
	CMDS=$(cat "$SCRIPT") || die "cannot read $SCRIPT"
elif [ "$HAVE_CMDS" = 0 ]; then
	die "nothing to run: --run CMDS or --script FILE"
fi
[[ $TIMEOUT =~ ^[0-9]+$ ]] || die "--timeout wants whole seconds"
[[ $KILL_DELAY =~ ^[0-9]+(-[0-9]+)?$ ]] || die "--kill-delay-ms wants N or A-B"
[ "${KILL_DELAY#*-}" -ge "${KILL_DELAY%-*}" ] || die "--kill-delay-ms $KILL_DELAY: empty range"
[ -z "$KILL_AFTER" ] || [[ $KILL_AFTER =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--kill-after wants seconds"
command -v "$QEMU" >/dev/null || die "$QEMU not found (tests/vm/setup.sh installs it)"

# sec_to_us 1.25 -> 1250000
sec_to_us() {
	local i=${1%%.*} f=000000
	[ "$i" != "$1" ] && f=${1#*.}000000
	echo $((10#$i * 1000000 + 10#${f:0:6}))
}

# Images: share=on makes the file hold exactly what the guest stored to its
# pmem, so a --reuse boot sees the state at the moment of the crash.
mkdir -p "$IMAGES"
IMG0=$IMAGES/pmem0.img IMG1=$IMAGES/pmem1.img
SIZE0=${SMVM_PMEM0_SIZE:-256M} SIZE1=${SMVM_PMEM1_SIZE:-512M}
VIMG0=$IMAGES/vpmem0.img VIMG1=$IMAGES/vpmem1.img
VSIZE0=${SMVM_VPMEM0_SIZE:-256M} VSIZE1=${SMVM_VPMEM1_SIZE:-512M}
if [ "$FRESH" = 1 ]; then
	rm -f "$IMG0" "$IMG1" "$VIMG0" "$VIMG1"
	truncate -s "$SIZE0" "$IMG0"
	truncate -s "$SIZE1" "$IMG1"
	if [ "$VIRTIO" = 1 ]; then
		truncate -s "$VSIZE0" "$VIMG0"
		truncate -s "$VSIZE1" "$VIMG1"
	fi
else
	if [ ! -f "$IMG0" ] || [ ! -f "$IMG1" ]; then die "--reuse: no images in $IMAGES"; fi
	SIZE0=$(stat -c %s "$IMG0") SIZE1=$(stat -c %s "$IMG1")
	if [ "$VIRTIO" = 1 ]; then
		if [ ! -f "$VIMG0" ] || [ ! -f "$VIMG1" ]; then die "--reuse: no virtio-pmem images in $IMAGES"; fi
		VSIZE0=$(stat -c %s "$VIMG0") VSIZE1=$(stat -c %s "$VIMG1")
	fi
fi
# virtio-pmem: memory devices like the NVDIMMs (slots for four), DAX without
# MAP_SYNC in the guest: its flush is a request to QEMU, which fsyncs the
# image.  smvm.vpmem tells the guest init to wait for them.
SLOTS=2 VIRTIO_ARGS=()
if [ "$VIRTIO" = 1 ]; then
	SLOTS=4
	# shellcheck disable=SC2054 # QEMU's commas, not array separators
	VIRTIO_ARGS=(-object "memory-backend-file,id=vmem0,share=on,mem-path=$VIMG0,size=$VSIZE0"
		-device virtio-pmem-pci,memdev=vmem0,id=vpmem0
		-object "memory-backend-file,id=vmem1,share=on,mem-path=$VIMG1,size=$VSIZE1"
		-device virtio-pmem-pci,memdev=vmem1,id=vpmem1)
	APPEND="smvm.vpmem=2 $APPEND"
fi

# Run directories left by a vm.sh that was itself SIGKILLed (its EXIT trap
# never ran): its QEMU is killed, if it still runs, and the directory
# removed.  A run whose vm.sh is alive is left alone.  The QEMU is the
# process the pidfile names only if its command line names this run
# directory (a pid may have been reused since).  Without an owner file (an
# older vm.sh), the old rule: removed once its QEMU is gone, or at 10 minutes.
for old in "$CACHE"/run.*; do
	[ -d "$old" ] || continue
	if [ -f "$old/owner" ] && kill -0 "$(cat "$old/owner")" 2>/dev/null; then
		continue
	fi
	if [ -f "$old/qemu.pid" ]; then
		qpid=$(cat "$old/qemu.pid")
		if [ -f "$old/owner" ] && tr '\0' ' ' <"/proc/$qpid/cmdline" 2>/dev/null | grep -qF "$old/"; then
			kill -KILL "$qpid" 2>/dev/null || true
		fi
		kill -0 "$qpid" 2>/dev/null || rm -rf "$old"
	elif [ -f "$old/owner" ] || [ -n "$(find "$old" -maxdepth 0 -mmin +10)" ]; then
		rm -rf "$old"
	fi
done
RUN=$(mktemp -d "$CACHE/run.XXXXXX")
echo $$ >"$RUN/owner"
QPID=""
# shellcheck disable=SC2317 # called by the trap
cleanup() {
	if [ -n "$QPID" ] && kill -0 "$QPID" 2>/dev/null; then kill -KILL "$QPID" 2>/dev/null || true; fi
	rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The run script travels in a second, gzipped cpio appended to the base
# initramfs: the kernel unpacks concatenated archives in order, so the base
# stays cached and each run costs one small archive.
mkdir -p "$RUN/root/smvm"
printf '%s\n' "$CMDS" >"$RUN/root/smvm/run.sh"
(cd "$RUN/root" && find . -mindepth 1 | cpio -o -H newc --owner=0:0 --quiet) | gzip -1 >"$RUN/run.cpio.gz"
cat "$INITRD" "$RUN/run.cpio.gz" >"$RUN/initrd"

read -ra QEMU_EXTRA <<<"${SMVM_QEMU_ARGS:-}"
mkfifo "$RUN/serial"
mkdir -p "$(dirname "$LOG")"
: >"$LOG"
exec {logfd}>>"$LOG"
T0=${EPOCHREALTIME/./}
# -smp 1: under TCG a second vCPU only slows the boot.  -cpu max: clwb and
# clflushopt exist in the guest.  panic=-1 with -no-reboot: a guest panic or
# sysrq-b ends QEMU at once, so the host sees the end.
"$QEMU" -accel tcg -cpu max -smp 1 -machine pc,nvdimm=on \
	-m "${SMVM_MEM:-512M},slots=$SLOTS,maxmem=4G" \
	-object "memory-backend-file,id=mem0,share=on,mem-path=$IMG0,size=$SIZE0" \
	-device nvdimm,id=nvdimm0,memdev=mem0 \
	-object "memory-backend-file,id=mem1,share=on,mem-path=$IMG1,size=$SIZE1" \
	-device nvdimm,id=nvdimm1,memdev=mem1 \
	"${VIRTIO_ARGS[@]}" \
	-kernel "$KERNEL" -initrd "$RUN/initrd" \
	-append "console=ttyS0 panic=-1 loglevel=4 $APPEND" \
	-nodefaults -display none -serial stdio -no-reboot \
	-pidfile "$RUN/qemu.pid" "${QEMU_EXTRA[@]}" \
	</dev/null >"$RUN/serial" 2>"$RUN/qemu.err" &
QPID=$!
exec {serfd}<"$RUN/serial"

DEADLINE=$((T0 + TIMEOUT * 1000000))
KILL_AT=""
[ -n "$KILL_AFTER" ] && KILL_AT=$((T0 + $(sec_to_us "$KILL_AFTER")))
KILLED=0 QKILLED=0 TIMED_OUT=0 DONE_RC="" FAIL_MSG="" SYSRQ=0 PANIC=0 BOOT_MS="" GUEST_UP="" DELAY_MS="" MARK_MS=""

# kill_qemu -- SIGKILL QEMU.  It is disowned first: bash would otherwise print
# a "Killed" job notice on stderr whenever it happens to reap it.
kill_qemu() {
	disown "$QPID" 2>/dev/null || true
	kill -KILL "$QPID" 2>/dev/null && QKILLED=1
}

# on_line LINE -- log it, pass results on, note what tells how the run ends.
on_line() {
	local line=${1%$'\r'}
	printf '%s\n' "$line" >&"$logfd"
	[ "$VERBOSE" = 1 ] && printf '%s\n' "$line" >&2
	case $line in
	*"SMVM: "*)
		local msg=${line#*SMVM: }
		printf '%s\n' "$msg"
		if [ -n "$KILL_ON" ] && [ -z "$MARK_MS" ] && [ "$msg" = "$KILL_ON" ]; then
			local now=${EPOCHREALTIME/./} a=${KILL_DELAY%-*} b=${KILL_DELAY#*-}
			MARK_MS=$(((now - T0) / 1000))
			DELAY_MS=$((a + SRANDOM % (b - a + 1)))
			KILL_AT=$((now + DELAY_MS * 1000))
		fi
		;;
	*"SMVM-INIT: ready uptime="*)
		BOOT_MS=$(((${EPOCHREALTIME/./} - T0) / 1000))
		GUEST_UP=${line##*uptime=}
		;;
	*"SMVM-DONE: rc="*) DONE_RC=${line##*rc=} ;;
	*"SMVM-FAIL: "*) FAIL_MSG=${line#*SMVM-FAIL: } ;;
	esac
	# On their own: the kernel's message can land in the middle of a line
	# the program was writing ("SMVM: ack control 56[ 10.58] sysrq: Resetting").
	case $line in
	*"sysrq: Resetting"* | *"SysRq : Resetting"*) SYSRQ=1 ;;
	*"Kernel panic - not syncing"*) PANIC=1 ;;
	esac
}

partial=""
while :; do
	now=${EPOCHREALTIME/./}
	if [ -n "$KILL_AT" ] && [ "$now" -ge "$KILL_AT" ]; then
		KILL_AT=""
		kill_qemu && KILLED=1
	fi
	if [ "$TIMED_OUT" = 0 ] && [ "$now" -ge "$DEADLINE" ]; then
		TIMED_OUT=1
		kill_qemu || true
	fi
	# Wake at least every 0.2 s, and on time for a pending kill.
	wait_us=200000
	[ -n "$KILL_AT" ] && [ $((KILL_AT - now)) -lt "$wait_us" ] && wait_us=$((KILL_AT - now))
	[ "$wait_us" -lt 1000 ] && wait_us=1000
	chunk=""
	if IFS= read -r -t "0.$(printf '%06d' "$wait_us")" -u "$serfd" chunk; then
		on_line "$partial$chunk"
		partial=""
	else
		st=$?
		if [ "$st" -gt 128 ]; then
			partial+=$chunk # timed out: keep the part of a line read so far
			continue
		fi
		[ -n "$partial$chunk" ] && on_line "$partial$chunk"
		break # EOF: QEMU is gone
	fi
done
QRC=0
if [ "$QKILLED" = 1 ]; then QRC=137; else wait "$QPID" || QRC=$?; fi
QPID=""
END_MS=$(((${EPOCHREALTIME/./} - T0) / 1000))

if [ "$TIMED_OUT" = 1 ]; then outcome=timeout
elif [ -n "$FAIL_MSG" ]; then outcome=bootfail
elif [ "$KILLED" = 1 ]; then outcome=killed
elif [ -n "$DONE_RC" ]; then outcome="done"
elif [ "$PANIC" = 1 ]; then outcome=panic
elif [ "$SYSRQ" = 1 ]; then outcome=crashed
else outcome=died
fi
case $outcome in
timeout) rc=4 ;;
bootfail) rc=3 ;;
killed | crashed) if [ "$EXPECT_CRASH" = 1 ]; then rc=0; else rc=5; fi ;;
done)
	if [ "$DONE_RC" != 0 ]; then rc=1
	elif [ "$EXPECT_CRASH" = 1 ]; then rc=5
	else rc=0
	fi
	;;
*) rc=5 ;;
esac

if [ -n "$STATUS" ]; then
	{
		echo "outcome=$outcome"
		echo "exit=$rc"
		echo "rc=$DONE_RC"
		echo "boot_ms=$BOOT_MS"
		echo "guest_uptime_at_ready=$GUEST_UP"
		echo "total_ms=$END_MS"
		echo "marker_ms=$MARK_MS"
		echo "kill_delay_ms=$DELAY_MS"
		echo "qemu_exit=$QRC"
		echo "fail=$FAIL_MSG"
	} >"$STATUS"
fi
msg="outcome=$outcome boot=${BOOT_MS:-?}ms total=${END_MS}ms"
[ -n "$DONE_RC" ] && msg+=" rc=$DONE_RC"
[ -n "$MARK_MS" ] && msg+=" marker_at=${MARK_MS}ms kill_delay=${DELAY_MS}ms"
say "$msg"
if [ "$rc" != 0 ]; then
	[ -n "$FAIL_MSG" ] && say "guest setup failed: $FAIL_MSG"
	[ "$TIMED_OUT" = 1 ] && say "timeout after ${TIMEOUT}s: QEMU killed"
	say "last lines of the serial console ($LOG):"
	tail -n 30 "$LOG" | sed 's/^/  | /' >&2
	[ -s "$RUN/qemu.err" ] && sed 's/^/  qemu: /' "$RUN/qemu.err" >&2
fi
exit "$rc"
