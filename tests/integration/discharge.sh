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
# Runs itself again inside pg_virtualenv, as tests/integration/db.sh does.
. "$top_srcdir/tests/integration/lib.sh"

in_pg_virtualenv "$@"

N=49
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
cleanup() {
	[ -n "$daemon" ] && kill -KILL "$daemon" 2>/dev/null
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
    --clinics 3 --consultations 20 --latency-ms 2 --qstash-token "$TOKEN" \
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
check "no token, key or signature in the log" sh -c "! grep -qF -e '$TOKEN' \
    -e '$CK' -e '$NK' -e '$VK' '$tmp/vetsyncd.log'"
