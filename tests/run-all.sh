#!/bin/sh
# The whole test suite, as the README and CI run it:
#   1. the -Werror build's `make check` (unit, integration, sandbox tests);
#   2. an ASan+UBSan build's `make check`;
#   3. the unit tests again under valgrind;
#   4. `make distcheck` (a tarball that builds and passes on its own;
#      its database tests are skipped, step 1 ran them).
# Every step's counts are added up; the last line reads "N passed, M failed".
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
jobs=$(nproc)
passed=0
failed=0
skipped=0

count_log() {
	# $1: a test-suite.log written by automake's harness
	[ -f "$1" ] || { failed=$((failed + 1)); return; }
	p=$(sed -n 's/^# PASS: *//p' "$1" | head -1)
	f=$(sed -n 's/^# FAIL: *//p' "$1" | head -1)
	e=$(sed -n 's/^# ERROR: *//p' "$1" | head -1)
	x=$(sed -n 's/^# XPASS: *//p' "$1" | head -1)
	s=$(sed -n 's/^# SKIP: *//p' "$1" | head -1)
	passed=$((passed + ${p:-0}))
	failed=$((failed + ${f:-0} + ${e:-0} + ${x:-0}))
	skipped=$((skipped + ${s:-0}))
}

step() {
	echo "==> $*"
}

step "plain build (-Werror): make check"
(cd build && make -j"$jobs" check) || true
count_log build/test-suite.log
[ -s build/test-suite.log ] && grep -E '^(FAIL|ERROR|XPASS):' build/test-suite.log

step "sanitizer build (ASan+UBSan): make check"
mkdir -p build-asan
(cd build-asan &&
    { [ -f config.status ] || ../configure --enable-werror --enable-sanitizers >/dev/null; } &&
    make -j"$jobs" >/dev/null && make -j"$jobs" check) || true
count_log build-asan/test-suite.log
[ -s build-asan/test-suite.log ] && grep -E '^(FAIL|ERROR|XPASS):' build-asan/test-suite.log

step "valgrind: unit tests"
for t in build/tests/unit/test_*; do
	case "$t" in *.o|*.log|*.trs|*.c) continue ;; esac
	[ -x "$t" ] || continue
	name=${t#build/}
	# Tests that enter a seccomp sandbox or spawn sandboxed workers are
	# run natively above; valgrind cannot follow them.
	if grep -q "VALGRIND_SKIP" "tests/unit/$(basename "$t").c" 2>/dev/null; then
		continue
	fi
	if (cd build && CMOCKA_MESSAGE_OUTPUT=TAP top_srcdir="$top" \
	    top_builddir="$top/build" valgrind -q --error-exitcode=99 \
	    --leak-check=full --errors-for-leak-kinds=definite \
	    "./$name" >/dev/null 2>"../build/$name.valgrind"); then
		passed=$((passed + 1))
	else
		echo "FAIL: valgrind $name (see build/$name.valgrind)"
		failed=$((failed + 1))
	fi
done

# The tarball's own check leaves out the database tests (the minutes of
# the suite), which step 1 ran on the same sources.
step "make distcheck"
if (cd build && VS_SKIP_DB_TESTS="in distcheck: run in the plain build" \
    make -j"$jobs" distcheck DISTCHECK_CONFIGURE_FLAGS=--enable-werror >distcheck.log 2>&1); then
	passed=$((passed + 1))
else
	echo "FAIL: make distcheck (see build/distcheck.log)"
	tail -30 build/distcheck.log
	failed=$((failed + 1))
fi

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
