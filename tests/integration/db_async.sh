#!/bin/sh
# db.c's event-loop face (db_async_*) on a real PostgreSQL, through
# tests/db_async_drive, which reads commands from a FIFO and prints what
# the layer did: units that return rows (the last statement with tuples,
# none on failure, the retried run's only); LISTEN/NOTIFY (channel names
# checked, delivery within 100 ms when idle and while units are in
# flight, re-armed after a server restart with one "resync" call); a unit
# in flight across a restart applied once, and units queued while the
# server is down applied after it; the queue's cap (a unit past it refused
# at once with -ENOBUFS, smaller ones still taken, one warning per
# episode; reconcile.c marking the session failed when its results are
# refused, and surviving when even that is refused); prepared statements
# (prepared once, kept through a failed transaction, a bad one refused
# without harm, prepared again after a reconnect).
#
# Runs itself again inside pg_virtualenv, as tests/integration/db.sh does.
. "$top_srcdir/tests/integration/lib.sh"

in_pg_virtualenv "$@"

tap_plan 44

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
# Restart the server as stop and start: "restart" trusts a pid file in
# /var/run/postgresql that other throw-away clusters of the same name
# share.  The server must not inherit the driver's input (it would never
# end).
restart_server() {
	pg_ctlcluster "${PGVERSION:-15}" regress stop -m fast 3>&-
	pg_ctlcluster "${PGVERSION:-15}" regress start 3>&-
}
createdb -T template0 $db
"$top_builddir/vetsyncctl" migrate --dir "$top_srcdir/migrations" \
    --conninfo "dbname=$db" >"$tmp/migrate.log" 2>&1 ||
    sed 's/^/# /' "$tmp/migrate.log"
U=11111111-2222-4333-8444-555555555501
sql "insert into users (id, timezone) values ('$U', 'UTC')"

mkfifo "$tmp/in"
# VS_DRIVE_WRAPPER: "valgrind -q --leak-check=full", for example.
${VS_DRIVE_WRAPPER:-} "$top_builddir/tests/db_async_drive" \
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

# LISTEN/NOTIFY.  A unit sent after the LISTEN is answered after it.
now_us="(extract(epoch from clock_timestamp()) * 1000000)::bigint"
# notify TAG: a notification on vs_events whose payload is TAG and the time
notify() { sql "select pg_notify('vs_events', '$1:' || $now_us)" >/dev/null; }
# fast TAG: TAG's notification came within 100 ms
fast() {
	r=$(reply "$1" 5)
	lat=$(echo "$r" | cut -d' ' -f3)
	case $r in
	"notify vs_events "*) [ "$lat" -lt 100000 ] ;;
	*) false ;;
	esac
}
say "l1 listen vs_events"
is l1 "ok"
say "l2 listen Bad-Channel"
say "l3 listen $(printf 'c%.0s' $(seq 64))"
say "l4 listen 9lives"
r="$(reply l2) / $(reply l3) / $(reply l4)"
check "channel names refused: upper case, 64 bytes, a digit first ($r)" \
    test "$r" = "err -22 / err -22 / err -22"
say "l5 listen $(printf 'c%.0s' $(seq 63))"
say "w1 rows select 1"
reply w1 >/dev/null
notify n1
check "an idle connection gets a NOTIFY within 100 ms ($(reply n1))" fast n1
sql "notify vs_events" >/dev/null
wait_for 5 grep -qx "notify vs_events " "$tmp/out"
check "a NOTIFY without payload is delivered with an empty one" \
    grep -qx "notify vs_events " "$tmp/out"
i=0
while [ $i -lt 200 ]; do
	say "s$i exec select pg_sleep(0.01)"
	i=$((i + 1))
done
sleep 0.3
notify n2
r=$(reply n2 5)
pend=$(echo "$r" | cut -d' ' -f4)
if fast n2 && [ "${pend:-0}" -gt 10 ]; then
	ok "with 2 s of units queued, a NOTIFY within 100 ms ($r)"
else
	not_ok "with 2 s of units queued, a NOTIFY within 100 ms ($r)"
fi
wait_for 10 got s199
sql "select pg_notify('vs_other', 'x1:0')" >/dev/null
say "w2 rows select 1"
reply w2 >/dev/null
check "a channel nobody listens to is not delivered" \
    test "$(grep -c '^x1 ' "$tmp/out")" -eq 0

# The server restarts with a unit in flight (waiting for a lock another
# session holds) and more queued behind it.
sql "create table log (what text not null)"
psql -X -q -d $db -c "begin; lock table log in exclusive mode;
    select pg_sleep(60); commit;" >/dev/null 2>&1 3>&- &
locker=$!
locked() {
	[ "$(sql "select count(*) from pg_locks l join pg_class c
	    on c.oid = l.relation where c.relname = 'log'
	    and l.mode = 'ExclusiveLock' and l.granted")" -ge 1 ]
}
wait_for 10 locked || diag "the lock on log was not taken"
say "u1 exec begin ;; insert into log values ('u1') ;; commit"
say "u2 exec begin ;; insert into log values ('u2') ;; commit"
waiting() {
	[ "$(sql "select count(*) from pg_stat_activity where
	    application_name = 'db_async_drive' and wait_event_type = 'Lock'")" \
	    -ge 1 ]
}
check "u1 is in flight, waiting for a lock" wait_for 10 waiting
restart_server
wait "$locker" 2>/dev/null
say "u3 exec begin ;; insert into log values ('u3') ;; commit"
check "after the restart the listener is told to resynchronise" \
    wait_for 20 grep -qx resync.vs_events.1 "$tmp/out"
is u1 "ok"
is u3 "ok"
n=$(sql "select string_agg(what || ':' || n, ' ' order by what) from
    (select what, count(*) n from log group by what) c")
check "the unit in flight across the restart applied once ($n)" \
    test "$n" = "u1:1 u2:1 u3:1"
notify n3
check "a NOTIFY after the restart arrives within 100 ms ($(reply n3))" fast n3
check "one resync per listener per reconnect" \
    test "$(grep -c '^resync\.' "$tmp/out")" -eq 2

# The queue's cap.  A unit of 30 kB does not fit under 20 kB.
say "c0 cap 0"
is c0 "err -22"
say "c1 cap 20000"
say "q1 exec select pg_sleep(1)"
big=$(head -c 30000 /dev/zero | tr '\0' x)
say "$(printf 'q2 exec select length($1)\t%s' "$big")"
say "q3 rows select 3"
say "$(printf 'q4 exec select length($1)\t%s' "$big")"
r="$(reply q2 1) / $(reply q4 1) / $(got q1 && echo q1 done)"
check "past the cap: refused at once with -ENOBUFS ($(echo "$r" | cut -c1-60))" \
    test "$(echo "$r" | cut -d' ' -f1-2)" = "err -105"
case $r in
"err -105 database queue full: "*" bytes queued, a unit of 30371, cap 20000 /"*)
	ok "the message says why ($(echo "$r" | cut -d/ -f1))" ;;
*)	not_ok "the message says why ($r)" ;;
esac
is q3 "ok 1 1 3"
check "one warning for the episode" \
    test "$(grep -c 'queue full' "$tmp/err")" -eq 1
check "drained: the episode ends, with its count" \
    wait_for 5 grep -q 'taking units again (2 refused' "$tmp/err"
# reconcile.c: 20 consultations do not fit, the session's failure does.
say "q5 exec select pg_sleep(1)"
say "q6 reconcile $U 20"
say "q7 rows select 1"
reply q7 5 >/dev/null
st=$(sql "select status || ' ' || consultations_failed || ' ' ||
    (error_details->>'class') || ' ' ||
    (error_details->>'detail' like 'database queue full%')
    from idexx_sync_sessions where user_id = '$U'")
check "results refused by the queue: the session is failed ($st)" \
    test "$st" = "failed 20 database true"
nc=$(sql "select count(*) from consultation_sync_status")
check "and nothing of its results written ($nc)" test "$nc" -eq 0
# So small a cap that nothing fits: logged, and the driver goes on.
say "c2 cap 1000"
say "q8 reconcile $U 20"
say "q9 queued"
check "nothing fits: reconcile logs that the session stays running" \
    wait_for 5 grep -q "cannot record its failure: database queue full" \
    "$tmp/err"
is q9 "queued 0"
say "c3 cap 67108864"
say "q10 reconcile $U 20"
say "q11 rows select status, consultations_synced from idexx_sync_sessions where consultations_synced > 0"
is q11 "ok 1 2 completed,20"

# Prepared statements (BEGIN and COMMIT too, in these units).
say "$(printf 'p1 prows select $1::int * 2\t21')"
is p1 "ok 1 1 42"
# (Only this test's statements are in lower case; _ stands for $.)
mine="from pg_prepared_statements where statement like 'select %'"
mine="$mine or statement in ('begin', 'commit')"
say "p2 rows select string_agg(statement, ',') $mine"
is p2 'ok 1 1 select $1::int * 2'
say "$(printf 'p3 prows begin ;; select $1::int * 2\t5 ;; select 1/$1::int\t0 ;; commit')"
r=$(reply p3)
check "a prepared statement's error fails the unit ($r)" \
    test "$r" = "err -5 division by zero"
say "$(printf 'p4 prows select 1/$1::int\t1')"
is p4 "ok 1 1 1"
say "p5 rows select string_agg(statement, ',' order by statement) $mine"
is p5 'ok 1 1 begin,commit,select $1::int * 2,select 1/$1::int'
say "p6 prows selec nothing"
r=$(reply p6)
check "a statement that cannot be prepared fails its unit ($r)" \
    test "$r" = 'err -5 syntax error at or near "selec"'
say "$(printf 'p7 prows select $1::int * 2\t8')"
is p7 "ok 1 1 16"
restart_server
check "the connection was lost and made again" \
    wait_for 20 grep -qx resync.vs_events.2 "$tmp/out"
say "$(printf 'p8 prows select $1::int * 2\t50')"
r=$(reply p8 20)
check "after a reconnect the statement is prepared again ($r)" \
    test "$r" = "ok 1 1 100"
say "p9 rows select string_agg(statement, ',') from pg_prepared_statements"
is p9 'ok 1 1 select $1::int * 2'

# End of input: the layer is freed, the driver exits (under valgrind or
# the sanitizers, cleanly).
exec 3>&-
wait "$drv"
rc=$?
drv=
check "the driver exits cleanly ($rc)" test "$rc" -eq 0
if [ "$tap_failed" -gt 0 ]; then
	diag "driver output:"
	sed 's/^/# /' "$tmp/out" "$tmp/err" | tail -40
fi
exit 0
