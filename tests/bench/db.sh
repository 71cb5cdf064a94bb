#!/bin/sh
# Benchmark (not a test; "make bench-db"): the database work of
# reconciliation, 1,000 clinics x 50 consultations through reconcile.c and
# db.c's asynchronous layer (tests/bench_db), logged in as vetsync_daemon
# with every clinic's writes in its own tenant-scoped transaction, on a
# throw-away pg_virtualenv cluster.  CLINICS and CONSULTATIONS change the
# size.  Target (issue 5): under 1 ms per consultation.
: "${top_srcdir:?}" "${top_builddir:?}"

if [ -z "${VS_DB_TEST_INSIDE:-}" ]; then
	command -v pg_virtualenv >/dev/null 2>&1 ||
	    { echo "bench-db: pg_virtualenv is not installed" >&2; exit 1; }
	VS_DB_TEST_INSIDE=1 exec pg_virtualenv -- sh "$0" "$@"
fi

clinics=${CLINICS:-1000}
cons=${CONSULTATIONS:-50}
db=vetsync_bench
dpw="bench-$$"
sql() { psql -X -q -At -v ON_ERROR_STOP=1 -d $db -c "$*"; }

createdb -T template0 $db
"$top_builddir/vetsyncctl" migrate --dir "$top_srcdir/migrations" \
    --conninfo "dbname=$db" >/dev/null
sql "alter role vetsync_daemon login password '$dpw'"
sql "insert into users (id, timezone) select ('00000000-0000-4000-8000-' ||
    lpad(i::text, 12, '0'))::uuid, 'America/Denver'
    from generate_series(1, $clinics) i"
echo "PostgreSQL $(sql 'show server_version'), $(nproc) CPUs"
PGPASSWORD=$dpw "$top_builddir/tests/bench_db" \
    "host=$PGHOST port=${PGPORT:-5432} dbname=$db user=vetsync_daemon" \
    "$clinics" "$cons"
echo "rows: $(sql "select (select count(*) from cases) || ' cases, ' ||
    (select count(*) from consultation_sync_status) || ' sync statuses, ' ||
    (select count(*) from idexx_sync_sessions where status = 'completed') ||
    ' completed sessions'")"
