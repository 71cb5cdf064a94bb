# Shared helpers for the integration tests (TAP producers).
# Each test sources this, calls tap_plan N, then ok/not_ok/skip per case.

: "${top_srcdir:?run through make check}"
: "${top_builddir:?run through make check}"
# Automake's abs_top_srcdir may read "build/.."; paths handed to vetsyncd
# must be canonical.
top_srcdir=$(cd "$top_srcdir" && pwd -P)
top_builddir=$(cd "$top_builddir" && pwd -P)

tap_n=0
tap_failed=0

tap_plan() { echo "1..$1"; }

ok() {
	tap_n=$((tap_n + 1))
	echo "ok $tap_n - $*"
}

not_ok() {
	tap_n=$((tap_n + 1))
	tap_failed=$((tap_failed + 1))
	echo "not ok $tap_n - $*"
}

skip() {
	tap_n=$((tap_n + 1))
	echo "ok $tap_n - $1 # SKIP $2"
}

# check "description" command...: ok if the command succeeds
check() {
	desc=$1
	shift
	if "$@"; then ok "$desc"; else not_ok "$desc"; fi
}

# wait_for SECONDS command...: poll every 50 ms until the command succeeds
wait_for() {
	limit=$(($1 * 20))
	shift
	i=0
	while [ $i -lt "$limit" ]; do
		"$@" && return 0
		sleep 0.05
		i=$((i + 1))
	done
	return 1
}

diag() { echo "# $*"; }
