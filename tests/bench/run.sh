#!/bin/sh
# make bench: govrelay against Postfix on loopback, side by side.
#
# Run from a build folder (./govrelayd, ./govrelayctl), as root: the
# private Postfix instance and smtp-sink need it, and 10,000 idle sessions
# need a high open-files limit. Makes a temp dir, runs bench.py (which
# starts smtp-sink, govrelayd and a private Postfix with its own
# config_directory, queue_directory and data_directory in that dir), and
# whatever happens stops that Postfix and kills every process bench.py
# started. Writes the report to doc/PERFORMANCE.md in the source tree
# (BENCH_OUT=FILE to write elsewhere).
#
# KEEP_BENCH=1 keeps the temp dir; BENCH_QUICK=N divides every message
# count by N (a trial run, not for comparison); BENCH_ONLY=throughput,auth,content,
# latency,idle,import runs a subset. BENCH_BASELINE=DIR runs DIR/govrelayd (and
# DIR/govrelayctl), another build folder, e.g. one of an older commit,
# side by side with this build in every throughput case and the latency
# run, and reports both (and govrelay / baseline).
#
# Each relay runs in a cgroup of its own when one can be made, for its
# CPU time (tests/bench/cputime.py); bench.py lists them in TMP/cgroups
# and removes them, and so does the cleanup here if it could not.
# BENCH_NO_CGROUP=1 reads /proc instead (coarser; to compare).
set -eu

srcdir=$(cd "$(dirname "$0")/../.." && pwd)
builddir=$(pwd)
out=${BENCH_OUT:-$srcdir/doc/PERFORMANCE.md}

for f in "$builddir/govrelayd" "$builddir/govrelayctl"; do
	if [ ! -x "$f" ]; then
		echo "bench: $f not found; run make bench in a build folder" >&2
		exit 1
	fi
done
for t in /usr/sbin/smtp-source /usr/sbin/smtp-sink /usr/sbin/postfix python3; do
	if ! command -v "$t" >/dev/null 2>&1; then
		echo "bench: $t is missing (Debian: apt-get install postfix python3)" >&2
		exit 1
	fi
done
set --
if [ -n "${BENCH_BASELINE:-}" ]; then
	bdir=$(cd "$BENCH_BASELINE" && pwd) || exit 1
	for f in "$bdir/govrelayd" "$bdir/govrelayctl"; do
		if [ ! -x "$f" ]; then
			echo "bench: BENCH_BASELINE: $f not found (a build folder is needed)" >&2
			exit 1
		fi
	done
	set -- --baseline-govrelayd "$bdir/govrelayd" --baseline-govrelayctl "$bdir/govrelayctl"
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "bench: run as root (private Postfix instance, 10,000 sessions)" >&2
	exit 1
fi

# 10,000 idle sessions: the client and govrelayd each need a descriptor per
# session. Raise the soft limit as far as the hard limit allows.
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -gt 65536 ]; then
	ulimit -n 65536
else
	ulimit -n "$hard"
fi
if [ "$(ulimit -n)" -lt 10500 ]; then
	echo "bench: open files limit $(ulimit -n) is below 10500; the idle test needs more" >&2
	exit 1
fi

tmp=$(mktemp -d /tmp/govrelay-bench.XXXXXX)
chmod 755 "$tmp"

bench_cleanup() {
	status=$?
	trap - EXIT INT TERM
	if [ -f "$tmp/postfix/conf/main.cf" ]; then
		/usr/sbin/postfix -c "$tmp/postfix/conf" stop >/dev/null 2>&1 || true
	fi
	# bench.py lists "PID STARTTIME" of every child; kill only those still
	# alive with the same start time (never a recycled process id).
	if [ -f "$tmp/pids" ]; then
		while read -r pid st; do
			now=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f20) || now=
			if [ -n "$now" ] && [ "$now" = "$st" ]; then
				kill "$pid" 2>/dev/null || true
			fi
		done <"$tmp/pids"
	fi
	# The cgroups bench.py made (it removes them itself when all goes
	# well): only empty ones named govrelay-bench-* under /sys/fs/cgroup,
	# polled while their last processes exit.
	if [ -f "$tmp/cgroups" ]; then
		while read -r cg; do
			case "$cg" in
			/sys/fs/cgroup/*) ;;
			*) continue ;;
			esac
			case "${cg##*/}" in
			govrelay-bench-*) ;;
			*) continue ;;
			esac
			n=0
			while [ -d "$cg" ] && ! rmdir "$cg" 2>/dev/null && [ "$n" -lt 50 ]; do
				sleep 0.2
				n=$((n + 1))
			done
		done <"$tmp/cgroups"
	fi
	if [ "${KEEP_BENCH:-0}" = 1 ]; then
		echo "bench: temp dir kept: $tmp" >&2
	else
		rm -rf "$tmp"
	fi
	exit "$status"
}
trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start=$(date +%s)
python3 "$srcdir/tests/bench/bench.py" --tmp "$tmp" \
	--govrelayd "$builddir/govrelayd" --govrelayctl "$builddir/govrelayctl" \
	--srcdir "$srcdir" --out "$out" --quick "${BENCH_QUICK:-1}" --only "${BENCH_ONLY:-}" \
	"$@"
echo "bench: done in $(($(date +%s) - start)) s; report in $out" >&2
