# SPDX-License-Identifier: MIT
# shellcheck shell=bash disable=SC2034 # the variables set here are the callers'
# suite-lib.sh -- what the DAX-guest crash suites share; sourced by crash-suite.sh and apps-suite.sh.
#
# The caller sets HERE (tests/vm), CACHE (the vm cache), WORK (its work
# directory: initramfs, images) and LOGS (console logs, status files), and
# COMMAND (the exact command line) before using these.

# suite_commit -- the source's git commit, "+uncommitted" if tracked files changed.
suite_commit() {
	local c
	c=$(git -C "$HERE" rev-parse HEAD 2>/dev/null) || { echo unknown; return; }
	[ -z "$(git -C "$HERE" status --porcelain --untracked-files=no 2>/dev/null)" ] || c="$c+uncommitted"
	echo "$c"
}

# suite_identity SEED-LINE -- the head of a result file: what ran, from which
# source, on which guest kernel and QEMU; SEED-LINE says what was drawn.
suite_identity() {
	echo "# command: $COMMAND"
	echo "# cwd: $PWD"
	echo "# commit: $(suite_commit)"
	echo "# seed: $1"
	echo "# guest kernel: $SMVM_KVER  qemu: $(${SMVM_QEMU:-qemu-system-x86_64} --version | head -n 1)"
	echo "# host: $(uname -r), $(nproc) CPUs; $(date -u +%Y-%m-%dT%H:%M:%SZ)"
}

# boot NAME VM.SH-ARGS... -- one boot on WORK's initramfs and images; sets
# OUT (the guest's result lines); returns vm.sh's status.
boot() {
	local name=$1 rc=0
	shift
	OUT=$("$HERE/vm.sh" "$CACHE" --initrd "$WORK/initramfs.cpio.gz" --images "$WORK/images" \
		--log "$LOGS/$name.log" --status "$LOGS/$name.status" --timeout 240 "$@" 2>>"$LOGS/vm.err") || rc=$?
	return $rc
}

# boot_outcome NAME -- how that boot ended, from its status file.
boot_outcome() {
	sed -n 's/^outcome=//p' "$LOGS/$1.status" 2>/dev/null || echo '?'
}

field() { # LINE KEY -- the value of KEY=value in LINE
	sed -n "s/.*[ ^]$2=\([0-9a-z-]*\).*/\1/p" <<<"$1"
}

big_random() { echo $(((RANDOM << 15) | RANDOM)); }

# kind_setup KIND -- the storage kind's mount options and what the library
# must choose there: sets mode (kernel|fault), persist (cpu|msync), opts_e,
# opts_x (mount options), env (guest commands: exports), devs (guest
# commands: which devices) and vmdev (vm.sh arguments).
kind_setup() {
	case $1 in
	dax-kernel) mode=kernel persist=cpu opts_e=dax=always,commit=600 opts_x=dax=always env=":" ;;
	dax-fault) mode=fault persist=cpu opts_e=dax=always,commit=600 opts_x=dax=always env="export SYNCMAP_MODE=fault" ;;
	pagecache) mode=fault persist=msync opts_e=dax=never,commit=600 opts_x=dax=never env=":" ;;
	virtio) mode=fault persist=msync opts_e=dax=always,commit=600 opts_x=dax=always env=":" ;;
	*) return 1 ;;
	esac
	devs=":" vmdev=()
	if [ "$1" = virtio ]; then
		devs="export SMVM_EXT4_DEV=/dev/vpmem0 SMVM_XFS_DEV=/dev/vpmem1"
		vmdev=(--virtio-pmem)
	fi
}

# Guest commands, to run before any mkfs or mount: timers must not save a
# control.  Page cache writes dirty pages back after 30 s, or once 10% of
# memory is dirty (a random-order case dirties ~40 MB); ext4 commits every
# 5 s (commit=600 in kind_setup) and xfs forces its log every 30 s.  All go
# to 600 s and 80%, so that only syncs save data.  (At 60 s a cycle on a
# loaded host, 98 s of writing, had its control saved by them.)  xfs arms
# its log worker with the value it finds at mount.
HOLD_WRITEBACK="echo 60000 >/proc/sys/vm/dirty_expire_centisecs
echo 60000 >/proc/sys/fs/xfs/xfssyncd_centisecs
echo 80 >/proc/sys/vm/dirty_background_ratio
echo 90 >/proc/sys/vm/dirty_ratio"

# suite_finish NAME: the last step of a suite.  Its summary (awk) left
# "cycles-done failures" in $CYCLE_LINES.n; print them and where the results
# are, close the log (the tee started at the top) and give the verdict as
# the status.
suite_finish() {
	local name=$1 done_cycles failed
	read -r done_cycles failed <"$CYCLE_LINES.n"
	rm -f "$CYCLE_LINES.n"
	echo "$name: seed $SEED, $done_cycles cycles, $failed failure(s)"
	echo "$name: results in $RESULTS"
	exec >&- 2>&-
	wait "$TEE" || true
	[ "$failed" = 0 ]
}
