#!/bin/sh
# Discharge calls made exactly once, end to end on a real PostgreSQL:
# vetsyncd syncs three clinics of tests/idexx_sim with the real, sandboxed
# worker; its outbox gets one scheduled_discharge_calls row per completed
# consultation (none more on a second sync), its publisher sends them to
# the simulator's QStash with the contract's headers, QStash (its clock
# moved on by days) delivers them signed to vetsyncd's HTTP API, which
# claims each call in PostgreSQL and dials the simulator's VAPI.  Then:
# duplicated deliveries (still one dial each), bad signatures (401, no
# dial), QStash down and back (rows published later, none lost), 429s and
# a changed delay (old messages DELETEd at QStash and never dialled, new
# ones dialled once), and vetsyncd SIGKILLed while its publishes are in
# flight and started again (every call dialled exactly once).
#
# Then consultations that change in IDEXX before their call (the
# simulator's consultation knob): one reopened before its row was ever
# published (cancelled, nothing to DELETE), one reopened and one whose
# appointment is cancelled while their messages wait at QStash (DELETEd,
# never dialled, even once QStash's clock passes their due time), and the
# reopened one checked out again (a later due time, one publish, one
# dial), and one reopened while the publish of its call gets no answer,
# or after it got none and then QStash went down (the message QStash
# holds found by its dedup id and DELETEd).  Last, two vetsyncd instances on one database drain one outbox
# full of pending rows at once (one publish request per row, counted at
# QStash, one dial each), and one of them is SIGKILLed holding leases
# mid-publish: the other publishes those rows once the leases end, and
# each is still dialled exactly once.
#
# Runs itself again inside pg_virtualenv, as tests/integration/db.sh does.
. "$top_srcdir/tests/integration/lib.sh"

in_pg_virtualenv "$@"

N=93
skip_all() { skip_plan $N "discharge case" "$1"; }
[ "$(id -u)" -eq 0 ] || skip_all "needs root (worker identity)"
grep -q '^#define VS_SANITIZERS 1' "$top_builddir/config.h" &&
    skip_all "sanitizer build: the worker policy refuses ASan"
for tool in jq curl psql python3; do
	command -v $tool >/dev/null 2>&1 || skip_all "$tool is not installed"
done
sim=$top_builddir/tests/idexx_sim
[ -x "$sim" ] || skip_all "tests/idexx_sim not built"

tap_plan $N

tz=America/Denver
U1=11111111-2222-4333-8444-555555555501
U2=11111111-2222-4333-8444-555555555502
U3=11111111-2222-4333-8444-555555555503
U4=11111111-2222-4333-8444-555555555504
U5=11111111-2222-4333-8444-555555555505
db=vetsync_discharge
supw=${PGPASSWORD:-}
dpw="daemon-pw-$$"
TOKEN=qstash-token-$$-Xk2
CK=sig_current_$$_Vb3n
NK=sig_next_$$_Qw8e
VK=vapi-key-$$-77
tmp=$(mktemp -d /tmp/vetsync-discharge.XXXXXX)
chmod 755 "$tmp"
simpid=
daemon=
daemon_b=
cleanup() {
	[ -n "$daemon" ] && kill -KILL "$daemon" 2>/dev/null
	[ -n "$daemon_b" ] && kill -KILL "$daemon_b" 2>/dev/null
	[ -n "$simpid" ] && kill "$simpid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap "exit 1" INT TERM

sql() { PGPASSWORD=$supw psql -X -q -At -v ON_ERROR_STOP=1 -d $db -c "$*"; }
num() { case $1 in ''|*[!0-9]*) echo -1 ;; *) echo "$1" ;; esac; }
freeport() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

PGPASSWORD=$supw createdb -T template0 $db
"$top_builddir/vetsyncctl" migrate --dir "$top_srcdir/migrations" \
    --conninfo "dbname=$db" >"$tmp/migrate.log" 2>&1 ||
    { sed 's/^/# /' "$tmp/migrate.log"; }
sql "alter role vetsync_daemon login password '$dpw'"
sql "insert into users (id, clinic_name, idexx_sync_enabled, timezone) values
    ('$U1', 'Clinic One', true, '$tz'), ('$U2', 'Clinic Two', true, '$tz'),
    ('$U3', 'Clinic Three', true, '$tz')"

"$sim" --port 0 --port-file "$tmp/port" --profile neo --timezone $tz \
    --clinics 4 --consultations 20 --latency-ms 2 --qstash-token "$TOKEN" \
    --qstash-current-key "$CK" --qstash-next-key "$NK" --vapi-key "$VK" \
    >"$tmp/sim.log" 2>&1 &
simpid=$!
wait_for 10 test -s "$tmp/port" || diag "simulator did not start"
url=http://127.0.0.1:$(cat "$tmp/port")
aport=$(freeport)
durl=http://127.0.0.1:$aport/hooks/discharge
wstart=$(TZ=$tz date -d '49 hours ago' '+%Y-%m-%d %H:%M:%S')
wend=$(TZ=$tz date -d '1 hour' '+%Y-%m-%d %H:%M:%S')
for c in 1 2 3; do
	curl -s -G "$url/__sim/expected" --data-urlencode clinic=$c \
	    --data-urlencode "start=$wstart" --data-urlencode "end=$wend" \
	    >"$tmp/exp$c.json"
done

mkdir -p "$tmp/state" "$tmp/creds"
chmod 700 "$tmp/creds"
printf 'vet1@clinic1.test\npassword-1\nc1\n' >"$tmp/creds/idexx-$U1"
printf 'vet2@clinic2.test\npassword-2\nc2\n' >"$tmp/creds/idexx-$U2"
printf 'vet3@clinic3.test\npassword-3\nc3\n' >"$tmp/creds/idexx-$U3"
printf 'vet4@clinic4.test\npassword-4\nc4\n' >"$tmp/creds/idexx-$U4"
printf '%s\n' "$dpw" >"$tmp/creds/db-password"
printf '%s' "$TOKEN" >"$tmp/creds/qstash-token"
printf '%s' "$CK" >"$tmp/creds/qstash-current-signing-key"
printf '%s' "$NK" >"$tmp/creds/qstash-next-signing-key"
printf '%s' "$VK" >"$tmp/creds/vapi-key"
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
name = dc$$
[api]
listen = 127.0.0.1:$aport
[discharge]
qstash_url = $url
delivery_url = $durl
retries = 3
vapi_url = $url
vapi_assistant_id = asst-discharge-test
vapi_phone_number_id = pn-discharge-test
CONF
start_daemon() {
	rm -f "$tmp/control.sock"
	CREDENTIALS_DIRECTORY="$tmp/creds" "$top_builddir/vetsyncd" -d \
	    -c "$tmp/vetsyncd.conf" -S "$tmp/control.sock" -s "$tmp/state" \
	    2>>"$tmp/vetsyncd.log" &
	daemon=$!
	wait_for 10 test -S "$tmp/control.sock" || diag "vetsyncd did not start"
}
ctl() { "$top_builddir/vetsyncctl" -c "$tmp/vetsyncd.conf" \
    -S "$tmp/control.sock" "$@"; }
simctl() { curl -s -X POST --data "$1" "$url/__sim/control" >/dev/null; }
qs() { curl -s "$url/__sim/qstash" | jq -r "$1"; }
vapi() { curl -s "$url/__sim/vapi" | jq -r "$1"; }

sessions_ge() {
	[ "$(num "$(sql "select count(*) from idexx_sync_sessions
	    where user_id = '$1' and status = 'completed'")")" -ge "$2" ]
}
sync_wait() {
	ctl sync --user "$1" >/dev/null || return 1
	wait_for 90 sessions_ge "$1" "$2"
}
rows() { num "$(sql "select count(*) from scheduled_discharge_calls
    where user_id = '$1' ${2:+and status = '$2'}")"; }
all_in() { [ "$(rows "$1" "$2")" -eq "$(rows "$1")" ] && [ "$(rows "$1")" -gt 0 ]; }
# completed USER N: how many consultations of clinic N that vetsyncd synced
# the simulator says are completed (those with a time)
completed() {
	sql "select consultation_id from consultation_sync_status
	    where user_id = '$1'" >"$tmp/ids"
	jq -r '.consultations[] | select(.status == "completed") | .id' \
	    "$tmp/exp$2.json" | grep -cxFf "$tmp/ids"
}
# dialled USER: VAPI calls for USER's rows, and how many distinct rows
dialled() {
	sql "select id from scheduled_discharge_calls where user_id = '$1'" \
	    | sort >"$tmp/calls.$1"
	vapi '.calls[].assistantOverrides.metadata.dischargeCallId' | sort \
	    >"$tmp/vapi.all"
	grep -cxFf "$tmp/calls.$1" "$tmp/vapi.all"
}
dialled_distinct() {
	dialled "$1" >/dev/null
	grep -xFf "$tmp/calls.$1" "$tmp/vapi.all" | sort -u | wc -l
}
audits() {
	num "$(sql "select count(*) from idexx_sync_audit_log
	    where action = '$1' and user_id = '$2' ${3:+and status = '$3'}")"
}
audits_ge() { [ "$(audits "$1" "$2" "$3")" -ge "$4" ]; }

start_daemon
check "vetsyncd starts with discharge calls enabled" wait_for 10 \
    grep -q 'discharge calls: publishing to' "$tmp/vetsyncd.log"
check "the delivery endpoint answers on the API" wait_for 10 sh -c \
    "curl -s -o /dev/null -w '%{http_code}' -X POST --data '{}' '$durl' |
    grep -qx 401"

# --- the outbox -------------------------------------------------------------
check "clinic one: first sync completes" sync_wait $U1 1
n1=$(completed $U1 1)
r1=$(rows $U1)
check "one outbox row per completed consultation ($r1 rows, $n1 completed)" \
    sh -c "[ $r1 -eq $n1 ] && [ $n1 -gt 0 ]"
bad=$(num "$(sql "select count(*) from scheduled_discharge_calls d
    join cases c on c.id = d.case_id where d.user_id = '$U1' and
    d.scheduled_for <> (c.metadata->'idexx'->>'date_utc')::timestamptz +
    interval '2 days'")")
lk=$(num "$(sql "select count(*) from scheduled_discharge_calls
    where user_id = '$U1' and case_id is not null")")
check "each due at completion + discharge.delay, with its case ($bad off)" \
    sh -c "[ $bad -eq 0 ] && [ $lk -eq $r1 ]"
ln=$(num "$(sql "select count(distinct s.discharge_call_id)
    from consultation_sync_status s join scheduled_discharge_calls d
    on d.id = s.discharge_call_id and d.consultation_id = s.consultation_id
    where s.user_id = '$U1' and s.discharge_call_scheduled")")
check "consultation_sync_status links each call ($ln)" test "$ln" -eq "$r1"
check "dedup ids are derived from the consultation" test "$(num "$(sql \
    "select count(*) from scheduled_discharge_calls where user_id = '$U1'
    and dedup_id = 'discharge-' || user_id || '-' || consultation_id || '-'
    || floor(extract(epoch from scheduled_for))::bigint")")" -eq "$r1"
before=$(sql "select max(updated_at) from scheduled_discharge_calls
    where user_id = '$U1'")
check "clinic one: second sync completes" sync_wait $U1 2
check "a second sync adds and changes no row" sh -c "[ $(rows $U1) -eq $r1 ] &&
    [ '$(sql "select max(updated_at) from scheduled_discharge_calls
    where user_id = '$U1'")' = '$before' ]"

# --- publishing ---------------------------------------------------------------
check "every row is published, with QStash's message id" wait_for 30 \
    all_in $U1 published
sql "select id || ' ' || floor(extract(epoch from scheduled_for))::bigint ||
    ' ' || dedup_id || ' ' || qstash_message_id from scheduled_discharge_calls
    where user_id = '$U1' order by 1" >"$tmp/want.pub"
curl -s -G --data-urlencode "destination=$durl" "$url/__sim/qstash" |
    jq -r '.messages[] | [(.body | fromjson | .call), .not_before,
    .dedup_id, .id] | map(tostring) | join(" ")' | sort >"$tmp/got.pub"
grep -xFf "$tmp/want.pub" "$tmp/got.pub" >"$tmp/both.pub"
check "QStash holds each: Upstash-Not-Before, the dedup id, the message id" \
    test "$(wc -l <"$tmp/both.pub")" -eq "$r1"
hd=$(curl -s "$url/__sim/qstash" | jq -r '[.messages[] |
    "\(.retries) \(.headers.Authorization) \(.headers["Content-Type"])"] |
    unique | join(",")')
check "Upstash-Retries from the configuration, a token, JSON ($hd)" \
    test "$hd" = "3 [redacted] application/json"
check "QStash enqueued each once ($(qs .stats.published))" \
    test "$(qs .stats.published)" -eq "$r1"
check "publishes are audited" wait_for 20 audits_ge discharge_published $U1 ok "$r1"

# --- deliveries ----------------------------------------------------------------
simctl '{"qstash_duplicate": 5}'
simctl '{"qstash_advance": 259200}'
check "every call of clinic one is dialled and completed" wait_for 60 \
    all_in $U1 completed
check "VAPI got exactly one call per row ($(dialled $U1) calls)" sh -c \
    "[ $(dialled $U1) -eq $r1 ] && [ $(dialled_distinct $U1) -eq $r1 ]"
check "duplicated deliveries happened ($(qs .stats.duplicates)) and dialled nothing more" \
    sh -c "[ $(qs .stats.duplicates) -ge 5 ] && [ $(dialled $U1) -eq $r1 ]"
vc=$(vapi '[.calls[] | select(.assistantId == "asst-discharge-test" and
    .phoneNumberId == "pn-discharge-test" and
    (.customer.number | test("^\\+1[2-9][0-9]{9}$")) and
    .assistantOverrides.variableValues.clinicName == "Clinic One" and
    (.assistantOverrides.variableValues.petName | length > 0))] | length')
check "each VAPI call: assistant, number id, E.164 number, pet and clinic ($vc)" \
    test "$vc" -eq "$r1"
sql "select vapi_call_id from scheduled_discharge_calls where user_id = '$U1'" |
    sort >"$tmp/vids.db"
vapi '.calls[].id' | sort >"$tmp/vids.sim"
check "VAPI's call ids are recorded" test "$(grep -cxFf "$tmp/vids.sim" \
    "$tmp/vids.db")" -eq "$r1"
check "claims and dials are audited" wait_for 20 sh -c "
    [ \$(psql -X -At -d $db -c \"select count(*) from idexx_sync_audit_log
    where user_id = '$U1' and action in ('discharge_claimed',
    'discharge_dialled') and status = 'ok'\") -eq $((2 * r1)) ]"

# --- bad signatures -------------------------------------------------------------
calls=$(vapi '.calls | length')
one=$(sql "select id || ' ' || dedup_id from scheduled_discharge_calls
    where user_id = '$U1' limit 1")
body="{\"call\":\"${one%% *}\",\"dedup\":\"${one#* }\"}"
code=$(curl -s -o "$tmp/o" -w '%{http_code}' -X POST -H 'Upstash-Signature: x.y.z' \
    --data "$body" "$durl")
check "a bad signature gets 401 with an error body" sh -c \
    "[ $code = 401 ] && jq -e '.error | length > 0' '$tmp/o' >/dev/null"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST --data "$body" "$durl")
check "no signature gets 401" test "$code" = 401
simctl '{"qstash_sign": "unknown"}'
check "clinic two: first sync completes (signed with an unknown key)" \
    sync_wait $U2 1
n2=$(completed $U2 2)
simctl '{"qstash_advance": 259200}'
sleep 3
check "deliveries signed with an unknown key dial nothing" sh -c \
    "[ $(vapi '.calls | length') -eq $calls ] && [ $(rows $U2 completed) -eq 0 ]"
check "refused deliveries are audited" wait_for 20 sh -c "[ \$(psql -X -At -d $db \
    -c \"select count(*) from idexx_sync_audit_log where action =
    'discharge_delivery' and status = 'bad_signature'\") -ge 1 ]"
simctl '{"qstash_sign": "current", "qstash_reset": true}'

# --- QStash down, 429, a changed delay -------------------------------------------
# Clinic two's rows were published to a QStash that now forgot them.  A
# clinic delay of 30 days reschedules them (the DELETEs of the old
# messages find them gone: 404), first with QStash down, then through
# 429s; QStash's clock is days ahead by now, and 30 days keeps them
# waiting there.  Then 31 days: each waiting message is DELETEd (200) and
# published again, and only the new ones are ever delivered.
simctl '{"qstash_down": "503"}'
sql "update users set discharge_delay = interval '30 days' where id = '$U2'"
check "clinic two: a second sync with a 30-day delay completes" sync_wait $U2 2
r2=$(rows $U2)
stuck() { [ "$(num "$(sql "select count(*) from scheduled_discharge_calls
    where user_id = '$U2' and status = 'pending' and attempts > 0
    and last_error is not null")")" -eq "$r2" ]; }
check "QStash down: clinic two's $r2 rows stay pending, retried" \
    wait_for 30 stuck
simctl '{"qstash_down": false, "qstash_fail_next": 3, "qstash_fail_code": 429,
    "qstash_retry_after": 1}'
check "QStash back (after 429s): every row published" \
    wait_for 90 all_in $U2 published
check "none lost: one row per completed consultation ($r2 rows, $n2)" \
    sh -c "[ $r2 -eq $n2 ] && [ $r2 -gt 0 ]"
due30=$(num "$(sql "select count(*) from scheduled_discharge_calls d
    join cases c on c.id = d.case_id where d.user_id = '$U2' and
    d.scheduled_for = (c.metadata->'idexx'->>'date_utc')::timestamptz +
    interval '30 days'")")
check "the 429s were honoured, the rows rescheduled at +30 days ($due30)" \
    sh -c "[ $(qs '.stats["429"]') -ge 3 ] && [ $due30 -eq $r2 ]"
old=$(sql "select string_agg(qstash_message_id, ' ') from
    scheduled_discharge_calls where user_id = '$U2'")
sql "update users set discharge_delay = interval '31 days' where id = '$U2'"
check "clinic two: a third sync with a 31-day delay completes" sync_wait $U2 3
check "rescheduled again: every row published anew" \
    wait_for 60 all_in $U2 published
gone() { [ "$(qs '[.messages[] | select(.state == "cancelled")] | length')" \
    -eq "$r2" ]; }
check "the old messages are DELETEd at QStash ($r2)" wait_for 30 gone
check "cancellations are audited" wait_for 20 \
    audits_ge discharge_cancelled $U2 ok "$r2"
simctl '{"qstash_advance": 3456000}'
check "clinic two: every call dialled once due" wait_for 60 all_in $U2 completed
dl=$(qs '[.messages[] | select(.state == "delivered")] | length')
check "VAPI got exactly one call per clinic-two row, none from old messages" \
    sh -c "[ $(dialled $U2) -eq $r2 ] && [ $(dialled_distinct $U2) -eq $r2 ] &&
    [ $dl -eq $r2 ]"

# --- killed mid-publish -------------------------------------------------------------
# QStash answers 8 s late: the daemon is killed once the publishes reach
# it.  A 60-day delay keeps the messages waiting at QStash meanwhile.
simctl '{"qstash_slow_ms": 8000}'
sql "update users set discharge_delay = interval '60 days' where id = '$U3'"
pubs=$(qs .stats.publishes)
inflight() { [ "$(qs .stats.publishes)" -gt "$pubs" ]; }
ctl sync --user $U3 >/dev/null
wait_for 60 inflight || diag "no publish reached QStash"
r3=$(rows $U3)
kill -KILL "$daemon"
wait "$daemon" 2>/dev/null
daemon=
p3=$(rows $U3 pending)
check "SIGKILL with publishes in flight: rows still pending ($p3 of $r3)" \
    sh -c "[ $p3 -eq $r3 ] && [ $r3 -gt 0 ]"
simctl '{"qstash_slow_ms": 0}'
start_daemon
check "restarted: every clinic-three row published" wait_for 60 all_in $U3 published
check "the re-publish was deduplicated by QStash" test "$(qs .stats.deduplicated)" -ge 1
# VAPI fails the first two dials with a 503: no call was made, so those
# rows stay claimed for a retry, QStash is answered 500 and delivers again.
simctl '{"vapi_fail_next": 2, "vapi_fail_code": 503}'
simctl '{"qstash_advance": 6048000}'
check "clinic three: every call dialled" wait_for 90 all_in $U3 completed
check "after the kill, each call dialled exactly once" sh -c \
    "[ $(dialled $U3) -eq $r3 ] && [ $(dialled_distinct $U3) -eq $r3 ]"
retried() { [ "$(qs .stats.retries)" -ge 2 ] &&
    [ "$(audits discharge_dialled $U3 retry)" -ge 2 ]; }
check "VAPI's 503s: QStash redelivered, audited as retries" wait_for 20 retried
# --- consultations completed later ----------------------------------------------
# IDEXX adds the notes that some consultations still lacked (those in
# consult become checked out): a third sync gives each newly completed
# one its row, and the rows already there stay as they are.
simctl '{"add_notes": true}'
curl -s -G "$url/__sim/expected" --data-urlencode clinic=1 \
    --data-urlencode "start=$wstart" --data-urlencode "end=$wend" \
    >"$tmp/exp1.json"
check "clinic one: a third sync, after IDEXX completed more" sync_wait $U1 3
n1b=$(completed $U1 1)
nr=$(rows $U1)
check "one row per completed consultation still ($nr rows, $n1b completed, $r1 before)" \
    sh -c "[ $nr -eq $n1b ] && [ $nr -ge $r1 ]"
check "any new ones are dialled once too" wait_for 60 all_in $U1 completed
check "and clinic one still has one VAPI call per row" sh -c \
    "[ $(dialled $U1) -eq $nr ] && [ $(dialled_distinct $U1) -eq $nr ]"
r1=$nr

check "VAPI calls in all: exactly one per row ($(vapi '.calls | length'))" \
    test "$(vapi '.calls | length')" -eq "$((r1 + r2 + r3))"
check "no row claimed without an outcome, none failed" test "$(num "$(sql \
    "select count(*) from scheduled_discharge_calls
    where status in ('claimed', 'failed', 'pending', 'published')")")" -eq 0

# row_of USER CID WHAT: WHAT (SQL) of USER's row for consultation CID
row_of() { sql "select $3 from scheduled_discharge_calls
    where user_id = '$1' and consultation_id = '$2'"; }
epoch_of() { row_of "$1" "$2" \
    "floor(extract(epoch from scheduled_for))::bigint"; }
# qn JQ: QStash's clock and counters, without the messages
qn() { curl -s "$url/__sim/qstash?messages=0" | jq -r "$1"; }
# msg_state ID: the state of QStash's message ID ("none": unknown)
msg_state() { curl -s -G --data-urlencode "id=$1" "$url/__sim/qstash" |
    jq -r '.messages[0].state // "none"'; }
# pub_by_dedup: "<dedup id> <messages> <publish requests>" per dedup id,
# counting the publishes QStash answered with a message id, 202s included
pub_by_dedup() { curl -s "$url/__sim/qstash" | jq -r '[.messages[] |
    select(.dedup_id != null)] | group_by(.dedup_id)[] |
    "\(.[0].dedup_id) \(length) \(map(.publish_requests) | add)"'; }
# vapi_for CALL: VAPI calls made for the row CALL
vapi_for() { num "$(vapi "[.calls[] | select(.assistantOverrides.metadata
    | .dischargeCallId == \"$1\")] | length")"; }
# advance_past USER [STATUS]: QStash's clock past the due time of USER's
# rows in STATUS (published)
advance_past() {
	last=$(num "$(sql "select max(floor(extract(epoch from scheduled_for)))
	    ::bigint from scheduled_discharge_calls where user_id = '$1'
	    and status = '${2:-published}'")")
	qnow=$(num "$(qn .now)")
	[ "$last" -le "$qnow" ] ||
	    simctl "{\"qstash_advance\": $((last - qnow + 60))}"
}
count_where() { num "$(sql "select count(*) from scheduled_discharge_calls
    where $1")"; }

# --- (b) a consultation reopened before its call was published ----------------
# Clinic four's calls are due 400 days after completion, which keeps its
# messages waiting at QStash (whose clock is months ahead by now).  QStash
# answers every publish 429 (Retry-After 15 s) while one consultation, Z,
# is reopened in IDEXX: its row was never published, so it is cancelled
# with nothing to DELETE.  X and Y change later, in (a) and (c).
curl -s -G "$url/__sim/expected" --data-urlencode clinic=4 \
    --data-urlencode "start=$wstart" --data-urlencode "end=$wend" \
    >"$tmp/exp4.json"
jq -r '.consultations[] | select(.status == "completed") | .id' \
    "$tmp/exp4.json" >"$tmp/done4"
X=$(sed -n 1p "$tmp/done4")
Y=$(sed -n 2p "$tmp/done4")
Z=$(sed -n 3p "$tmp/done4")
sql "insert into users (id, clinic_name, idexx_sync_enabled, timezone,
    discharge_delay) values ('$U4', 'Clinic Four', true, '$tz',
    interval '400 days')"
simctl '{"qstash_fail_next": 1000000, "qstash_fail_code": 429,
    "qstash_retry_after": 15}'
check "clinic four: first sync completes (QStash answering 429)" \
    sync_wait $U4 1
r4=$(rows $U4)
n4=$(completed $U4 4)
refused() { [ "$(count_where "user_id = '$U4' and status = 'pending'
    and attempts > 0")" -eq "$r4" ]; }
ok4=false
[ "$r4" -eq "$n4" ] && [ "$r4" -ge 3 ] && [ -n "$Z" ] &&
    wait_for 20 refused && ok4=true
check "one row per completed consultation ($r4 rows, $n4), every publish refused (429)" \
    $ok4
zid=$(row_of $U4 "$Z" id)
simctl "{\"consultation\": {\"clinic\": 4, \"id\": \"$Z\",
    \"status\": \"in_consult\"}}"
check "clinic four: a second sync after IDEXX reopened one" sync_wait $U4 2
zgone() { [ "$(row_of $U4 "$Z" "status || ' ' || coalesce(qstash_message_id,
    cancel_message_id, '')")" = "cancelled " ] &&
    audits_ge discharge_cancelled $U4 unpublished 1; }
check "(b) its row, never published, is cancelled with nothing to DELETE" \
    wait_for 20 zgone
p4=$(count_where "user_id = '$U4' and status = 'pending'")
check "the other rows still wait for QStash ($p4 of $((r4 - 1)) pending)" \
    test "$p4" -eq $((r4 - 1))
simctl '{"qstash_fail_next": 0}'

# --- (a), (c) reopened, or its appointment cancelled, while its call waits ------
pub4() { [ "$(rows $U4 published)" -eq $((r4 - 1)) ]; }
check "QStash takes publishes again: the other rows are published" \
    wait_for 60 pub4
xid=$(row_of $U4 "$X" id)
yid=$(row_of $U4 "$Y" id)
xmid=$(row_of $U4 "$X" qstash_message_id)
ymid=$(row_of $U4 "$Y" qstash_message_id)
xdue=$(num "$(epoch_of $U4 "$X")")
xdedup=$(row_of $U4 "$X" dedup_id)
check "the calls for X and Y wait at QStash" test \
    "$(msg_state "$xmid") $(msg_state "$ymid")" = "pending pending"
cn=$(num "$(qn .stats.cancelled)")
simctl "{\"consultation\": [{\"clinic\": 4, \"id\": \"$X\",
    \"status\": \"in_consult\"}, {\"clinic\": 4, \"id\": \"$Y\",
    \"status\": \"cancelled\"}]}"
check "clinic four: a third sync after IDEXX reopened X, cancelled Y's appointment" \
    sync_wait $U4 3
# deleted CID MSG: CID's row cancelled, its message gone from QStash
deleted() { [ "$(row_of $U4 "$1" "status || ' ' ||
    coalesce(qstash_message_id, cancel_message_id, '-')")" = "cancelled -" ] &&
    [ "$(msg_state "$2")" = cancelled ]; }
check "(a) reopened: its row cancelled, DELETE /v2/messages/<id> at QStash" \
    wait_for 20 deleted "$X" "$xmid"
check "(c) appointment cancelled: its row cancelled, its message DELETEd" \
    wait_for 20 deleted "$Y" "$ymid"
two() { audits_ge discharge_cancelled $U4 ok 2 &&
    [ "$(num "$(qn .stats.cancelled)")" -eq $((cn + 2)) ]; }
check "both cancellations audited; QStash DELETEd those two, nothing more" \
    wait_for 20 two
advance_past $U4
due4() { [ "$(rows $U4 completed)" -eq $((r4 - 3)) ]; }
check "QStash's clock past their due time: the other calls are dialled" \
    wait_for 60 due4
sleep 1
none=$(($(vapi_for "$xid") + $(vapi_for "$yid") + $(vapi_for "$zid")))
st=$(sql "select string_agg(status, ' ') from scheduled_discharge_calls
    where id in ('$xid', '$yid', '$zid')")
check "(a), (b), (c): none of the three dialled, their rows cancelled ($none; $st)" \
    sh -c "[ $none -eq 0 ] && [ '$st' = 'cancelled cancelled cancelled' ] &&
    [ '$(msg_state "$xmid") $(msg_state "$ymid")' = 'cancelled cancelled' ]"
check "the others each dialled once ($(dialled $U4) of $((r4 - 3)))" sh -c \
    "[ $(dialled $U4) -eq $((r4 - 3)) ] &&
    [ $(dialled_distinct $U4) -eq $((r4 - 3)) ]"

# --- (d) the reopened consultation checked out again ----------------------------
simctl "{\"consultation\": {\"clinic\": 4, \"id\": \"$X\",
    \"status\": \"checked_out\"}}"
check "clinic four: a fourth sync after IDEXX checked X out again" \
    sync_wait $U4 4
repub() { [ "$(row_of $U4 "$X" status)" = published ]; }
check "(d) its row is published again" wait_for 30 repub
xdue2=$(num "$(epoch_of $U4 "$X")")
xdedup2=$(row_of $U4 "$X" dedup_id)
xmid2=$(row_of $U4 "$X" qstash_message_id)
check "(d) due later ($xdue -> $xdue2), under a new dedup id and message" \
    sh -c "[ $xdue2 -gt $xdue ] && [ '$xdedup2' != '$xdedup' ] &&
    [ -n '$xmid2' ] && [ '$xmid2' != '$xmid' ]"
pub_by_dedup >"$tmp/pd4"
check "(d) published once: one publish request for its dedup id" \
    grep -qxF "$xdedup2 1 1" "$tmp/pd4"
advance_past $U4
xdone() { [ "$(row_of $U4 "$X" status)" = completed ]; }
check "(d) dialled when QStash's clock passes its new due time" \
    wait_for 60 xdone
sleep 1
check "(d) dialled exactly once, the old message never delivered" sh -c \
    "[ $(vapi_for "$xid") -eq 1 ] && [ $(dialled $U4) -eq $((r4 - 2)) ] &&
    [ '$(msg_state "$xmid")' = cancelled ]"

# --- (b2) reopened while the publish of its call gets no answer -----------------
# Z is checked out again, with clinic four's delay now 800 days (QStash's
# clock passed 400 days), while QStash answers 12 s late: past vetsyncd's
# 10 s, so the publish reaches QStash but its answer never comes back.
# Meanwhile Z is reopened again.  The row must not pass for never
# published: publishing its dedup id again learns the message QStash
# holds (202), which is then DELETEd, and never dialled.
sql "update users set discharge_delay = interval '800 days' where id = '$U4'"
simctl '{"qstash_slow_ms": 12000}'
simctl "{\"consultation\": {\"clinic\": 4, \"id\": \"$Z\",
    \"status\": \"checked_out\"}}"
check "clinic four: a fifth sync after IDEXX checked Z out again" \
    sync_wait $U4 5
zflight() {
	zd=$(row_of $U4 "$Z" dedup_id)
	[ "$(row_of $U4 "$Z" status)" = pending ] &&
	    zmid=$(curl -s -G --data-urlencode "destination=$durl" \
	    "$url/__sim/qstash" | jq -re --arg d "$zd" \
	    'first(.messages[] | select(.dedup_id == $d) | .id)')
}
zmid=
wait_for 20 zflight || diag "the publish of Z's row did not reach QStash"
simctl "{\"consultation\": {\"clinic\": 4, \"id\": \"$Z\",
    \"status\": \"in_consult\"}}"
check "clinic four: a sixth sync after IDEXX reopened Z, mid-publish" \
    sync_wait $U4 6
simctl '{"qstash_slow_ms": 0}'
zdel() { [ "$(row_of $U4 "$Z" "status || ' ' || coalesce(qstash_message_id,
    cancel_message_id, '-')")" = "cancelled -" ] &&
    [ "$(msg_state "$zmid")" = cancelled ]; }
check "(b2) the message whose answer was lost is DELETEd at QStash" \
    wait_for 40 zdel
pub_by_dedup >"$tmp/pd4"
check "(b2) found by publishing its dedup id again: one message, two publishes" \
    grep -qxF "$zd 1 2" "$tmp/pd4"
# --- (b3) a publish with no answer, then QStash down, then reopened ---------------
# Y is checked out again.  Its publish reaches QStash but the answer
# comes too late, and then QStash is down (503): the row stays pending,
# marked as maybe sent through the failed retries.  Y is reopened: the
# cancellation looks for that dedup id's message, and once QStash is
# back it is found (202) and DELETEd.
simctl '{"qstash_slow_ms": 12000}'
simctl "{\"consultation\": {\"clinic\": 4, \"id\": \"$Y\",
    \"status\": \"checked_out\"}}"
check "clinic four: a seventh sync after IDEXX checked Y out again" \
    sync_wait $U4 7
yflight() {
	yd=$(row_of $U4 "$Y" dedup_id)
	[ "$(row_of $U4 "$Y" status)" = pending ] &&
	    ymid3=$(curl -s -G --data-urlencode "destination=$durl" \
	    "$url/__sim/qstash" | jq -re --arg d "$yd" \
	    'first(.messages[] | select(.dedup_id == $d) | .id)')
}
ymid3=
wait_for 20 yflight || diag "the publish of Y's row did not reach QStash"
simctl '{"qstash_slow_ms": 0, "qstash_down": "503"}'
marked() { [ "$(row_of $U4 "$Y" "status || ' ' || (attempts >= 2) || ' ' ||
    coalesce(last_error->>'maybe_sent', 'no')")" = "pending true true" ]; }
check "(b3) no answer, then 503s: the row stays pending, marked maybe sent" \
    wait_for 40 marked
simctl "{\"consultation\": {\"clinic\": 4, \"id\": \"$Y\",
    \"status\": \"in_consult\"}}"
check "clinic four: an eighth sync after IDEXX reopened Y" sync_wait $U4 8
check "(b3) cancelled: the message to cancel is whatever holds its dedup id" \
    test "$(row_of $U4 "$Y" "status || ' ' || cancel_message_id")" = \
    "cancelled dedup:$yd"
simctl '{"qstash_down": false}'
ydel() { [ "$(row_of $U4 "$Y" "status || ' ' || coalesce(qstash_message_id,
    cancel_message_id, '-')")" = "cancelled -" ] &&
    [ "$(msg_state "$ymid3")" = cancelled ]; }
check "(b3) QStash back: that message is found and DELETEd" wait_for 40 ydel
pub_by_dedup >"$tmp/pd4"
check "(b3) one message under its dedup id, published twice" \
    grep -qxF "$yd 1 2" "$tmp/pd4"

advance_past $U4 cancelled
sleep 2
check "(b2), (b3) QStash's clock past their due time: Z and Y never dialled" \
    sh -c "[ $(($(vapi_for "$zid") + $(vapi_for "$yid"))) -eq 0 ] &&
    [ '$(row_of $U4 "$Z" status) $(row_of $U4 "$Y" status)' = \
    'cancelled cancelled' ]"

# --- (e) two instances on one outbox ----------------------------------------------
# A second vetsyncd (another [instance] name, its own API port, the same
# database and delivery URL, as behind one load balancer).  64 pending
# rows land in the outbox at once (clinic five's, written directly, due
# in 1,500 days); QStash answers 300 ms late, so both instances have
# publishes in flight together.
bport=$(freeport)
sed -e "s/^name = .*/name = dc$$-b/" \
    -e "s/^listen = .*/listen = 127.0.0.1:$bport/" \
    "$tmp/vetsyncd.conf" >"$tmp/vetsyncd-b.conf"
mkdir -p "$tmp/state-b"
CREDENTIALS_DIRECTORY="$tmp/creds" "$top_builddir/vetsyncd" -d \
    -c "$tmp/vetsyncd-b.conf" -S "$tmp/control-b.sock" -s "$tmp/state-b" \
    2>>"$tmp/vetsyncd-b.log" &
daemon_b=$!
check "a second instance starts on the same database" wait_for 10 \
    grep -q 'discharge calls: publishing to' "$tmp/vetsyncd-b.log"
sql "insert into users (id, clinic_name, idexx_sync_enabled, timezone)
    values ('$U5', 'Clinic Five', false, '$tz')"
# fill TAG N: N pending rows of clinic five in one transaction
fill() {
	sql "insert into scheduled_discharge_calls (user_id, consultation_id,
	    scheduled_for, dedup_id, customer_phone, pet_name)
	    select '$U5', '$1-' || g, t.d, 'discharge-$U5-$1-' || g || '-' ||
	    floor(extract(epoch from t.d))::bigint, '+1 303-555-' || 1000 + g,
	    'Pet $1 ' || g from generate_series(1, $2) g,
	    (select now() + interval '1500 days' as d) t;
	    select pg_notify('vetsync_discharge', '')" >/dev/null
}
tagged() { count_where "user_id = '$U5' and consultation_id like '$1-%'
    ${2:+and status = '$2'}"; }
simctl '{"qstash_slow_ms": 300}'
fill e1 64
e1pub() { [ "$(tagged e1 published)" -eq 64 ]; }
check "two instances drain an outbox of 64 rows: all published" \
    wait_for 60 e1pub
sql "select id from scheduled_discharge_calls where user_id = '$U5'" \
    >"$tmp/ids5"
pa=$(grep -Ff "$tmp/ids5" "$tmp/vetsyncd.log" | grep -c 'published as')
pb=$(grep -Ff "$tmp/ids5" "$tmp/vetsyncd-b.log" | grep -c 'published as')
check "both instances published, no row by both ($pa + $pb = 64)" \
    sh -c "[ $pa -gt 0 ] && [ $pb -gt 0 ] && [ $((pa + pb)) -eq 64 ]"
sql "select dedup_id || ' 1 1' from scheduled_discharge_calls
    where user_id = '$U5' and consultation_id like 'e1-%'" >"$tmp/want5"
pub_by_dedup >"$tmp/pd5"
once=$(grep -cxFf "$tmp/want5" "$tmp/pd5")
check "one publish request per row, counted at QStash ($once of 64)" \
    test "$once" -eq 64

# QStash answers 4 s late.  Once the second instance holds leased rows
# whose publishes reached QStash, it is SIGKILLed.  The first leaves
# those rows alone while their leases last; the test then ends the
# leases (lease_until now, as if their 60 s had passed), and the first
# publishes them: QStash deduplicates what the dead one had sent.
simctl '{"qstash_slow_ms": 4000}'
fill e2 48
binflight() {
	sql "select dedup_id from scheduled_discharge_calls
	    where leased_by = 'dc$$-b' and status = 'pending'" >"$tmp/bdd"
	[ -s "$tmp/bdd" ] && curl -s "$url/__sim/qstash" |
	    jq -r '.messages[].dedup_id // empty' | grep -qxFf "$tmp/bdd"
}
wait_for 30 binflight || diag "the second instance had no publish in flight"
kill -KILL "$daemon_b"
wait "$daemon_b" 2>/dev/null
daemon_b=
held=$(count_where "leased_by = 'dc$$-b' and status = 'pending'")
check "the second instance SIGKILLed holding $held leased rows mid-publish" \
    test "$held" -gt 0
simctl '{"qstash_slow_ms": 0}'
rest() { [ "$(tagged e2 published)" -ge $((48 - held)) ]; }
check "the first instance publishes the $((48 - held)) rows not leased" \
    wait_for 60 rest
kept=$(count_where "leased_by = 'dc$$-b' and status = 'pending'
    and lease_until > now()")
check "and leaves the dead one's $held leased rows while the leases last ($kept)" \
    test "$kept" -eq "$held"
sql "update scheduled_discharge_calls set lease_until = now()
    where leased_by = 'dc$$-b'"
e2pub() { [ "$(tagged e2 published)" -eq 48 ]; }
check "leases over: the first instance publishes the dead one's rows" \
    wait_for 30 e2pub
sql "select dedup_id from scheduled_discharge_calls
    where user_id = '$U5' and consultation_id like 'e2-%'" >"$tmp/want5"
pub_by_dedup | grep -Ff "$tmp/want5" >"$tmp/pd5"
m1=$(awk '$2 == 1' "$tmp/pd5" | wc -l)
twice=$(awk '$3 == 2' "$tmp/pd5" | wc -l)
check "one message per row at QStash, the dead one's publishes deduplicated ($m1 of 48, $twice sent twice)" \
    sh -c "[ $m1 -eq 48 ] && [ $twice -ge 1 ] && [ $twice -le $held ]"
advance_past $U5
check "every clinic-five call dialled" wait_for 90 all_in $U5 completed
sleep 1
check "each of the 112 calls dialled exactly once ($(dialled $U5))" sh -c \
    "[ $(dialled $U5) -eq 112 ] && [ $(dialled_distinct $U5) -eq 112 ]"
check "VAPI calls in all: one per dialled row ($(vapi '.calls | length'))" \
    test "$(vapi '.calls | length')" -eq "$(count_where "status = 'completed'")"
check "in the end no row is claimed, failed or still waiting" test "$(count_where \
    "status in ('claimed', 'failed', 'pending', 'published')")" -eq 0
check "no token, key or signature in either instance's log" sh -c "! grep -qF \
    -e '$TOKEN' -e '$CK' -e '$NK' -e '$VK' '$tmp/vetsyncd.log' \
    '$tmp/vetsyncd-b.log'"
