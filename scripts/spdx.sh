#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# spdx.sh -- every source file carries an SPDX-License-Identifier line.
# Usage: scripts/spdx.sh [--add]   (no argument: check, exit 1 listing the files without it)
# C and C++ files: "/* SPDX-License-Identifier: MIT */" as the first line; scripts, CMake
# and Python: "# SPDX-License-Identifier: MIT" (after the #! line); man pages: '.\" ...'.
set -euo pipefail
cd "$(dirname "$0")/.."
tag='SPDX-License-Identifier: MIT'
add=0
[ "${1:-}" = --add ] && add=1
missing=0
while IFS= read -r f; do
	[ -f "$f" ] || continue
	[ "$f" = cmake/copyright.in ] && continue # a Debian copyright file: its format has no comments
	head -n 3 "$f" | grep -q "SPDX-License-Identifier:" && continue
	if [ "$add" = 0 ]; then
		echo "no SPDX line: $f"
		missing=$((missing + 1))
		continue
	fi
	case $f in
	*.c | *.h | *.cpp | *.map) line="/* $tag */" ;;
	*.[1-9]) line=".\\\" $tag" ;;
	*) line="# $tag" ;;
	esac
	if head -n 1 "$f" | grep -q '^#!'; then
		{ head -n 1 "$f"; printf '%s\n' "$line"; tail -n +2 "$f"; } >"$f.spdx"
	else
		{ printf '%s\n' "$line"; cat "$f"; } >"$f.spdx"
	fi
	chmod --reference="$f" "$f.spdx"
	mv "$f.spdx" "$f"
done < <(git ls-files '*.c' '*.h' '*.cpp' '*.sh' '*.py' '*.cmake' '*.in' 'CMakeLists.txt' '*/CMakeLists.txt' \
	'docs/man/*.[1-9]' '.ci/run' 'lib/syncmap.map')
if [ "$add" = 0 ]; then
	[ "$missing" = 0 ] && echo "spdx: every source file has an SPDX line"
	[ "$missing" = 0 ]
fi
