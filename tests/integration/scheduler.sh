#!/bin/sh
# The scheduler on a real PostgreSQL, end to end: vetsyncd runs the real,
# sandboxed worker against tests/idexx_sim with nobody asking.
#
#   - 20 clinics with active credentials (of 50 users) are all synced by
#     the scheduler alone, their starts spread over the notes interval; the
#     others are not; next_scheduled_sync is kept on the session rows;
#   - notes the simulator adds after the first sync arrive at the next run;
#   - the nightly schedule sync runs once per clinic at its local time (set
#     two minutes ahead), and only for the clinics active at that time;
#   - catch-up: the daemon stopped (cleanly: its leases freed) for several
#     slots and started again runs each clinic once, soon, not once per
#     missed slot -- also for clinics whose plan was lost, planned again
#     from their last session;
#   - two instances share 50 clinics; one is killed (SIGKILL) midway: every
#     clinic is synced, the dead one's clinics move to the living one within
#     the lease time, and no clinic's sessions of the two instances ever
#     overlap in time;
#   - an operator's request with a window of dates (bad ones refused) for
#     a clinic nobody schedules: its lease claimed on demand, then freed.
#
# VETSYNC_SCHEDULE_SCALE=30 turns the 5 min notes interval (the shortest
# the configuration takes) into 10 s.  Runs itself again inside
# pg_virtualenv, as tests/integration/reconcile.sh does.
. "$top_srcdir/tests/integration/lib.sh"

in_pg_virtualenv "$@"

N=20
skip_all() { skip_plan $N "scheduler case" "$1"; }
[ "$(id -u)" -eq 0 ] || skip_all "needs root (worker identity)"
grep -q '^#define VS_SANITIZERS 1' "$top_builddir/config.h" &&
    skip_all "sanitizer build: the worker policy refuses ASan"
for tool in jq curl psql; do
	command -v $tool >/dev/null 2>&1 || skip_all "$tool is not installed"
done
sim=$top_builddir/tests/idexx_sim
[ -x "$sim" ] || skip_all "tests/idexx_sim not built"

tap_plan $N

SCALE=30		# notes_interval 5m -> 10 s
INTERVAL=10
LEASE=10
tz=Europe/London
db=vetsync_sched
supw=${PGPASSWORD:-}
dpw="daemon-pw-$$"
tmp=$(mktemp -d /tmp/vetsync-sched.XXXXXX)
chmod 755 "$tmp"
simpid=
pa=
pb=
cleanup() {
	[ -n "$pa" ] && kill -KILL "$pa" 2>/dev/null
	[ -n "$pb" ] && kill -KILL "$pb" 2>/dev/null
	[ -n "$simpid" ] && kill "$simpid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

sql() { PGPASSWORD=$supw psql -X -q -At -v ON_ERROR_STOP=1 -d $db -c "$*"; }
num() { case $1 in ''|*[!0-9]*) echo -1 ;; *) echo "$1" ;; esac; }
uid() { printf '5c4ed000-0000-4000-8000-%012d' "$1"; }

PGPASSWORD=$supw createdb -T template0 $db
"$top_builddir/vetsyncctl" migrate --dir "$top_srcdir/migrations" \
    --conninfo "dbname=$db" >"$tmp/migrate.log" 2>&1 ||
    sed 's/^/# /' "$tmp/migrate.log"
sql "alter role vetsync_daemon login password '$dpw'"

"$sim" --port 0 --port-file "$tmp/port" --profile neo --timezone $tz \
    --clinics 51 --consultations 6 --latency-ms 1 >"$tmp/sim.log" 2>&1 &
simpid=$!
wait_for 10 test -s "$tmp/port" || diag "simulator did not start"
url=http://127.0.0.1:$(cat "$tmp/port")

# 50 users with sync enabled and a file credential each; only the first 20
# have credentials in state active (the scheduler's clinics) for now.
mkdir -p "$tmp/creds" "$tmp/state-a" "$tmp/state-b"
chmod 700 "$tmp/creds"
values=
for i in $(seq 51); do
	u=$(uid $i)
	printf 'vet%d@clinic%d.test\npassword-%d\nc%d\n' $i $i $i $i \
	    >"$tmp/creds/idexx-$u"
	values="$values${values:+,}('$u', 'Clinic $i', true, '$tz')"
done
printf '%s\n' "$dpw" >"$tmp/creds/db-password"
chmod 600 "$tmp/creds"/*
sql "insert into users (id, clinic_name, idexx_sync_enabled, timezone)
    values $values"
activate() {
	sql "insert into idexx_credentials (user_id, encrypted_username,
	    encrypted_password, encryption_key_id, state, validation_status)
	    select u.id, 'file', 'file', 'file', 'active', 'valid' from users u
	    where u.id in (select ('5c4ed000-0000-4000-8000-' ||
	    lpad(g::text, 12, '0'))::uuid from generate_series($1, $2) g)"
}
activate 1 20

# The nightly schedule sync in two minutes, clinic-local.
slot=$(TZ=$tz date -d '+2 min' '+%H:%M')
slot_utc=$(date -u -d "$(TZ=$tz date -d '+2 min' '+%Y-%m-%d %H:%M:00 %z')" \
    '+%Y-%m-%d %H:%M:%S+00')
cat >"$tmp/vetsyncd.conf" <<CONF
[idexx]
profile = $top_srcdir/deploy/neo-profile.conf
base_url = $url
request_rate = 100
max_parallel = 8
[schedule]
notes_interval = 5m
jitter = 30s
default_timezone = $tz
schedule_sync_time = $slot
[workers]
binary = $top_builddir/vetsync-worker
policy_dir = $top_srcdir/policy
user = nobody
group = nogroup
backoff_initial = 1s
max_concurrent = 4
[database]
conninfo = host=$PGHOST port=${PGPORT:-5432} dbname=$db user=vetsync_daemon
connect_timeout = 2s
[instance]
lease_time = ${LEASE}s
CONF
# start NAME STATEDIR: vetsyncd as instance NAME, its pid in $started
start() {
	sed "s/^\[instance\]$/[instance]\nname = $1/" "$tmp/vetsyncd.conf" \
	    >"$tmp/$1.conf"
	rm -f "$tmp/$1.sock"
	VETSYNC_SCHEDULE_SCALE=$SCALE CREDENTIALS_DIRECTORY="$tmp/creds" \
	    "$top_builddir/vetsyncd" -c "$tmp/$1.conf" -S "$tmp/$1.sock" \
	    -s "$2" >/dev/null 2>>"$tmp/$1.log" &
	started=$!
	wait_for 10 test -S "$tmp/$1.sock" || diag "vetsyncd $1 did not start"
}
# completed USER [SINCE]: USER's completed notes sessions (since SINCE)
completed() {
	num "$(sql "select count(*) from idexx_sync_sessions where
	    user_id = '$1' and kind = 'notes' and status = 'completed'
	    and started_at >= coalesce(nullif('${2:-}', '')::timestamptz,
	    '-infinity')")"
}
# all_synced FROM TO [SINCE]: every clinic FROM..TO has a completed session
all_synced() {
	n=$(num "$(sql "select count(distinct user_id) from idexx_sync_sessions
	    where kind = 'notes' and status = 'completed'
	    and started_at >= coalesce(nullif('${3:-}', '')::timestamptz,
	    '-infinity') and user_id in (select ('5c4ed000-0000-4000-8000-' ||
	    lpad(g::text, 12, '0'))::uuid from generate_series($1, $2) g)")")
	[ "$n" -eq $(($2 - $1 + 1)) ]
}
now() { sql "select now()"; }

# --- 20 clinics, nobody asking -------------------------------------------
t0=$(now)
start sa "$tmp/state-a"
pa=$started
wait_for 60 all_synced 1 20
check "the scheduler synced all 20 clinics with active credentials" \
    all_synced 1 20
others=$(num "$(sql "select count(*) from idexx_sync_sessions
    where user_id not in (select user_id from idexx_credentials)")")
check "users without active credentials were not synced ($others)" \
    test "$others" -eq 0
# The first runs start at each clinic's slot: spread over the interval.
spread=$(num "$(sql "select count(distinct floor(extract(epoch from
    started_at)))::int from (select distinct on (user_id) started_at
    from idexx_sync_sessions order by user_id, started_at) f")")
check "first runs spread over the interval: $spread distinct seconds of 20" \
    test "$spread" -ge 6
wait_for 5 test "$(num "$(sql "select count(*) from (select distinct on
    (user_id) next_scheduled_sync, started_at from idexx_sync_sessions
    where status <> 'running' order by user_id, started_at desc) l
    where next_scheduled_sync > started_at")")" -ge 20
nss=$(num "$(sql "select count(*) from (select distinct on (user_id)
    next_scheduled_sync, started_at from idexx_sync_sessions
    where status <> 'running' order by user_id, started_at desc) l
    where next_scheduled_sync > started_at")")
check "next_scheduled_sync is on each clinic's latest session ($nss/20)" \
    test "$nss" -eq 20

# --- notes added after the first sync arrive at the next run -------------
wstart=$(TZ=$tz date -d '49 hours ago' '+%Y-%m-%d %H:%M:%S')
wend=$(TZ=$tz date -d '1 hour' '+%Y-%m-%d %H:%M:%S')
expected() {
	curl -s -G "$url/__sim/expected" --data-urlencode clinic=$1 \
	    --data-urlencode "start=$wstart" --data-urlencode "end=$wend"
}
for i in 1 2 3; do expected $i >"$tmp/before.$i"; done
curl -s -X POST -d '{"add_notes": true}' "$url/__sim/control" >/dev/null
t1=$(now)
for i in 1 2 3; do expected $i >"$tmp/after.$i"; done
# notes_now I: clinic I's notes in the database are the simulator's now
notes_now() {
	jq -r '.consultations[] | "\(.id) \(.notes_sha256)"' "$tmp/after.$1" |
	    sort >"$tmp/want.$1"
	sql "select s.consultation_id || ' ' || encode(sha256(convert_to(
	    coalesce(c.metadata->'idexx'->>'notes', ''), 'UTF8')), 'hex')
	    from consultation_sync_status s join cases c on c.id = s.case_id
	    where s.user_id = '$(uid $1)'" | sort >"$tmp/got.$1"
	[ -s "$tmp/got.$1" ] &&
	    [ -z "$(join -j1 -o 1.2,2.2 "$tmp/want.$1" "$tmp/got.$1" |
	    awk '$1 != $2')" ]
}
changed=0
for i in 1 2 3; do
	cmp -s "$tmp/before.$i" "$tmp/after.$i" || changed=$((changed + 1))
done
[ $changed -gt 0 ] || diag "the simulator changed no notes"
wait_for 40 all_synced 1 20 "$t1"
check "after the notes changed, every clinic ran again (no trigger)" \
    all_synced 1 20 "$t1"
notes_arrived() {
	[ $changed -gt 0 ] && notes_now 1 && notes_now 2 && notes_now 3
}
check "the new notes arrived ($changed of 3 clinics checked had changes)" \
    notes_arrived
# No clinic ran twice at once within the instance.
ov=$(num "$(sql "select count(*) from idexx_sync_sessions x
    join idexx_sync_sessions y on x.user_id = y.user_id and x.id < y.id
    and x.started_at < coalesce(y.completed_at, now())
    and y.started_at < coalesce(x.completed_at, now())")")
check "no clinic had two sessions at once ($ov)" test "$ov" -eq 0
# The nightly slot comes while this instance runs (checked at the end).
sched_n() {
	num "$(sql "select count(*) from idexx_sync_sessions
	    where kind = 'schedule' and status = 'completed'")"
}
wait_for 150 test "$(sched_n)" -ge 20 || diag "schedule syncs: $(sched_n)"

# --- catch-up after downtime ---------------------------------------------
kill -TERM "$pa"
wait "$pa" 2>/dev/null
pa=
held=$(num "$(sql "select count(*) from clinic_leases where instance is not
    null")")
beat=$(num "$(sql "select count(*) from vetsync_instances")")
check "a clean stop frees every lease ($held) and the heartbeat ($beat)" \
    test "$held" -eq 0 -a "$beat" -eq 0
# Down for 3 intervals or more; half the clinics also lose their plan (as
# on a first start over old sessions): planned again from the sessions.
sleep $((3 * INTERVAL + 2))
sql "delete from clinic_leases where user_id in (select
    ('5c4ed000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid
    from generate_series(1, 10) g)"
t2=$(now)
start sa "$tmp/state-a"
pa=$started
wait_for 40 all_synced 1 20 "$t2"
check "after the downtime every clinic caught up" all_synced 1 20 "$t2"
# Once: within half an interval of its catch-up run a clinic ran once
# (a run per missed slot would follow back to back).
sleep $((INTERVAL / 2 + 1))
twice=$(sql "select user_id from (select user_id, started_at,
    min(started_at) over (partition by user_id) as first
    from idexx_sync_sessions where started_at >= '$t2') s
    where started_at < first + interval '$((INTERVAL / 2)) seconds'
    group by user_id having count(*) > 1")
check "one catch-up run per clinic, not one per missed slot" \
    test -z "$twice"
[ -z "$twice" ] || diag "ran twice: $(echo $twice)"
planned=$(num "$(sql "select count(*) from clinic_leases
    where next_notes_at > '$t2'")")
check "the 20 clinics are planned again ($planned)" test "$planned" -eq 20

# --- two instances share 50 clinics, one is killed -----------------------
activate 21 50
t3=$(now)
start sb "$tmp/state-b"
pb=$started
sleep $((INTERVAL + 5))
both=$(sql "select string_agg(instance || ':' || n, ' ' order by instance)
    from (select instance, count(*) n from idexx_sync_sessions
    where started_at >= '$t3' group by instance) s")
kill -KILL "$pb"
wait "$pb" 2>/dev/null
pb=
tk=$(now)
diag "before the kill: $both"
check "both instances ran clinics ($both)" \
    sh -c "echo '$both' | grep -q 'sa:' && echo '$both' | grep -q 'sb:'"
wait_for $((LEASE + 3 * INTERVAL + 30)) all_synced 1 50 "$tk"
check "after the kill every one of the 50 clinics was synced" \
    all_synced 1 50 "$tk"
late=$(num "$(sql "select count(*) from (select user_id, min(started_at) m
    from idexx_sync_sessions where instance = 'sa' and started_at >= '$tk'
    group by user_id) f where m > '$tk'::timestamptz +
    interval '$((LEASE + INTERVAL + 10)) seconds'")")
check "the dead instance's clinics moved within the lease time ($late late)" \
    test "$late" -eq 0
# A session of the dead instance without an end ended at the kill at the
# latest; sessions of the two instances never overlap for a clinic.
overlap=$(sql "with s as (select user_id, instance, started_at a,
    coalesce(completed_at, case when instance = 'sb' then '$tk'::timestamptz
    else now() end) b from idexx_sync_sessions where started_at >= '$t3')
    select count(*) || ' ' || coalesce(string_agg(distinct
    x.user_id::text, ','), '') from s x join s y on x.user_id = y.user_id
    and x.instance < y.instance and x.a < y.b and y.a < x.b")
check "no clinic synced by both instances at once ($overlap)" \
    test "${overlap%% *}" = 0
nb=$(num "$(sql "select count(*) from idexx_sync_sessions
    where instance = 'sb'")")
diag "sessions of the killed instance: $nb"

# --- an operator's request with a window of dates ------------------------
# User 51 has no credentials row: never scheduled, synced only when asked;
# its lease is claimed on demand.
M=$(uid 51)
ctl() { "$top_builddir/vetsyncctl" -c "$tmp/sa.conf" -S "$tmp/sa.sock" "$@"; }
err=$(ctl sync --user $M --from 2026-02-30 --to 2026-03-02 2>&1)
check "a window with a date that does not exist is refused ($err)" \
    sh -c "echo '$err' | grep -q \"no such date\""
err=$(ctl sync --user $M --from 2026-03-10 --to 2026-03-01 2>&1)
check "a window that ends before it starts is refused ($err)" \
    sh -c "echo '$err' | grep -q 'from is after --to'"
d1=$(TZ=$tz date -d '4 days ago' +%Y-%m-%d)
d2=$(TZ=$tz date -d '2 days ago' +%Y-%m-%d)
want=$(curl -s -G "$url/__sim/expected" --data-urlencode clinic=51 \
    --data-urlencode "start=$d1 00:00:00" \
    --data-urlencode "end=$d2 23:59:59" | jq '.consultations | length')
ctl sync --user $M --from "$d1" --to "$d2" >/dev/null
wait_for 30 test "$(completed $M)" -ge 1
got=$(sql "select string_agg(consultations_synced::text, ' ')
    from idexx_sync_sessions where user_id = '$M'")
check "the window $d1..$d2 was synced, once: $got consultations (want $want)" \
    test -n "$got" -a "$got" = "$want"
held=$(sql "select coalesce(instance, '-') from clinic_leases
    where user_id = '$M'")
check "its lease was claimed on demand and freed ($held)" test "$held" = "-"
# The 20 first clinics were active at the slot, the others were not yet:
# one schedule sync each for the 20, at or after the slot; none for the
# rest (their first is tomorrow's).
sched=$(sql "select count(*) || ' ' || count(distinct user_id) || ' ' ||
    coalesce(bool_and(started_at >= '$slot_utc'), false) || ' ' ||
    coalesce(bool_and(user_id <= '$(uid 20)'), false)
    from idexx_sync_sessions where kind = 'schedule'")
check "the nightly schedule sync ran once per clinic at $slot local ($sched)" \
    test "$sched" = "20 20 true true"

if [ $tap_failed -gt 0 ]; then
	for f in sa sb; do
		[ -f "$tmp/$f.log" ] && grep -v 'reconciled, session\|done in' \
		    "$tmp/$f.log" | tail -15 | sed "s/^/# $f: /"
	done
fi
exit 0
