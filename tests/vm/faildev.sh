#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# faildev.sh -- a device that fails writes, under page-cache FAULT mode, in the DAX guest.
#
# Usage: tests/vm/faildev.sh CACHE_DIR FAILDEV [FAILDEV-MUTANT...]
#
# One boot.  On ext4 (pmem0) and on xfs (pmem1) the pmem device is put behind
# a device-mapper device (dm-flakey targets that never go down: not DAX), the
# filesystem made on it and mounted dax=never: the kernel refuses MAP_SYNC,
# the library picks FAULT mode and persists by msync.  faildev (faildev.c)
# then runs once per variant, each in a fresh file: it writes and persists
# on the healthy device, switches the table so that the file's blocks are
# dm-error targets, and checks (a) syncmap_persist returns -1/EIO, (b) a
# first write to a fresh grain gets SIGBUS at its address (twice), (c) the
# program's own fsync still returns -1/EIO; a witness description shows the
# device really failed.  The healthy table is loaded again after each one.
#
# Variants: "plain" (FAILDEV on mmap(2) + msync: the control, what the
# kernel reports; it must show the device failing and, as plain mmap does,
# a first store that returns), "lib" (FAILDEV: the library as it ships;
# every check must pass), and each FAILDEV-MUTANT (faildev-NAME, built on a
# copy of the library with the defect NAME of lib/testpoint.h), which must
# fail the check it defeats: persist_no_sync (a), skip_grain_msync (b),
# sync_on_programs_description (c).
#
# Writes a result file (FAILDEV_RESULTS, default
# CACHE_DIR/faildev/results/faildev-DATE.txt) with the command, commit,
# guest kernel, QEMU, the programs' hashes, every guest result line and the
# verdicts.  Ends with "failing-device: N failure(s)".
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
COMMAND="$0 $*"
[ $# -ge 2 ] || { echo "usage: $0 CACHE_DIR FAILDEV [FAILDEV-MUTANT...]" >&2; exit 2; }
mkdir -p "$1"
CACHE=$(cd "$1" && pwd)
shift
PROGS=("$@")
WORK=$CACHE/faildev
mkdir -p "$WORK/results"
RESULTS=${FAILDEV_RESULTS:-$WORK/results/faildev-$(date +%Y%m%d-%H%M%S).txt}

# The check each mutant defeats.
declare -A TARGET=([persist_no_sync]=a [skip_grain_msync]=b [sync_on_programs_description]=c)

"$HERE/setup.sh" "$CACHE" >/dev/null
DMSETUP=$(command -v dmsetup) || { echo "faildev: no dmsetup on the host (setup.sh installs it)" >&2; exit 2; }
SMVM_EXTRA_MODULES="dm_mod dm_flakey" \
	"$HERE/mkinitramfs.sh" "$CACHE" "$WORK/initramfs.cpio.gz" "${PROGS[@]}" "$DMSETUP" >/dev/null

# Variant list for the guest: TAG PROGRAM MODE.
variants="plain $(basename "${PROGS[0]}") plain
lib $(basename "${PROGS[0]}") lib"
for p in "${PROGS[@]:1}"; do
	m=$(basename "$p")
	m=${m#faildev-}
	[ -n "${TARGET[$m]:-}" ] || { echo "faildev: $p: no check is named for mutant $m" >&2; exit 2; }
	variants="$variants
$m $(basename "$p") lib"
done

script="export DM_DISABLE_UDEV=1
for fs in ext4 xfs; do
	case \$fs in ext4) dev=/dev/pmem0 ;; *) dev=/dev/pmem1 ;; esac
	name=smfail-\$fs
	echo \"0 \$(cat /sys/block/\${dev#/dev/}/size) flakey \$dev 0 1000000 0\" >/tmp/\$name.healthy
	dmsetup --noudevsync create \$name /tmp/\$name.healthy
	SMVM_EXT4_DEV=/dev/mapper/\$name SMVM_XFS_DEV=/dev/mapper/\$name smvm mkfs-\$fs dax=never
	for d in /sys/block/dm-*; do
		[ \"\$(cat \$d/dm/name)\" != \$name ] || smvm say \"faildev \$fs device \$name \${d##*/} dax=\$(cat \$d/queue/dax)\"
	done
	echo '$variants' | while read -r tag prog mode; do
		mkdir -p /mnt/\$fs/\$tag
		\$prog \$fs \$tag \$mode /mnt/\$fs/\$tag \$name \$dev || smvm say \"faildev \$fs \$tag exit \$?\"
		dmsetup --noudevsync load \$name /tmp/\$name.healthy
		dmsetup --noudevsync resume \$name
	done
done"

exec > >(tee "$RESULTS") 2>&1
commit=$(git -C "$HERE" rev-parse HEAD 2>/dev/null || echo unknown)
[ -z "$(git -C "$HERE" status --porcelain --untracked-files=no 2>/dev/null)" ] || commit="$commit+uncommitted"
# shellcheck source=/dev/null
. "$CACHE/kernel.env"
echo "# command: $COMMAND"
echo "# cwd: $(pwd)"
echo "# commit: $commit"
echo "# guest kernel: $SMVM_KVER  qemu: $(${SMVM_QEMU:-qemu-system-x86_64} --version | head -n 1)"
echo "# host: $(uname -r), $(nproc) CPUs; $(date -u +%Y-%m-%dT%H:%M:%SZ)"
for p in "${PROGS[@]}"; do echo "# program: $p sha256 $(sha256sum "$p" | cut -c1-16)"; done

OUT=$("$HERE/vm.sh" "$CACHE" --initrd "$WORK/initramfs.cpio.gz" --images "$WORK/images" --fresh \
	--log "$WORK/serial.log" --status "$WORK/status" --timeout 600 --run "$script") || {
	echo "$OUT" | sed 's/^/guest: /'
	echo "failing-device: the guest run failed (log $WORK/serial.log)"
	echo "failing-device: 1 failure(s)"
	exit 1
}
echo "$OUT" | grep -E '^faildev ' | sed 's/^/guest: /'

failed=0
verdict() { # FS TAG ok|FAIL TEXT
	printf '%-4s %-5s %-29s %s\n' "$3" "$1" "$2" "$4"
	[ "$3" = ok ] || failed=$((failed + 1))
}
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }
for fs in ext4 xfs; do
	while read -r tag _ _; do
		line=$(grep -E "^faildev $fs $tag result " <<<"$OUT" || true)
		errs=$(grep -E "^faildev $fs $tag (error|exit)" <<<"$OUT" || true)
		if [ -z "$line" ] || [ -n "$errs" ]; then
			verdict "$fs" "$tag" FAIL "no result (${errs:-no line})"
			continue
		fi
		fine=$(field fine "$line") a=$(field a "$line") b=$(field b "$line") c=$(field c "$line")
		dev=$(field dev "$line")
		if [ "$dev" != failed ] || [ "$fine" != ok ]; then
			verdict "$fs" "$tag" FAIL "the run shows nothing: device $dev, healthy phase $fine"
			continue
		fi
		case $tag in
		plain)
			# The kernel's own answer: EIO at msync and fsync, a first
			# store that returns (what the library's SIGBUS replaces).
			if [ "$a" = ok ] && [ "$b" = FAIL ] && [ "$c" = ok ]; then
				verdict "$fs" "$tag" ok "control: msync and fsync EIO, the first store returned"
			else
				verdict "$fs" "$tag" FAIL "control: a=$a b=$b c=$c, wanted ok FAIL ok"
			fi
			;;
		lib)
			if [ "$a" = ok ] && [ "$b" = ok ] && [ "$c" = ok ]; then
				verdict "$fs" "$tag" ok "persist EIO, first write SIGBUS, program's fsync EIO"
			else
				verdict "$fs" "$tag" FAIL "a=$a b=$b c=$c"
			fi
			;;
		*)
			want=${TARGET[$tag]}
			if [ "$(field "$want" "$line")" = FAIL ]; then
				verdict "$fs" "$tag" ok "mutant caught by ($want) (a=$a b=$b c=$c)"
			else
				verdict "$fs" "$tag" FAIL "mutant missed: ($want) passed (a=$a b=$b c=$c)"
			fi
			;;
		esac
	done <<<"$variants"
done
echo "failing-device: guest kernel $SMVM_KVER, results in $RESULTS"
echo "failing-device: $failed failure(s)"
[ "$failed" = 0 ]
