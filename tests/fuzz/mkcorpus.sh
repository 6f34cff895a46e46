#!/bin/sh
# SPDX-License-Identifier: MIT
# mkcorpus.sh -- regenerate the seed corpus for fuzz_recover from real pmlog files.
# Usage: tests/fuzz/mkcorpus.sh PMLOG_BINARY   (writes tests/fuzz/corpus/)
# Each seed is a log cut down to its used bytes (the fuzzer does better with
# small inputs), then damaged the ways a crash or the media can.
set -eu
pmlog=$1
out=$(dirname "$0")/corpus
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"

printf 'a\nbb\nccc\n\nsome longer record that spans a few words\n' | "$pmlog" append -c 4k "$tmp/log" 2>/dev/null
used=$(( 64 + 24 + 24 + 24 + 16 + 64 ))   # header, then records a, bb, ccc (8+8+8 each), "" (8+8), the 41-byte one (8+48+8)
head -c "$used" "$tmp/log" > "$out/valid"
head -c 64 "$tmp/log" > "$out/header-only"
head -c $(( used - 5 )) "$tmp/log" > "$out/truncated"
cp "$out/valid" "$out/bad-crc"
printf 'X' | dd of="$out/bad-crc" bs=1 seek=$(( used - 20 )) conv=notrunc 2>/dev/null
cp "$out/valid" "$out/no-commit"
dd if=/dev/zero of="$out/no-commit" bs=1 seek=$(( used - 8 )) count=8 conv=notrunc 2>/dev/null
{ cat "$out/valid"; printf 'junk after the end'; } > "$out/junk-after-tail"
head -c 64 /dev/zero > "$out/zeros"
printf 'PMLOG\0\0\0 and then 56 bytes that are not the rest of a pmlog header, no.' > "$out/bad-header"
