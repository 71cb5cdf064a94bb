#!/bin/sh
# db.c's event-loop face (db_async_*) on a real PostgreSQL, through
# tests/db_async_drive, which reads commands from a FIFO and prints what
# the layer did: units that return rows (the last statement with tuples,
# none on failure, the retried run's only).
#
# Runs itself again inside pg_virtualenv, as tests/integration/db.sh does.
. "$top_srcdir/tests/integration/lib.sh"

if [ -z "${VS_DB_TEST_INSIDE:-}" ]; then
	if ! command -v pg_virtualenv >/dev/null 2>&1 ||
	    ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
		echo "1..0 # SKIP PostgreSQL is not installed" \
		    "(postgresql, postgresql-common)"
		exit 0
	fi
	VS_DB_TEST_INSIDE=1 exec pg_virtualenv -t -- sh "$0" "$@"
fi

tap_plan 9

db=vetsync_async
tmp=$(mktemp -d /tmp/vetsync-async.XXXXXX)
drv=
cleanup() {
	exec 3>&- 2>/dev/null
	[ -n "$drv" ] && kill "$drv" 2>/dev/null
	pg_ctlcluster "${PGVERSION:-15}" regress start >/dev/null 2>&1
	rm -rf "$tmp"
}
trap cleanup EXIT

sql() { psql -X -q -At -v ON_ERROR_STOP=1 -d $db -c "$*"; }
createdb -T template0 $db

mkfifo "$tmp/in"
"$top_builddir/tests/db_async_drive" \
    "host=$PGHOST port=${PGPORT:-5432} dbname=$db" \
    <"$tmp/in" >"$tmp/out" 2>"$tmp/err" &
drv=$!
exec 3>"$tmp/in"

# say TAG COMMAND ARGS: one command to the driver
say() { printf '%s\n' "$*" >&3; }
got() { grep -q "^$1 " "$tmp/out"; }
# reply TAG [SECONDS]: the driver's answer to TAG, once it has come
reply() {
	wait_for "${2:-10}" got "$1" || { echo "(no reply)"; return; }
	grep "^$1 " "$tmp/out" | head -1 | cut -d' ' -f2-
}
# is TAG WANT: check that TAG's reply is WANT
is() {
	r=$(reply "$1")
	if [ "$r" = "$2" ]; then ok "$1: $2"; else
		not_ok "$1: want '$2', got '$r'"; fi
}

sql "create table pets (id serial primary key, name text not null)"

# Rows back from a unit.
say "r1 rows select 1, null::text, 'x'"
is r1 "ok 1 3 1,~,x"
say "r2 rows begin ;; insert into pets (name) values ('Rex'), ('Tom') returning name ;; select count(*) from pets ;; commit"
is r2 "ok 1 1 2"
say "r3 rows begin ;; insert into pets (name) values ('Ada') returning id, name ;; commit"
is r3 "ok 1 2 3,Ada"
say "r4 rows select name from pets where false"
is r4 "ok 0 1 "
say "r5 rows begin ;; update pets set name = name where false ;; commit"
is r5 "ok 0 0 "
say "$(printf 'r6 rows select $1::int + $2::int, $3::text\t40\t2\t')"
is r6 "ok 1 2 42,"
say "r7 rows begin ;; select 1 ;; select * from no_such_table ;; commit"
r=$(reply r7)
case $r in
"err -5 "*no_such_table*) ok "r7: a refused unit gets no rows, and the message ($r)" ;;
*) not_ok "r7: a refused unit gets no rows, and the message ($r)" ;;
esac
n=$(sql "select count(*) from pets")
check "r7's transaction left nothing behind ($n rows)" test "$n" -eq 3

# A serialization failure on the first try: the callback sees the rows of
# the run that succeeded, not those of the one rolled back.
sql "create sequence tries;
    create function fail_once() returns bigint language plpgsql as \$f\$
    declare n bigint := nextval('tries'); begin
	if n = 1 then
		raise exception 'injected' using errcode = '40001';
	end if;
	return n;
    end \$f\$"
say "r8 rows begin ;; select 'first' ;; select fail_once() ;; commit"
is r8 "ok 1 1 2"

exec 3>&-
wait "$drv"
drv=
if [ "$tap_failed" -gt 0 ]; then
	diag "driver output:"
	sed 's/^/# /' "$tmp/out" "$tmp/err" | tail -40
fi
exit 0
