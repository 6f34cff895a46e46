#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# mkinitramfs.sh -- build the DAX guest's initramfs: busybox, kernel modules,
# mkfs.ext4/mkfs.xfs, the guest init and helper, and the given programs.
#
# Usage: tests/vm/mkinitramfs.sh CACHE_DIR OUT.cpio.gz [PROGRAM...]
#
# CACHE_DIR is the one prepared by setup.sh (kernel.env names the kernel).
# Each PROGRAM lands in the guest's /bin under its own name; it and every
# shared library ldd lists for it are copied, libraries at their host paths,
# plus an ld.so.cache, so dynamically linked programs (libpmem2, libuv, a
# libsyncmap from a build tree) run as on the host.
#
# Environment:
#   SMVM_EXTRA_FILES  space-separated SRC[:DEST] extra files (a dlopen()ed
#                     library, data); DEST defaults to SRC's path.  ELF files
#                     among them get their ldd dependencies too.
#   SMVM_EXTRA_MODULES space-separated kernel modules loaded after the usual
#                     ones, with their dependencies (dm_mod dm_flakey for
#                     tests/vm/faildev.sh).
#
# OUT is rebuilt only when an input changed (the hash of every input is kept
# in OUT.inputs); otherwise the script says so and exits.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Modules the guest loads, in an order busy-box insmod accepts; each one's
# dependencies (and soft pre-dependencies: the crc32c crypto driver that
# jbd2/ext4 need) are put before it by modprobe --show-depends.
# virtio_pci and virtio_pmem come last: the NVDIMMs' regions are numbered
# first, so they stay pmem0 and pmem1 when virtio-pmem devices are present.
WANT_MODULES=(crc32c_generic libcrc32c crc16 mbcache jbd2 ext4 xfs libnvdimm nd_btt nd_pmem nfit virtio_pci virtio_pmem)
# shellcheck disable=SC2206 # a list of module names, split on blanks
WANT_MODULES+=(${SMVM_EXTRA_MODULES:-})
TOOLS=(/sbin/mkfs.ext4 /sbin/mkfs.xfs)

say() { printf 'mkinitramfs: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

[ $# -ge 2 ] || { echo "usage: $0 CACHE_DIR OUT.cpio.gz [PROGRAM...]" >&2; exit 2; }
CACHE=$(cd "$1" && pwd) || die "no cache dir $1"
OUT=$2
shift 2
PROGRAMS=("$@")
[ -f "$CACHE/kernel.env" ] || die "$CACHE/kernel.env missing: run tests/vm/setup.sh $CACHE first"
# shellcheck source=/dev/null
. "$CACHE/kernel.env"
KMOD=$SMVM_KDIR/lib/modules/$SMVM_KVER
BUSYBOX=$(command -v busybox) || die "busybox not found (setup.sh installs busybox-static)"

for p in "${PROGRAMS[@]}"; do
	if [ ! -f "$p" ] || [ ! -x "$p" ]; then die "program $p is not an executable file"; fi
done

# module_paths -- the .ko files to load, in order, relative to KMOD.
module_paths() {
	local m line
	for m in "${WANT_MODULES[@]}"; do
		modprobe -d "$SMVM_KDIR" -S "$SMVM_KVER" --show-depends "$m" ||
			die "modprobe cannot resolve $m in $KMOD"
	done | while read -r line; do
		case $line in
		insmod\ *) line=${line#insmod }; line=${line%% *}; echo "${line#"$KMOD"/}" ;;
		builtin\ *) ;;
		*) die "unexpected modprobe output: $line" ;;
		esac
	done | sed 's|^\./||' | awk '!seen[$0]++'
}

# elf_libs FILE -- absolute paths of the shared objects FILE needs (with the
# dynamic loader); nothing for a static binary.
elf_libs() {
	local out
	if ! out=$(LC_ALL=C ldd "$1" 2>&1); then
		case $out in
		*"not a dynamic executable"* | *"statically linked"*) return 0 ;;
		*) die "ldd $1: $out" ;;
		esac
	fi
	case $out in *"statically linked"*) return 0 ;; esac
	if grep -q 'not found' <<<"$out"; then
		die "ldd $1: missing libraries: $(grep 'not found' <<<"$out" | tr -s ' \t' ' ')"
	fi
	awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$out"
}

# ko_name PATH -- the module's name in the guest: decompressed at build time,
# since busybox insmod may not decompress .ko.xz/.ko.zst/.ko.gz.
ko_name() {
	local m=${1%.xz}
	m=${m%.zst}
	echo "${m%.gz}"
}

is_elf() { [ "$(head -c 4 "$1" | od -An -c | tr -d ' ')" = '177ELF' ]; }

# Every input as "DEST SRC" (DEST = path inside the guest).
declare -a FILES=()
add() { FILES+=("$1 $2"); }
add_elf() { # DEST SRC
	local lib libs
	libs=$(elf_libs "$2") || exit 1 # die() in $(...) only ends the subshell
	add "$1" "$2"
	for lib in $libs; do add "$lib" "$lib"; done
}

add /bin/busybox "$BUSYBOX"
add /init "$HERE/guest/init"
add /bin/smvm "$HERE/guest/smvm"
[ -f /etc/mke2fs.conf ] && add /etc/mke2fs.conf /etc/mke2fs.conf
for t in "${TOOLS[@]}"; do add_elf "$t" "$(readlink -f "$t")"; done
mods=$(module_paths) || exit 1
mapfile -t MODULES <<<"$mods"
[ -n "$mods" ] || die "no modules resolved"
for m in "${MODULES[@]}"; do add "/lib/modules/$SMVM_KVER/$(ko_name "$m")" "$KMOD/$m"; done
for p in "${PROGRAMS[@]}"; do add_elf "/bin/$(basename "$p")" "$(readlink -f "$p")"; done
for e in ${SMVM_EXTRA_FILES:-}; do
	src=${e%%:*}
	dest=${e#*:}
	[ "$dest" != "$e" ] || dest=$src
	[ -f "$src" ] || die "extra file $src missing"
	if is_elf "$src"; then add_elf "$dest" "$(readlink -f "$src")"; else add "$dest" "$(readlink -f "$src")"; fi
done
mapfile -t FILES < <(printf '%s\n' "${FILES[@]}" | awk '!seen[$1]++')

# Rebuild only when something changed: the hash covers this script, every
# file's destination and content, and the kernel version.
inputs=$( {
	echo "kernel $SMVM_KVER"
	sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1
	for f in "${FILES[@]}"; do
		echo "${f%% *} $(sha256sum "${f#* }" | cut -d' ' -f1)"
	done
} | sha256sum | cut -d' ' -f1)
if [ -f "$OUT" ] && [ "$(cat "$OUT.inputs" 2>/dev/null)" = "$inputs" ]; then
	say "$OUT is up to date"
	exit 0
fi

mkdir -p "$(dirname "$OUT")"
STAGE=$(mktemp -d "$(dirname "$OUT")/.initramfs.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
say "building $OUT (kernel $SMVM_KVER, ${#MODULES[@]} modules, ${#PROGRAMS[@]} programs)"

mkdir -p "$STAGE"/{bin,sbin,dev,proc,sys,mnt,etc/smvm,smvm,tmp,lib64}
# The kernel opens /dev/console for init before devtmpfs is mounted.
mknod -m 600 "$STAGE/dev/console" c 5 1
for f in "${FILES[@]}"; do
	dest=$STAGE${f%% *}
	src=${f#* }
	mkdir -p "$(dirname "$dest")"
	case $src in
	*.ko.xz) xz -dc "$src" >"$dest" ;; # busybox insmod may not decompress
	*.ko.zst) zstd -qdc "$src" >"$dest" ;;
	*.ko.gz) gzip -dc "$src" >"$dest" ;;
	*) cp -L "$src" "$dest" ;;
	esac
done
for m in "${MODULES[@]}"; do ko_name "$m"; done >"$STAGE/etc/smvm/modules"
# Busybox applets as symlinks where no real binary sits.
"$BUSYBOX" --list | while read -r applet; do
	[ -e "$STAGE/bin/$applet" ] || [ -e "$STAGE/sbin/$applet" ] || ln -s busybox "$STAGE/bin/$applet"
done
chmod 755 "$STAGE/init" "$STAGE/bin/smvm"
# An ld.so.cache naming every library directory we filled, so a library
# that the host found through RUNPATH or LD_LIBRARY_PATH is found too.
find "$STAGE" -type f \( -name '*.so' -o -name '*.so.*' \) -printf '%h\n' | sed "s|^$STAGE||" | sort -u >"$STAGE/etc/ld.so.conf"
ldconfig -r "$STAGE"

(cd "$STAGE" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --owner=0:0 --quiet) |
	gzip -1 >"$OUT.new"
mv "$OUT.new" "$OUT"
echo "$inputs" >"$OUT.inputs"
say "wrote $OUT ($(du -k "$OUT" | cut -f1) KiB)"
