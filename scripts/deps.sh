#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# deps.sh -- install the Debian 12 packages the build and the tests need, if missing.
# Usage: scripts/deps.sh [extra-package...]
set -euo pipefail

pkgs=(cmake make gcc g++ pkg-config libpmem2-dev libuv1-dev libcriterion-dev valgrind
	e2fsprogs xfsprogs util-linux
	liblmdb-dev lmdb-utils tokyocabinet-bin python3
	clang libclang-rt-14-dev man-db groff-base
	clang-format libasan8 libubsan1 libtsan2
	lintian dpkg-dev file "$@")
missing=()
for p in "${pkgs[@]}"; do
	dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "deps.sh: missing packages: ${missing[*]}; run as root to install them" >&2
	exit 1
fi
echo "deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
