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

# in_pg_virtualenv "$@": run the calling script again inside a throw-away
# PostgreSQL cluster (pg_virtualenv, from Debian's postgresql-common, which
# works as root too and sets PG* for the cluster's superuser), or skip it
# whole when PostgreSQL is not installed.  VS_DB_TEST_INSIDE=1 says the
# script is inside already, or that PG* name a scratch server to use.
#
# One at a time (flock): every pg_virtualenv cluster is "<version>/regress"
# with its pid file and socket in /var/run/postgresql and the first free
# port, so two made at once (make check -j2) collide.
#
# VS_SKIP_DB_TESTS=REASON skips them (make distcheck: step 1 of
# tests/run-all.sh ran them already, on the same sources).
in_pg_virtualenv() {
	[ -n "${VS_DB_TEST_INSIDE:-}" ] && return 0
	if [ -n "${VS_SKIP_DB_TESTS:-}" ]; then
		echo "1..0 # SKIP $VS_SKIP_DB_TESTS"
		exit 0
	fi
	if ! command -v pg_virtualenv >/dev/null 2>&1 ||
	    ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
		echo "1..0 # SKIP PostgreSQL is not installed" \
		    "(postgresql, postgresql-common)"
		exit 0
	fi
	VS_DB_TEST_INSIDE=1 exec flock /tmp/vetsync-pg_virtualenv.lock \
	    pg_virtualenv -t -- sh "$0" "$@"
}

# skip_plan N WHAT REASON: plan N cases, skip every one, and exit.
skip_plan() {
	tap_plan "$1"
	i=1
	while [ "$i" -le "$1" ]; do
		skip "$2 $i" "$3"
		i=$((i + 1))
	done
	exit 0
}
