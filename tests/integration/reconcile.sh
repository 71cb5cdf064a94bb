#!/bin/sh
# Reconciliation into cases on a real PostgreSQL, end to end: vetsyncd runs
# the real, sandboxed vetsync-worker against tests/idexx_sim (neo, 50
# consultations per clinic) and writes the results through its
# asynchronous database layer, tenant-scoped.  Checks every consultation's
# sync status and its notes (SHA-256 against the simulator's
# /__sim/expected), the session row, that a second sync changes nothing,
# the appointment-id rule on a pre-existing case, an ambiguous match, RLS,
# and a database that is down while a clinic syncs and restarted while
# its results wait: nothing lost, nothing doubled.  Then vetsyncd killed
# (SIGKILL) in the middle of a sync and started again: the session it
# left running is closed ('failed', "daemon restarted"; 'timeout' when
# older than the job timeout) and audited, another instance's is not.
#
# Runs itself again inside pg_virtualenv, as tests/integration/db.sh does.
. "$top_srcdir/tests/integration/lib.sh"

in_pg_virtualenv "$@"

N=36
skip_all() { skip_plan $N "reconcile case" "$1"; }
[ "$(id -u)" -eq 0 ] || skip_all "needs root (worker identity)"
grep -q '^#define VS_SANITIZERS 1' "$top_builddir/config.h" &&
    skip_all "sanitizer build: the worker policy refuses ASan"
for tool in jq curl psql; do
	command -v $tool >/dev/null 2>&1 || skip_all "$tool is not installed"
done
sim=$top_builddir/tests/idexx_sim
[ -x "$sim" ] || skip_all "tests/idexx_sim not built"

tap_plan $N

tz=America/Denver
U=11111111-2222-4333-8444-555555555501
V=11111111-2222-4333-8444-555555555502
W=11111111-2222-4333-8444-555555555503
O=99999999-2222-4333-8444-555555555599
db=vetsync_recon
supw=${PGPASSWORD:-}
dpw="daemon-pw-$$"
tmp=$(mktemp -d /tmp/vetsync-recon.XXXXXX)
chmod 755 "$tmp"
simpid=
daemon=
cleanup() {
	[ -n "$daemon" ] && kill -KILL "$daemon" 2>/dev/null
	[ -n "$simpid" ] && kill "$simpid" 2>/dev/null
	# The cluster may have been stopped by a case that failed half-way.
	pg_ctlcluster "${PGVERSION:-15}" regress start >/dev/null 2>&1
	rm -rf "$tmp"
}
trap cleanup EXIT

sql() { PGPASSWORD=$supw psql -X -q -At -v ON_ERROR_STOP=1 -d $db -c "$*"; }
# as_user SUB STATEMENT: as authenticated with user SUB's claims
as_user() {
	sql "begin; set local role authenticated;
	    set local request.jwt.claims = '{\"sub\": \"$1\", \"role\": \"authenticated\"}';
	    $2; commit;" | tail -1
}
num() { case $1 in ''|*[!0-9]*) echo -1 ;; *) echo "$1" ;; esac; }

PGPASSWORD=$supw createdb -T template0 $db
"$top_builddir/vetsyncctl" migrate --dir "$top_srcdir/migrations" \
    --conninfo "dbname=$db" >"$tmp/migrate.log" 2>&1 ||
    { cat "$tmp/migrate.log" | sed 's/^/# /'; }
sql "alter role vetsync_daemon login password '$dpw'"
sql "insert into users (id, clinic_name, idexx_sync_enabled, timezone) values
    ('$U', 'Clinic One', true, '$tz'), ('$V', 'Clinic Two', true, '$tz'),
    ('$W', 'Clinic Three', true, '$tz'),
    ('$O', 'Other', true, '$tz')"

"$sim" --port 0 --port-file "$tmp/port" --profile neo --timezone $tz \
    --clinics 3 --consultations 50 --latency-ms 5 >"$tmp/sim.log" 2>&1 &
simpid=$!
wait_for 10 test -s "$tmp/port" || diag "simulator did not start"
url=http://127.0.0.1:$(cat "$tmp/port")
wstart=$(TZ=$tz date -d '49 hours ago' '+%Y-%m-%d %H:%M:%S')
wend=$(TZ=$tz date -d '1 hour' '+%Y-%m-%d %H:%M:%S')
expected() {
	curl -s -G "$url/__sim/expected" --data-urlencode clinic=$1 \
	    --data-urlencode "start=$wstart" --data-urlencode "end=$wend"
}
expected 1 >"$tmp/exp1.json"
expected 2 >"$tmp/exp2.json"
expected 3 >"$tmp/exp3.json"
# Tomorrow, clinic-local: what the schedule sync fetches.
wstart=$(TZ=$tz date -d tomorrow '+%Y-%m-%d 00:00:00')
wend=$(TZ=$tz date -d '2 days' '+%Y-%m-%d 00:00:00')
expected 1 >"$tmp/tomorrow.json"

# Before any sync: a case carrying one consultation's appointment id, and
# two cases for another's patient on its day (one candidate too many).
ca=$(jq -r '.consultations[20].id' "$tmp/exp1.json")
aa=$(jq -r '.consultations[20].appointment_id' "$tmp/exp1.json")
cb=$(jq -r '.consultations[21].id' "$tmp/exp1.json")
pb=$(jq -r '.consultations[21].patient_name' "$tmp/exp1.json")
db_=$(jq -r '.consultations[21].date' "$tmp/exp1.json")
sql "insert into cases (user_id, patient_name, idexx_appointment_id, status)
    values ('$U', 'Pre-existing', '$aa', 'scheduled')"
sql "insert into cases (user_id, patient_name, scheduled_at) values
    ('$U', \$\$${pb}\$\$, ('$db_'::timestamp at time zone '$tz')),
    ('$U', \$\$${pb}\$\$, ('$db_'::timestamp at time zone '$tz'))"

# A case already booked for an appointment that is cancelled tomorrow.
xa=$(jq -r '[.appointments[] | select(.cancelled and (.is_block | not) and
    (.is_roster | not))][0].id // empty' "$tmp/tomorrow.json")
[ -n "$xa" ] && sql "insert into cases (user_id, patient_name,
    idexx_appointment_id, status) values ('$U', 'Booked', '$xa', 'scheduled')"

mkdir -p "$tmp/state" "$tmp/creds"
chmod 700 "$tmp/creds"
printf 'vet1@clinic1.test\npassword-1\nc1\n' >"$tmp/creds/idexx-$U"
printf 'vet2@clinic2.test\npassword-2\nc2\n' >"$tmp/creds/idexx-$V"
printf 'vet3@clinic3.test\npassword-3\nc3\n' >"$tmp/creds/idexx-$W"
printf '%s\n' "$dpw" >"$tmp/creds/db-password"
chmod 600 "$tmp/creds"/*
cat >"$tmp/vetsyncd.conf" <<CONF
[idexx]
profile = $top_srcdir/deploy/neo-profile.conf
base_url = $url
request_rate = 100
max_parallel = 8
[schedule]
default_timezone = $tz
[workers]
binary = $top_builddir/vetsync-worker
policy_dir = $top_srcdir/policy
user = nobody
group = nogroup
backoff_initial = 1s
[database]
conninfo = host=$PGHOST port=${PGPORT:-5432} dbname=$db user=vetsync_daemon
connect_timeout = 2s
[instance]
name = rc$$
CONF
start_daemon() {
	rm -f "$tmp/control.sock"
	CREDENTIALS_DIRECTORY="$tmp/creds" "$top_builddir/vetsyncd" -d \
	    -c "$tmp/vetsyncd.conf" -S "$tmp/control.sock" -s "$tmp/state" \
	    2>>"$tmp/vetsyncd.log" &
	daemon=$!
	wait_for 10 test -S "$tmp/control.sock" || diag "vetsyncd did not start"
}
start_daemon
ctl() { "$top_builddir/vetsyncctl" -c "$tmp/vetsyncd.conf" \
    -S "$tmp/control.sock" "$@"; }

# sessions USER STATUS: how many of USER's sessions have STATUS
sessions() {
	num "$(sql "select count(*) from idexx_sync_sessions
	    where user_id = '$1' and status = '$2'")"
}
sessions_ge() { [ "$(sessions "$1" completed)" -ge "$2" ]; }
# sync USER K: sync and wait for USER's K-th completed session
sync_wait() {
	ctl sync --user "$1" >/dev/null || return 1
	wait_for 60 sessions_ge "$1" "$2"
}
snapshot() {
	sql "select id, updated_at, metadata from cases where user_id = '$1'
	    order by id" >"$tmp/snap.$2"
	sql "select consultation_id, case_id, updated_at, match_rule
	    from consultation_sync_status where user_id = '$1'
	    order by consultation_id" >>"$tmp/snap.$2"
}
# notes_match USER EXPFILE: every case's notes hash as the simulator's
notes_match() {
	jq -r '.consultations[] | "\(.id) \(.notes_sha256)"' "$2" | sort \
	    >"$tmp/want"
	sql "select s.consultation_id || ' ' || encode(sha256(convert_to(
	    coalesce(c.metadata->'idexx'->>'notes', ''), 'UTF8')), 'hex')
	    from consultation_sync_status s join cases c on c.id = s.case_id
	    where s.user_id = '$1'" | sort >"$tmp/got"
	join -j1 -o 1.2,2.2 "$tmp/want" "$tmp/got" >"$tmp/joined"
	awk '$1 != $2' "$tmp/joined" >"$tmp/bad"
	n=$(wc -l <"$tmp/got")
	j=$(wc -l <"$tmp/joined")
	[ "$n" -ge 40 ] && [ "$j" -eq "$n" ] && [ ! -s "$tmp/bad" ] ||
	    { diag "$n cases with notes, $j known, $(wc -l <"$tmp/bad") differ"
	    return 1; }
}

check "first sync completes (session row completed)" sync_wait $U 1
ns=$(num "$(sql "select count(*) from consultation_sync_status where user_id = '$U'")")
check "50 consultation_sync_status rows ($ns)" test "$ns" -eq 50
check "every case's notes are the simulator's, byte for byte" notes_match $U "$tmp/exp1.json"
# created: the completed ones among those synced, less the one matched by
# appointment id and the ambiguous one (when completed), plus the 3 above
sql "select consultation_id from consultation_sync_status
    where user_id = '$U'" >"$tmp/ids"
ncomp=$(jq -r '.consultations[] | select(.status == "completed") | .id' \
    "$tmp/exp1.json" | grep -cxFf "$tmp/ids")
ncase=$(num "$(sql "select count(*) from cases where user_id = '$U'")")
# Every consultation of that patient on that day sees both cases.
jq -r --arg p "$pb" --arg d "$(echo "$db_" | cut -c1-10)" '.consultations[] |
    select(.patient_name == $p and (.date | startswith($d))) |
    "\(.id) \(.status)"' "$tmp/exp1.json" | grep -Ff "$tmp/ids" |
    sort >"$tmp/amb.want"
want=$((ncomp - $(grep -c ' completed$' "$tmp/amb.want")))
[ "$(jq -r ".consultations[20].status" "$tmp/exp1.json")" = completed ] &&
    want=$((want - 1))
# the cases made above: 3, and 1 more for a cancelled appointment
want=$((want + 3))
[ -n "$xa" ] && want=$((want + 1))
[ "$ncase" -eq "$want" ] || diag "$(sql "select coalesce(match_rule, '-') ||
    ':' || sync_status || ':' || count(*) from consultation_sync_status
    where user_id = '$U' group by match_rule, sync_status" | tr '\n' ' ')"
check "cases: $ncomp completed consultations -> $ncase cases (want $want)" \
    test "$ncase" -eq "$want"
row=$(sql "select status || ' ' || consultations_synced || ' ' ||
    consultations_failed || ' ' || (completed_at is not null)
    from idexx_sync_sessions where user_id = '$U' and status <> 'running'")
check "session: completed, 50 synced, 0 failed ($row)" test "$row" = "completed 50 0 true"
got=$(sql "select count(*) || ' ' || string_agg(s.match_rule, ',') || ' ' ||
    bool_and(c.patient_name = 'Pre-existing')
    from consultation_sync_status s join cases c on c.id = s.case_id
    where s.user_id = '$U' and s.consultation_id = '$ca'")
check "pre-existing case matched by appointment id, not duplicated ($got)" \
    test "$got" = "1 appointment true"
[ "$got" = "1 appointment true" ] ||
    diag "$ca/$aa: $(sql "select consultation_id, case_id, match_rule,
    idexx_appointment_id from consultation_sync_status
    where consultation_id = '$ca' or idexx_appointment_id = '$aa'")"
nd=$(num "$(sql "select count(*) from cases where user_id = '$U' and idexx_appointment_id = '$aa'")")
check "one case for that appointment ($nd)" test "$nd" -eq 1
amb=$(sql "select match_rule || ' ' || (case_id is null) || ' ' ||
    jsonb_array_length(match_details->'candidates')
    from consultation_sync_status where user_id = '$U' and consultation_id = '$cb'")
check "two candidate cases: ambiguous, no case, 2 candidates ($amb)" \
    test "$amb" = "ambiguous true 2"
cut -d' ' -f1 "$tmp/amb.want" >"$tmp/amb.ids"
sql "select consultation_id from consultation_sync_status where user_id = '$U'
    and match_rule = 'ambiguous' and case_id is null order by 1" |
    sort >"$tmp/amb.got"
check "ambiguous: exactly that patient's consultations of that day ($(wc -l <"$tmp/amb.got"))" \
    cmp -s "$tmp/amb.ids" "$tmp/amb.got"

snapshot $U 1
check "second sync completes" sync_wait $U 2
snapshot $U 2
check "second sync changes nothing (same rows, same updated_at)" \
    cmp -s "$tmp/snap.1" "$tmp/snap.2"

ru=$(num "$(as_user $U "select count(*) from cases")")
ro=$(num "$(as_user $O "select count(*) from cases")")
rs=$(num "$(as_user $O "select count(*) from consultation_sync_status")")
check "RLS: the user sees its $ru cases, another user none ($ro, $rs)" \
    test "$ru" -eq "$ncase" -a "$ro" -eq 0 -a "$rs" -eq 0
ra=$(num "$(sql "begin; set local role anon; select count(*) from cases; commit;" 2>/dev/null | tail -1)")
check "RLS: an anonymous caller reads no case ($ra)" test "$ra" -le 0

# Schedule: tomorrow's visits become cases, once.
kind_ge() {
	[ "$(num "$(sql "select count(*) from idexx_sync_sessions where
	    user_id = '$1' and kind = 'schedule' and status = 'completed'")")" \
	    -ge "$2" ]
}
sched_wait() {
	ctl sync --user "$1" --kind schedule >/dev/null || return 1
	wait_for 60 kind_ge "$1" "$2"
}
check "schedule sync completes" sched_wait $U 1
jq -r '.appointments[] | select((.cancelled | not) and (.is_block | not) and
    (.is_roster | not)) | .id' "$tmp/tomorrow.json" | sort >"$tmp/visits"
sql "select idexx_appointment_id || ' ' || count(*) || ' ' || min(status)
    from cases where user_id = '$U' and metadata ? 'idexx_appointment'
    group by idexx_appointment_id" | sort >"$tmp/sched"
sched_ok() {
	[ -s "$tmp/visits" ] || { diag "no visits tomorrow"; return 1; }
	while read -r a; do
		grep -qx "$a 1 scheduled" "$tmp/sched" ||
		    { diag "appointment $a: '$(grep "^$a " "$tmp/sched")'"
		    return 1; }
	done <"$tmp/visits"
}
sched_ok >/dev/null || { diag "sched: $(tr '\n' ';' <"$tmp/sched")"
    diag "expected: $(jq -c '[.appointments[] | [.id, .cancelled, .is_block, .is_roster, .current_status, .start]]' "$tmp/tomorrow.json")"; }
check "each of tomorrow's $(wc -l <"$tmp/visits") visits has one scheduled case" sched_ok
if [ -n "$xa" ]; then
	xs=$(sql "select string_agg(status, ',') from cases
	    where user_id = '$U' and idexx_appointment_id = '$xa'")
	check "a booked case whose appointment was cancelled is marked ($xs)" \
	    test "$xs" = cancelled
else
	skip "a booked case whose appointment was cancelled is marked" \
	    "no cancelled appointment tomorrow"
fi
snapshot $U 3
sched_wait $U 2
snapshot $U 4
check "a second schedule sync changes nothing" cmp -s "$tmp/snap.3" "$tmp/snap.4"

# The database goes away while clinic two syncs, and comes back.
pg_ctlcluster "${PGVERSION:-15}" regress stop
ctl sync --user $V >/dev/null
wait_for 60 grep -q "clinic=$V job=[0-9]*: reconcile_notes done" "$tmp/vetsyncd.log"
check "clinic two's job ran with the database down" \
    grep -q "clinic=$V job=[0-9]*: reconcile_notes done" "$tmp/vetsyncd.log"
check "the daemon said once that the database was lost" \
    test "$(grep -c 'database .*connection lost\|database .*cannot connect' "$tmp/vetsyncd.log")" -eq 1
pg_ctlcluster "${PGVERSION:-15}" regress start
wait_for 60 sessions_ge $V 1
nv=$(num "$(sql "select count(*) || '/' || count(distinct consultation_id)
    from consultation_sync_status where user_id = '$V'" | tr -d /)")
check "after the restart: clinic two's 50 results written once ($nv)" \
    test "$nv" = 5050
check "clinic two's notes match too" notes_match $V "$tmp/exp2.json"
dup=$(num "$(sql "select count(*) from (select idexx_consultation_id from cases
    where user_id = '$V' group by 1 having count(*) > 1) d")")
check "no case doubled ($dup)" test "$dup" -eq 0

# Restarted with clinic three's results in flight: a lock held elsewhere
# keeps its transaction waiting until the server goes down under it.
PGPASSWORD=$supw psql -X -q -d $db -c "begin; lock table cases in exclusive
    mode; select pg_sleep(120); commit;" >/dev/null 2>&1 &
locker=$!
waiting() {
	[ "$(sql "select count(*) from pg_stat_activity where
	    application_name = 'vetsyncd' and wait_event_type = 'Lock'")" -ge 1 ]
}
ctl sync --user $W >/dev/null
if wait_for 60 waiting; then
	ok "clinic three's results are in flight, waiting for a lock"
else
	not_ok "clinic three's results are in flight, waiting for a lock"
fi
# (Stop and start: "restart" trusts a pid file that other throw-away
# clusters named regress share.)
pg_ctlcluster "${PGVERSION:-15}" regress stop -m fast
pg_ctlcluster "${PGVERSION:-15}" regress start
wait "$locker" 2>/dev/null
check "after the restart: clinic three's session completed" \
    wait_for 60 sessions_ge $W 1
nw=$(num "$(sql "select count(*) || '/' || count(distinct consultation_id)
    from consultation_sync_status where user_id = '$W'" | tr -d /)")
dw=$(num "$(sql "select count(*) from (select idexx_consultation_id
    from cases where user_id = '$W' group by 1 having count(*) > 1) d")")
check "clinic three's 50 results written once, no case doubled ($nw, $dw)" \
    test "$nw" = 5050 -a "$dw" -eq 0

# A transaction the server refuses: the results are rolled back, and the
# session says so instead of staying 'running'.
sql "revoke insert on cases from authenticated"
failed_ge() {
	[ "$(num "$(sql "select count(*) from idexx_sync_sessions where
	    user_id = '$V' and status = 'failed'
	    and error_details->>'class' = 'database'")")" -ge 1 ]
}
ctl sync --user $V >/dev/null
check "a refused transaction marks the session failed" wait_for 60 failed_ge
sql "grant insert on cases to authenticated"
nr=$(num "$(sql "select count(*) from idexx_sync_sessions where
    user_id = '$V' and status = 'running'")")
check "no session left running ($nr)" test "$nr" -eq 0

# A serialization failure (raised once, by a trigger whose sequence does
# not roll back) is retried: the sync completes.
sql "create sequence vs_fail_once;
    create function vs_fail_once() returns trigger language plpgsql
    security definer as \$f\$ begin
	if nextval('vs_fail_once') = 1 then
		raise exception 'injected' using errcode = '40001';
	end if;
	return null;
    end \$f\$;
    create trigger vs_fail_once before insert on consultation_sync_status
    for each statement execute function vs_fail_once()"
check "a serialization failure is retried, the sync completes" \
    sync_wait $V 2
sql "drop trigger vs_fail_once on consultation_sync_status"
check "the injected failure happened ($(sql "select last_value from vs_fail_once"))" \
    test "$(sql "select last_value from vs_fail_once")" -ge 2

# Stopped in the middle of a job: the cancelled job's end is written
# before vetsyncd exits, so no session is left running.
running_w() {
	[ "$(sql "select count(*) from idexx_sync_sessions where
	    user_id = '$W' and status = 'running'")" -ge 1 ]
}
ctl sync --user $W >/dev/null
wait_for 30 running_w || diag "clinic three's second session did not start"
kill -TERM "$daemon"
wait "$daemon" 2>/dev/null
daemon=
st=$(sql "select string_agg(status, ',' order by started_at)
    from idexx_sync_sessions where user_id = '$W'")
check "stopped mid-job: the session is closed, not left running ($st)" \
    test "$(sql "select count(*) from idexx_sync_sessions
    where user_id = '$W' and status = 'running'")" -eq 0

# Killed mid-job: nothing is written on the way out.  Beside it, a session
# of this instance older than the job timeout (default 10 min) and one of
# another instance, both running.
start_daemon
sql "insert into idexx_sync_sessions (user_id, kind, status, instance,
    started_at) values ('$V', 'notes', 'running', 'other-vm', now()),
    ('$V', 'schedule', 'running', 'rc$$', now() - interval '2 days')"
curl -s -X POST --data '{"latency_ms": 400}' "$url/__sim/control" >/dev/null
ctl sync --user $W >/dev/null
wait_for 30 running_w || diag "clinic three's third session did not start"
kill -KILL "$daemon"
wait "$daemon" 2>/dev/null
daemon=
curl -s -X POST --data '{"latency_ms": 5}' "$url/__sim/control" >/dev/null
stale=$(sql "select id from idexx_sync_sessions where user_id = '$W'
    and status = 'running'")
check "killed mid-job: its session is left running ($stale)" \
    test -n "$stale"
start_daemon
closed() {
	[ "$(sql "select status from idexx_sync_sessions
	    where id = '${stale:-00000000-0000-4000-8000-000000000000}'")" != running ]
}
wait_for 30 closed
st=$(sql "select status || ' ' || (error_details->>'reason') || ' ' ||
    (completed_at is not null) from idexx_sync_sessions
    where id = '${stale:-00000000-0000-4000-8000-000000000000}'")
check "restarted: the stale session is failed, daemon restarted ($st)" \
    test "$st" = "failed daemon restarted true"
st=$(sql "select string_agg(status, ',') from idexx_sync_sessions
    where user_id = '$V' and kind = 'schedule' and instance = 'rc$$'
    and started_at < now() - interval '1 day'")
check "one older than the job timeout becomes timeout ($st)" \
    test "$st" = timeout
st=$(sql "select string_agg(status, ',') from idexx_sync_sessions
    where instance = 'other-vm'")
check "another instance's running session is left alone ($st)" \
    test "$st" = running
audited() {
	[ "$(cat "$tmp/state/audit.spool" 2>/dev/null |
	    grep '"sync_session_closed"' | grep -c 'daemon restarted')" -ge 2 ] ||
	[ "$(sql "select count(*) from idexx_sync_audit_log
	    where action = 'sync_session_closed'")" -ge 2 ]
}
check "both closings are audited" wait_for 10 audited
n3=$(sessions $W completed)
check "after the restart clinic three syncs again" sync_wait $W $((n3 + 1))
kill -TERM "$daemon"
wait "$daemon" 2>/dev/null
daemon=
if [ "$tap_failed" -gt 0 ]; then
	diag "vetsyncd log (tail):"
	tail -30 "$tmp/vetsyncd.log" | sed 's/^/# /'
fi
exit 0
