#!/bin/bash
# Sets up everything on a fresh Debian 12 machine and runs the whole test
# suite: unit tests and end-to-end tests (the real daemon on loopback with
# real peers), once in a normal build, once under AddressSanitizer and
# UndefinedBehaviorSanitizer, once more with the daemon under valgrind, the
# unit tests under valgrind, and `make distcheck`. Prints "N passed, N failed" last.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

sh scripts/install-deps.sh --test

passed=0
failed=0
tally() { # builddir
	local log="$1/test-suite.log" p f e
	[ -f "$log" ] || return 0
	p=$(sed -n 's/^# PASS: *//p' "$log" | head -1)
	f=$(sed -n 's/^# FAIL: *//p' "$log" | head -1)
	e=$(sed -n 's/^# ERROR: *//p' "$log" | head -1)
	passed=$((passed + ${p:-0}))
	failed=$((failed + ${f:-0} + ${e:-0}))
}
show_failures() { # builddir
	[ -f "$1/test-suite.log" ] && sed -n '/^FAIL\|^ERROR/,/^$/p' "$1/test-suite.log" | head -200
	for f in "$1"/tests/*/*.log; do
		[ -f "$f" ] || continue
		if grep -q '^FAIL\|^ERROR' "${f%.log}.trs" 2>/dev/null; then
			echo "===== $f"; tail -80 "$f"
		fi
	done
}
status=0

echo "== build and test (gcc -Wall -Wextra -Werror)"
sh scripts/build.sh "$top/build"
if ! make -C build -j2 check >/dev/null; then status=1; show_failures build; fi
tally build

echo "== build and test under ASan + UBSan"
GOVRELAY_CFLAGS="-g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
GOVRELAY_LDFLAGS="-fsanitize=address,undefined" \
	sh scripts/build.sh "$top/build-asan"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=86"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
if ! make -C build-asan -j2 check >/dev/null; then status=1; show_failures build-asan; fi
tally build-asan
unset ASAN_OPTIONS UBSAN_OPTIONS

echo "== end-to-end tests with the daemon under valgrind"
e2e=$(ls tests/e2e/test_*.py | tr '\n' ' ')
if ! GOVRELAYD_WRAPPER="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --num-callers=40 --suppressions=$top/tests/valgrind.supp" \
	make -C build check TESTS="$e2e" >/dev/null; then
	status=1; show_failures build
fi
tally build

echo "== unit tests under valgrind"
for t in build/tests/unit/test_*; do
	[ -x "$t" ] || continue
	if CK_FORK=no GOVRELAY_TEST_UNDER_VALGRIND=1 GOVRELAY_SRCDIR="$top" valgrind -q --error-exitcode=1 --leak-check=full \
		--errors-for-leak-kinds=definite,indirect --num-callers=40 \
		--suppressions="$top/tests/valgrind.supp" "$t" >"$t.valgrind.log" 2>&1; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1)); status=1
		echo "valgrind: $t failed"; tail -40 "$t.valgrind.log"
	fi
done

# ---- fuzz: every libFuzzer target briefly under ASan + UBSan (about 2 min).
echo "== fuzz targets (make check-fuzz, 20 s each)"
if make -C build check-fuzz FUZZ_SECONDS=20; then
	passed=$((passed + 1))
else
	failed=$((failed + 1)); status=1
fi
# ---- fuzz-end

echo "== make distcheck"
if make -C build -j2 distcheck >build/distcheck.log 2>&1; then
	passed=$((passed + 1))
else
	failed=$((failed + 1)); status=1
	tail -60 build/distcheck.log
fi

echo "$passed passed, $failed failed"
exit $status
