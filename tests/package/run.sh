#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# run.sh -- the Debian packages, as a distribution would use them: build them
# from a clean configure (prefix /usr, no tests, no examples), check them with
# lintian (no errors), install them, build the consumer against /usr (C, C++,
# pkg-config, find_package, the static archive), run syncmap-info and a
# program under syncmap-run, then remove them again.
# Usage: run.sh SOURCE_DIR.  Exit 0 pass, 1 fail, 77 skip (not root, or the
# packages are installed already: this test does not touch a system's own).
set -euo pipefail
src=$(cd "$1" && pwd)
say() { printf 'package: %s\n' "$*"; }
[ "$(id -u)" = 0 ] || { say "SKIP: needs root (apt-get install)"; exit 77; }
for p in libsyncmap0 libsyncmap-dev syncmap-tools; do
	if dpkg -s "$p" >/dev/null 2>&1; then
		say "SKIP: $p is installed on this machine already; not replacing it"
		exit 77
	fi
done
for tool in cpack lintian dpkg-shlibdeps; do
	command -v "$tool" >/dev/null || { say "FAIL: $tool is missing (scripts/deps.sh installs it)"; exit 1; }
done
work=$(mktemp -d /tmp/syncmap-package-XXXXXX)
installed=0
cleanup() {
	if [ "$installed" = 1 ]; then
		DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq libsyncmap0 libsyncmap-dev syncmap-tools >/dev/null 2>&1 || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

say "configure and build (prefix /usr, tests and examples off)"
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr \
	-DSYNCMAP_BUILD_TESTS=OFF -DSYNCMAP_BUILD_BENCH=OFF -DSYNCMAP_BUILD_EXAMPLES=OFF >"$work/configure.log"
cmake --build "$work/build" -j 2 >"$work/build.log" 2>&1 || { tail -n 30 "$work/build.log"; exit 1; }
(cd "$work/build" && cpack -G DEB >"$work/cpack.log" 2>&1) || { tail -n 30 "$work/cpack.log"; exit 1; }
debs=("$work"/build/packages/*.deb)
[ ${#debs[@]} = 3 ] || { say "FAIL: expected 3 packages, got: ${debs[*]}"; exit 1; }
for d in "${debs[@]}"; do say "built $(basename "$d")"; done

lintian --allow-root "${debs[@]}" >"$work/lintian.log" 2>&1 || true
if grep -q '^E:' "$work/lintian.log"; then
	say "FAIL: lintian reports errors:"
	grep '^E:' "$work/lintian.log"
	exit 1
fi
say "lintian: no errors ($(grep -c '^W:' "$work/lintian.log" || true) warnings)"

installed=1
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${debs[@]}" >"$work/apt.log" 2>&1 ||
	{ tail -n 20 "$work/apt.log"; exit 1; }
say "installed: $(dpkg-query -W -f='${Package} ${Version}, ' libsyncmap0 libsyncmap-dev syncmap-tools)"

# The consumer against /usr: nothing from the build tree on any path.
cd "$work"
cons=$src/tests/consumer
flags=$(pkg-config --cflags --libs syncmap)
cc -Wall -Wextra -Werror -o pc_c "$cons/consumer.c" $flags
c++ -Wall -Wextra -Werror -o pc_cxx "$cons/consumer.cpp" $flags
cmake -S "$cons" -B cm >/dev/null
cmake --build cm >/dev/null
# The static archive: linked explicitly, with what pkg-config says it needs.
libdir=$(realpath "$(pkg-config --variable=libdir syncmap)")
cc -Wall -Wextra -Werror -o static_c "$cons/consumer.c" -I/usr/include "$libdir/libsyncmap.a" \
	$(pkg-config --libs libpmem2 libuv) -lpthread
ver=$(pkg-config --modversion syncmap)
for exe in pc_c pc_cxx cm/consumer_c cm/consumer_cxx static_c; do
	./"$exe" "$work/$(basename "$exe").dat" | tee out.txt
	grep -q "libsyncmap $ver," out.txt || { say "FAIL: $exe runs with another libsyncmap than $ver"; exit 1; }
done
used=$(ldd pc_c | sed -n 's/^[[:space:]]*libsyncmap\.so\.0 => \([^ ]*\).*/\1/p')
[ -n "$used" ] && [ "$(realpath "$used")" = "$(realpath "$libdir/libsyncmap.so.0")" ] ||
	{ say "FAIL: pc_c loads libsyncmap.so.0 from '$used', not $libdir"; exit 1; }
if nm -g --defined-only "$libdir/libsyncmap.a" | awk 'NF == 3 {print $3}' | grep -v '^syncmap_'; then
	say "FAIL: the installed libsyncmap.a exports the symbols above beyond syncmap_*"
	exit 1
fi
say "consumer: C, C++, pkg-config, find_package and the static archive built and ran against /usr"

syncmap-info "$work" >info.txt
grep -q 'syncmap mode' info.txt || { say "FAIL: syncmap-info printed no mode:"; cat info.txt; exit 1; }
say "syncmap-info: $(grep 'syncmap mode' info.txt | head -n 1 | tr -s ' ')"

# The shim through syncmap-run: python's mmap module maps a file shared and
# writable; the library's counters at exit show that the shim took it over.
SYNCMAP_STATS=1 syncmap-run python3 -c '
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
os.ftruncate(fd, 1 << 20)
m = mmap.mmap(fd, 1 << 20, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
m[4096:4101] = b"hello"
m.flush()
m.close()
os.close(fd)
' "$work/run.dat" 2>run.err
grep -Eq 'maps_(fault|kernel)=1' run.err || { say "FAIL: no mapping was taken over under syncmap-run:"; cat run.err; exit 1; }
[ "$(dd if="$work/run.dat" bs=1 skip=4096 count=5 2>/dev/null)" = hello ] || { say "FAIL: the data is not in the file"; exit 1; }
say "syncmap-run: $(grep -Eo 'maps_(fault|kernel)=1' run.err | head -n 1), the data is in the file"
syncmap-run --version | grep -q "$(pkg-config --modversion syncmap)" || { say "FAIL: syncmap-run --version"; exit 1; }

DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq libsyncmap0 libsyncmap-dev syncmap-tools >/dev/null
installed=0
for p in libsyncmap0 libsyncmap-dev syncmap-tools; do
	if dpkg -s "$p" >/dev/null 2>&1; then say "FAIL: $p still installed after purge"; exit 1; fi
done
[ ! -e "$libdir/libsyncmap.so.0" ] || { say "FAIL: $libdir/libsyncmap.so.0 left behind"; exit 1; }
say "all three packages built, lint-clean, installed, used and removed"
