#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# setup.sh -- install what the DAX guest needs and unpack its kernel into CACHE_DIR.
#
# Usage: tests/vm/setup.sh CACHE_DIR
#
# Idempotent: host packages are installed only if dpkg says they are missing;
# the guest kernel (the package linux-image-amd64 depends on) is downloaded
# and unpacked once, then pinned by CACHE_DIR/kernel.env.  A second run reads
# the marker and touches neither the network nor apt.  Set SMVM_KERNEL_REFRESH=1
# to resolve the kernel again (a newer Debian kernel is then unpacked beside
# the old one).
set -euo pipefail

PKGS=(qemu-system-x86 busybox-static e2fsprogs xfsprogs cpio kmod dmsetup)

say() { printf 'setup: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

[ $# -eq 1 ] || { echo "usage: $0 CACHE_DIR" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || die "must run as root (apt-get, depmod)"
mkdir -p "$1"
CACHE=$(cd "$1" && pwd)
export DEBIAN_FRONTEND=noninteractive

APTLOG=$CACHE/setup-apt.log
# apt -- run an apt command with its chatter in APTLOG, shown if it fails.
apt() {
	if ! "$@" >>"$APTLOG" 2>&1; then
		say "failed: $* (last lines of $APTLOG:)"
		tail -n 20 "$APTLOG" >&2
		return 1
	fi
}

apt_updated=0
apt_update() {
	[ "$apt_updated" -eq 1 ] && return 0
	say "apt-get update"
	apt apt-get update
	apt_updated=1
}

install_packages() {
	local missing=() p
	for p in "${PKGS[@]}"; do
		dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
	done
	if [ ${#missing[@]} -eq 0 ]; then
		say "host packages present: ${PKGS[*]}"
		return 0
	fi
	apt_update
	say "apt-get install --no-install-recommends ${missing[*]}"
	apt apt-get install -y --no-install-recommends "${missing[@]}"
}

# kernel_package -- name of the image package linux-image-amd64 depends on,
# e.g. linux-image-6.1.0-56-amd64 (the meta package itself has no kernel).
kernel_package() {
	apt-cache depends linux-image-amd64 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n 1
}

# kernel_ok DIR VERSION -- the unpacked tree is complete (the marker is
# written last, so an interrupted run is redone).
kernel_ok() {
	[ -f "$1/.unpacked" ] && [ -f "$1/boot/vmlinuz-$2" ] && [ -f "$1/lib/modules/$2/modules.dep" ]
}

fetch_kernel() {
	local pkg ver dir deb
	if [ -f "$CACHE/kernel.env" ] && [ "${SMVM_KERNEL_REFRESH:-0}" != 1 ]; then
		# shellcheck source=/dev/null
		. "$CACHE/kernel.env"
		if kernel_ok "${SMVM_KDIR:-/nonexistent}" "${SMVM_KVER:-}"; then
			say "guest kernel cached: $SMVM_KVER ($SMVM_KDIR)"
			return 0
		fi
		say "kernel.env names an incomplete tree: redoing it"
	fi
	pkg=$(kernel_package)
	if [ -z "$pkg" ]; then
		apt_update
		pkg=$(kernel_package)
	fi
	[ -n "$pkg" ] || die "apt-cache depends linux-image-amd64 names no linux-image package"
	ver=${pkg#linux-image-}
	dir="$CACHE/kernel/$ver"
	say "guest kernel: $pkg (linux-image-amd64 depends on it)"
	if ! kernel_ok "$dir" "$ver"; then
		mkdir -p "$CACHE/debs"
		deb=$(find "$CACHE/debs" -maxdepth 1 -name "${pkg}_*.deb" | head -n 1)
		if [ -z "$deb" ]; then
			say "apt-get download $pkg -> $CACHE/debs"
			# apt-get download writes into the current directory (as root:
			# the _apt sandbox user may not write there); a stale list (the
			# version left the mirror) is fixed by one update.
			download() { (cd "$CACHE/debs" && apt apt-get download -o APT::Sandbox::User=root "$pkg"); }
			download || { apt_update && download; }
			deb=$(find "$CACHE/debs" -maxdepth 1 -name "${pkg}_*.deb" | head -n 1)
			[ -n "$deb" ] || die "download of $pkg produced no .deb"
		else
			say "using downloaded $(basename "$deb")"
		fi
		rm -rf "$dir"
		mkdir -p "$dir"
		say "dpkg -x $(basename "$deb") $dir"
		dpkg -x "$deb" "$dir"
		# The .deb ships no modules.dep; depmod -b writes it for the tree.
		say "depmod -b $dir $ver"
		depmod -b "$dir" "$ver"
		touch "$dir/.unpacked"
		# The unpacked tree is the cache from now on; the .deb is 70 MB.
		rm -f "$deb"
	fi
	kernel_ok "$dir" "$ver" || die "kernel tree $dir is incomplete"
	printf 'SMVM_KVER=%q\nSMVM_KDIR=%q\n' "$ver" "$dir" >"$CACHE/kernel.env.new"
	mv "$CACHE/kernel.env.new" "$CACHE/kernel.env"
	say "wrote $CACHE/kernel.env"
}

install_packages
fetch_kernel
say "done: cache $CACHE"
