#!/bin/sh
# Benchmark (not a test; "make bench-db"): the database work of
# reconciliation, 1,000 clinics x 50 consultations through reconcile.c and
# db.c's asynchronous layer (tests/bench_db), logged in as vetsync_daemon
# with every clinic's writes in its own tenant-scoped transaction, on a
# throw-away pg_virtualenv cluster.  CLINICS and CONSULTATIONS change the
# size.  Target (issue 5): under 1 ms per consultation.
#
# Two runs, each on a fresh database.  The first with PostgreSQL's default
# autovacuum: the tables grow from empty to 50,000 rows in about a minute,
# faster than autovacuum re-analyzes them, so the planner works from stale
# statistics for part of the run (the cold start of a new installation).
# The second with analyze kept fresh (autovacuum_naptime = 1s, analyze
# every 2 % of change): the steady state of a database that already holds
# cases.
: "${top_srcdir:?}" "${top_builddir:?}"

if [ -z "${VS_DB_TEST_INSIDE:-}" ]; then
	command -v pg_virtualenv >/dev/null 2>&1 ||
	    { echo "bench-db: pg_virtualenv is not installed" >&2; exit 1; }
	VS_DB_TEST_INSIDE=1 exec pg_virtualenv -- sh "$0" "$@"
fi

clinics=${CLINICS:-1000}
cons=${CONSULTATIONS:-50}
dpw="bench-$$"
sql() { psql -X -q -At -v ON_ERROR_STOP=1 -d $db -c "$*"; }

run() {
	db=$1
	createdb -T template0 $db
	"$top_builddir/vetsyncctl" migrate --dir "$top_srcdir/migrations" \
	    --conninfo "dbname=$db" >/dev/null
	sql "alter role vetsync_daemon login password '$dpw'"
	sql "insert into users (id, timezone) select
	    ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid,
	    'America/Denver' from generate_series(1, $clinics) i"
	PGPASSWORD=$dpw "$top_builddir/tests/bench_db" \
	    "host=$PGHOST port=${PGPORT:-5432} dbname=$db user=vetsync_daemon" \
	    "$clinics" "$cons"
	echo "  rows: $(sql "select (select count(*) from cases) || ' cases, ' ||
	    (select count(*) from consultation_sync_status) ||
	    ' sync statuses, ' || (select count(*) from idexx_sync_sessions
	    where status = 'completed') || ' completed sessions'")"
}

echo "PostgreSQL $(psql -X -At -c 'show server_version'), $(nproc) CPUs"
echo "== default autovacuum (tables growing from empty)"
run vetsync_bench
echo "== statistics kept fresh"
psql -X -q -c "alter system set autovacuum_naptime = 1" \
    -c "alter system set autovacuum_analyze_scale_factor = 0.02" \
    -c "select pg_reload_conf()" >/dev/null
run vetsync_bench_fresh
