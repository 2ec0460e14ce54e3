#!/bin/sh
# Runs each libFuzzer target built by build.sh for a bounded time on a
# copy of its seed corpus (the corpus in the source tree is never
# written), with its dictionary when there is one. Fails when any target
# reports a crash, a leak, a sanitizer error or a timeout; the input that
# did it is left in OUTDIR/artifacts/.
#
#   sh tests/fuzz/run.sh BINDIR SECONDS [TARGET...]
#
# FUZZ_WORKDIR, when set, keeps each target's growing corpus in
# FUZZ_WORKDIR/TARGET across runs instead of a throw-away copy.
#
# Prints one line per target with its executions
# (stat::number_of_executed_units), the figure tests/fuzz/README.md keeps.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:?usage: run.sh BINDIR SECONDS [TARGET...]}
secs=${2:-20}
shift 2 2>/dev/null || shift $#
targets=${*:-$(cd "$top/tests/fuzz" && ls fuzz_*.c | sed 's/\.c$//')}

mkdir -p "$bin/artifacts" "$bin/logs"
# Sanitizer reports end the run with a distinct code and a stack we can read.
ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:symbolize=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export ASAN_OPTIONS UBSAN_OPTIONS

status=0
for t in $targets; do
	exe="$bin/$t"
	[ -x "$exe" ] || { echo "run.sh: $exe not built" >&2; status=1; continue; }
	if [ -n "${FUZZ_WORKDIR:-}" ]; then
		work="$FUZZ_WORKDIR/$t"
		mkdir -p "$work"
	else
		work=$(mktemp -d "${TMPDIR:-/tmp}/govrelay-$t.XXXXXX")
	fi
	cp "$top/tests/fuzz/corpus/$t/"* "$work/" 2>/dev/null || true
	dict=""
	[ -f "$top/tests/fuzz/$t.dict" ] && dict="-dict=$top/tests/fuzz/$t.dict"
	log="$bin/logs/$t.log"
	# -timeout: one input taking over 10 s is a hang worth reporting.
	# shellcheck disable=SC2086
	"$exe" $dict -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$bin/artifacts/$t-" \
		"$work" >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	if [ $rc -ne 0 ]; then
		status=1
		echo "FAIL: $t (exit $rc) after ${execs:-?} executions; log $log"
		grep -E 'ERROR|runtime error|SUMMARY|Test unit written' "$log" | head -20
	else
		echo "ok: $t ${secs}s ${execs:-?} executions"
	fi
	[ -n "${FUZZ_WORKDIR:-}" ] || rm -rf "$work"
done
exit $status
