# SPDX-License-Identifier: MIT
# common.sh -- sourced by each preload test: a fresh ext4 (or xfs) on a loop device, in a private mount namespace
#
# Usage from a test script:  . common.sh "$@"   with arguments SHIM BINDIR ...
# Sets SHIM (the preload library), BIN (the test programs), MNT (the mounted
# filesystem).  A test that cannot get a loop device exits 77: ctest counts
# it as skipped, never as passed.  The filesystem goes away however the test
# ends: the trap unmounts it and removes the image, and a killed test's mount
# namespace takes its mount (and, by autoclear, the loop device) with it.

skip() {
	echo "SKIP: $*"
	exit 77
}

fail() {
	echo "FAIL: $*"
	exit 1
}

SHIM=$(readlink -f "$1")
BIN=$(readlink -f "$2")
[ -f "$SHIM" ] || fail "no shim at $1"

if [ "$(id -u)" != 0 ]; then
	skip "needs root for a loop device"
fi
for tool in unshare mkfs.ext4 mount umount; do
	command -v "$tool" >/dev/null || skip "no $tool"
done
if [ -z "${PL_IN_NS:-}" ]; then
	unshare -m --propagation private true 2>/dev/null || skip "no private mount namespace"
	PL_IN_NS=1 exec unshare -m --propagation private -- bash "$0" "$@"
fi

# The image is unlinked as soon as it is mounted and the mount lives in this
# namespace only, over /mnt: a test killed outright (a ctest timeout) leaves
# no file, no directory and, by autoclear, no loop device behind.
IMG=$(mktemp /dev/shm/syncmap-preload-XXXXXX)
MNT=/mnt
[ -d "$MNT" ] || MNT=$(mktemp -d /tmp/syncmap-preload-XXXXXX)
pl_cleanup() {
	cd /
	umount "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
	[ "$MNT" = /mnt ] || rmdir "$MNT" 2>/dev/null || true
	rm -f "$IMG"
}
trap pl_cleanup EXIT
trap 'exit 143' TERM INT

# PL_FSTYPE=xfs for a test that needs shared extents (reflink); xfs wants
# at least 300 MiB.
if [ "${PL_FSTYPE:-ext4}" = xfs ]; then
	command -v mkfs.xfs >/dev/null || skip "no mkfs.xfs"
	truncate -s "${PL_FS_MB:-512}M" "$IMG"
	mkfs.xfs -q -f -m reflink=1 "$IMG" >/dev/null 2>&1 || skip "mkfs.xfs -m reflink=1 failed"
else
	truncate -s "${PL_FS_MB:-256}M" "$IMG"
	mkfs.ext4 -q -F -b 4096 -m 0 "$IMG" >/dev/null 2>&1 || skip "mkfs.ext4 failed"
fi
mount -o loop "$IMG" "$MNT" 2>/dev/null || skip "cannot mount a loop device"
rm -f "$IMG"

# Run a command under the shim, with its counters printed at exit.
under_shim() {
	LD_PRELOAD="$SHIM" SYNCMAP_STATS=1 "$@"
}

# The value of a counter in a stats line: counter NAME FILE (last line wins).
counter() {
	grep -o "$1=[0-9]*" "$2" | tail -1 | cut -d= -f2
}
