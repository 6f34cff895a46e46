#!/bin/bash
# SPDX-License-Identifier: MIT
# test_info.sh -- syncmap-info tests, one per ctest test: test_info.sh TOOL CASE
# Exit 0 pass, 1 fail, 77 skip (what this machine cannot show: no root, no loop device).
set -uo pipefail
tool=$1 case=$2
tmp=$(mktemp -d /dev/shm/syncmap-info-test-XXXXXX)
chmod 755 "$tmp"
trap 'umount "$tmp/mnt" 2>/dev/null; rm -rf "$tmp"' EXIT

fail() { echo "FAIL: $*"; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }
# expect FILE REGEX: the output must have a line matching REGEX.
expect() { grep -Eq -- "$2" "$1" || { cat "$1"; fail "no line matching '$2'"; }; }

# The answers for a filesystem that refuses MAP_SYNC (tmpfs, ext4 without dax).
check_fault_fs() { # DIR FSTYPE
	"$tool" "$1" > "$tmp/out" 2> "$tmp/err" || { cat "$tmp/out" "$tmp/err"; fail "exit status $?"; }
	expect "$tmp/out" "^  filesystem +$2 "
	expect "$tmp/out" "^  dax mount +no$"
	expect "$tmp/out" "^  statx DAX +directory: no; a new file here: no$"
	expect "$tmp/out" "^  MAP_SYNC +a new file here: refused \(EOPNOTSUPP\)$"
	expect "$tmp/out" "^  syncmap mode +FAULT$"
	expect "$tmp/out" "^  persist by +msync$"
	expect "$tmp/out" "^  decided by +a syncmap_mmap of a temporary file$"
	expect "$tmp/out" "^  cpu flush +(clwb|clflushopt|clflush|none \(eADR\)) \(libpmem2\)$"
	[ -s "$tmp/err" ] && { cat "$tmp/err"; fail "unexpected messages on stderr"; }
	# The probe leaves nothing behind in the directory.
	[ -z "$(ls -A "$1")" ] || fail "files left in $1: $(ls -A "$1")"
}

case $case in
tmpfs)
	mkdir "$tmp/d"
	check_fault_fs "$tmp/d" tmpfs
	# Environment overrides are shown, and change the answer as the library would.
	SYNCMAP_MODE=kernel SYNCMAP_GRAIN=1m "$tool" "$tmp/d" > "$tmp/out" || fail "exit status $?"
	expect "$tmp/out" "^  syncmap mode +none \(SYNCMAP_MODE=kernel: syncmap_mmap fails with EOPNOTSUPP\)$"
	expect "$tmp/out" "SYNCMAP_MODE=kernel \(in effect: kernel\)"
	expect "$tmp/out" "SYNCMAP_GRAIN=1m \(in effect: 1048576\)"
	SYNCMAP_FLUSH=cpu "$tool" "$tmp/d" > "$tmp/out" || fail "exit status $?"
	expect "$tmp/out" "^  persist by +cache-line flush$"
	SYNCMAP_GRAIN=12345 "$tool" "$tmp/d" > "$tmp/out" 2> "$tmp/err" || fail "exit status $?"
	expect "$tmp/out" "SYNCMAP_GRAIN=12345 \(in effect: 65536\)"
	expect "$tmp/err" "ignoring SYNCMAP_GRAIN=12345"
	;;
ext4)
	[ "$(id -u)" = 0 ] || skip "needs root for a loop mount"
	truncate -s 64M "$tmp/img" && mkfs.ext4 -q -F "$tmp/img" >/dev/null 2>&1 || skip "mkfs.ext4 failed"
	# Again, in a private mount namespace: the mount goes away with it.
	unshare -m --propagation private "$0" "$tool" ext4-inner "$tmp/img"
	exit $?
	;;
ext4-inner)
	mkdir "$tmp/mnt"
	mount -o loop "$3" "$tmp/mnt" 2>/dev/null || skip "cannot mount a loop device"
	rmdir "$tmp/mnt/lost+found"
	check_fault_fs "$tmp/mnt" ext4
	case=ext4
	;;
regular-file)
	# A regular file is probed read-only and never changed.
	printf 'user data\n' > "$tmp/f"
	touch -d '2001-02-03 04:05:06' "$tmp/f"
	before=$(stat -c '%s %Y %Z' "$tmp/f")
	"$tool" "$tmp/f" > "$tmp/out" || fail "exit status $?"
	expect "$tmp/out" "^  path +$tmp/f \(regular file\)$"
	expect "$tmp/out" "^  MAP_SYNC +this file \(read-only mapping\): refused \(EOPNOTSUPP\)$"
	expect "$tmp/out" "^  syncmap mode +FAULT$"
	[ "$(cat "$tmp/f")" = "user data" ] || fail "the file's content changed"
	[ "$(stat -c '%s %Y %Z' "$tmp/f")" = "$before" ] || fail "the file's size or times changed"
	[ "$(ls -A "$tmp")" = "$(printf 'f\nout')" ] || fail "files left behind: $(ls -A "$tmp")"
	;;
json)
	mkdir "$tmp/d"
	printf 'x' > "$tmp/d/f"
	for p in "$tmp/d" "$tmp/d/f" "$tmp/d/a \"quoted\" name"; do
		[ -e "$p" ] || printf 'y' > "$p"
		SYNCMAP_MODE='fault' "$tool" --json "$p" > "$tmp/out" || fail "exit status $?"
		python3 -m json.tool "$tmp/out" > /dev/null || { cat "$tmp/out"; fail "not JSON for $p"; }
		python3 - "$tmp/out" "$p" <<'PY' || fail "JSON content for $p"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["path"] == sys.argv[2], j["path"]
assert j["filesystem"]["type"] == "tmpfs", j["filesystem"]
assert j["map_sync_new_file"]["accepted"] is False and j["map_sync_new_file"]["error"] == "EOPNOTSUPP"
assert j["mode"] == "FAULT" and j["persist"] == "msync", (j["mode"], j["persist"])
assert j["environment"]["SYNCMAP_MODE"] == {"set": "fault", "in_effect": "fault"}, j["environment"]
assert j["environment"]["SYNCMAP_GRAIN"]["set"] is None
assert set(j["environment"]) >= {"SYNCMAP_MODE", "SYNCMAP_GRAIN", "SYNCMAP_FLUSH", "SYNCMAP_PRESYNC",
                                 "SYNCMAP_PRESYNC_DEPTH", "SYNCMAP_RESERVE", "SYNCMAP_STATS"}
assert isinstance(j["eadr"], bool) and j["cpu_flush"]
PY
	done
	;;
missing)
	"$tool" "$tmp/no/such/path" > "$tmp/out" 2> "$tmp/err" && fail "exit status 0 for a missing path"
	expect "$tmp/err" "^syncmap-info: $tmp/no/such/path: No such file or directory$"
	[ -s "$tmp/out" ] && fail "a report for a missing path"
	"$tool" > /dev/null 2>&1; [ $? = 2 ] || fail "no PATH: exit status not 2"
	"$tool" --json > /dev/null 2>&1; [ $? = 2 ] || fail "--json without PATH: exit status not 2"
	"$tool" /dev/null > /dev/null 2> "$tmp/err" && fail "exit status 0 for a device"
	expect "$tmp/err" "/dev/null: not a regular file or a directory"
	# With --json the error is a JSON object on stdout, and the exit status says so.
	"$tool" --json "$tmp/no/such/path" > "$tmp/out" 2> /dev/null && fail "--json: exit status 0 for a missing path"
	python3 - "$tmp/out" "$tmp/no/such/path" <<'PY' || { cat "$tmp/out"; fail "--json: no error object for a missing path"; }
import json, sys
j = json.load(open(sys.argv[1]))
assert j == {"path": sys.argv[2], "error": "No such file or directory"}, j
PY
	# The mode is a value; the reason for "none" has a field of its own.
	mkdir "$tmp/k"
	SYNCMAP_MODE=kernel "$tool" --json "$tmp/k" > "$tmp/out" || fail "--json, SYNCMAP_MODE=kernel: exit status $?"
	python3 - "$tmp/out" <<'PY' || { cat "$tmp/out"; fail "--json: mode is not a plain value"; }
import json, sys
j = json.load(open(sys.argv[1]))
assert j["mode"] == "none", j["mode"]
assert "EOPNOTSUPP" in j["mode_note"], j
PY
	;;
permission)
	# Run as an unprivileged user: root ignores permissions.
	if [ "$(id -u)" = 0 ]; then
		as=(setpriv --reuid=65534 --regid=65534 --clear-groups)
		"${as[@]}" true 2>/dev/null || skip "setpriv cannot drop to uid 65534"
		"${as[@]}" test -x "$tool" || skip "$tool is not reachable by uid 65534"
	else
		as=()
	fi
	mkdir -m 700 "$tmp/private"
	mkdir -m 555 "$tmp/readonly"
	printf 'secret' > "$tmp/secret" && chmod 600 "$tmp/secret"
	[ "$(id -u)" = 0 ] && chown 0:0 "$tmp/private" "$tmp/secret"
	"${as[@]}" "$tool" "$tmp/private/x" > /dev/null 2> "$tmp/err" && fail "exit 0 under a closed directory"
	expect "$tmp/err" "^syncmap-info: $tmp/private/x: Permission denied$"
	"${as[@]}" "$tool" "$tmp/secret" > /dev/null 2> "$tmp/err" && fail "exit 0 for an unreadable file"
	expect "$tmp/err" "^syncmap-info: $tmp/secret: cannot open for reading: Permission denied$"
	# A directory it may read but not write: reported, the probe named as not run, exit 1.
	"${as[@]}" "$tool" "$tmp/readonly" > "$tmp/out" 2> "$tmp/err" && fail "exit 0 without the MAP_SYNC probe"
	expect "$tmp/err" "^syncmap-info: $tmp/readonly: cannot create a temporary file in $tmp/readonly: Permission denied$"
	expect "$tmp/out" "^  MAP_SYNC +a new file here: not probed"
	expect "$tmp/out" "^  filesystem +tmpfs "
	;;
pmem-env)
	# libpmem2 reads PMEM_NO_CLWB and PMEM_NO_CLFLUSHOPT, never PMEM_NO_FLUSH
	# (libpmem's): the flush reported must not change with it, and the report
	# says it is ignored.
	mkdir "$tmp/d"
	"$tool" "$tmp/d" > "$tmp/plain" || fail "exit status $?"
	PMEM_NO_FLUSH=1 "$tool" "$tmp/d" > "$tmp/out" || fail "exit status $?"
	want=$(grep -E '^  (cpu flush|eADR) ' "$tmp/plain")
	got=$(grep -E '^  (cpu flush|eADR) ' "$tmp/out")
	[ "$got" = "$want" ] || fail "PMEM_NO_FLUSH=1 changed the report: '$got', without it: '$want'"
	expect "$tmp/out" "PMEM_NO_FLUSH=1 \(ignored: libpmem2 does not read it\)$"
	;;
help)
	"$tool" --help > "$tmp/out" || fail "exit status $?"
	for v in SYNCMAP_MODE SYNCMAP_GRAIN SYNCMAP_FLUSH SYNCMAP_PRESYNC SYNCMAP_PRESYNC_DEPTH SYNCMAP_RESERVE SYNCMAP_STATS; do
		expect "$tmp/out" "^  $v="
	done
	expect "$tmp/out" "--json"
	;;
*)
	fail "unknown case $case"
	;;
esac
echo "PASS: $case"
