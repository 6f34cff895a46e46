#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# secure.sh -- a setuid program (AT_SECURE) run by an unprivileged user: the shim leaves it alone
set -euo pipefail
. "$(dirname "$0")/common.sh" "$@"
command -v setpriv >/dev/null || skip "no setpriv"
err=$MNT/stderr

# The loop filesystem is mounted without nosuid: the setuid bit works there.
install -m 4755 -o root -g root "$BIN/pl_secure" "$MNT/pl_secure"
install -m 0755 "$SHIM" "$MNT/shim.so"
SYNCMAP_STATS=1 setpriv --reuid=65534 --regid=65534 --clear-groups \
	"$MNT/pl_secure" "$MNT/shim.so" "$MNT" secure 2>"$err" || { cat "$err"; fail "secure run"; }
cat "$err"
if grep -q libsyncmap "$err"; then
	fail "the shim acted in a secure-exec process"
fi

SYNCMAP_STATS=1 "$BIN/pl_secure" "$SHIM" "$MNT" normal 2>"$err" || { cat "$err"; fail "normal run"; }
cat "$err"
grep -q "libsyncmap-preload" "$err" || fail "the control run printed no counters"
echo "secure: ok"
