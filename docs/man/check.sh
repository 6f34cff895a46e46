#!/bin/sh
# SPDX-License-Identifier: MIT
# check.sh -- the man pages render without a single warning, and every public
# function and program has one.  Usage: check.sh MANDIR SYMBOL_MAP
# Exit 0 pass, 1 fail, 77 skip (no man-db here).
set -u
mandir=$1 map=$2
command -v man >/dev/null 2>&1 || { echo "SKIP: man (man-db) is not installed"; exit 77; }
command -v groff >/dev/null 2>&1 || { echo "SKIP: groff is not installed"; exit 77; }
cd "$mandir" || exit 1
export LC_ALL=C.UTF-8 MANWIDTH=80
unset MAN_KEEP_FORMATTING MANPAGER PAGER
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rc=0

# The harness must be able to fail: a page with a bad request must warn.
printf '.TH BAD 1\n.SH NAME\nbad \\- x\n.BADMACRO\n\\fBunclosed\n' > "$tmp/bad.1"
man --warnings -l "$tmp/bad.1" > /dev/null 2> "$tmp/err"
[ -s "$tmp/err" ] || { echo "FAIL: man --warnings reports nothing for a broken page"; exit 1; }

for page in man*/*.[1-9]; do
	man --warnings -l "$page" > "$tmp/out" 2> "$tmp/err"
	if [ -s "$tmp/err" ]; then
		echo "FAIL: $page:"
		sed 's/^/    /' "$tmp/err"
		rc=1
	elif [ "$(wc -l < "$tmp/out")" -lt 8 ]; then
		echo "FAIL: $page renders to almost nothing"
		rc=1
	fi
done

# One page per public function (lib/syncmap.map) and per program.
funcs=$(sed -n '/global:/,/local:/p' "$map" | tr -d ' \t;' | grep '^syncmap_')
[ -n "$funcs" ] || { echo "FAIL: no functions found in $map"; exit 1; }
for f in $funcs; do
	[ -f "man3/$f.3" ] || { echo "FAIL: no man3/$f.3"; rc=1; }
	# The page (after .so links) names the function.
	[ -f "man3/$f.3" ] && { man -l "man3/$f.3" 2>/dev/null | grep -q "$f(" || {
		echo "FAIL: man3/$f.3 does not show $f()"; rc=1; }; }
done
for p in man7/syncmap.7 man1/syncmap-info.1 man1/pmlog.1 man1/logd.1; do
	[ -f "$p" ] || { echo "FAIL: no $p"; rc=1; }
done
[ $rc = 0 ] && echo "PASS: $(ls man*/*.[1-9] | wc -l) pages render without warnings"
exit $rc
