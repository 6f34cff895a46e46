#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# run.sh -- install libsyncmap into a scratch prefix, then build and run a
# consumer against the installed files: C and C++, via pkg-config and via
# CMake's find_package.  Usage: run.sh BUILD_DIR
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=$(cd "$1" && pwd)
work=$(mktemp -d /tmp/syncmap-consumer-XXXXXX)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig:$prefix/lib/x86_64-linux-gnu/pkgconfig
export LD_LIBRARY_PATH=$prefix/lib:$prefix/lib/x86_64-linux-gnu
flags=$(pkg-config --cflags --libs syncmap)
cc -Wall -Wextra -Werror -o "$work/pc_c" "$HERE/consumer.c" $flags
c++ -Wall -Wextra -Werror -o "$work/pc_cxx" "$HERE/consumer.cpp" $flags
cmake -S "$HERE" -B "$work/cm" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/cm" >/dev/null
for exe in pc_c pc_cxx cm/consumer_c cm/consumer_cxx; do
	(cd "$work" && "./$exe" "$work/$(basename "$exe").dat")
done
for lib in "$prefix"/lib*/libsyncmap.so.0 "$prefix"/lib/*/libsyncmap.so.0; do
	[ -e "$lib" ] || continue
	if nm -D --defined-only "$lib" | awk '{print $3}' | grep -v '^syncmap_' | grep -qv '^SYNCMAP_'; then
		echo "consumer: $lib exports symbols beyond syncmap_*:"
		nm -D --defined-only "$lib" | grep -v ' syncmap_' | grep -v SYNCMAP_
		exit 1
	fi
done
echo "consumer: all four builds ran against the installed library"
