#!/bin/sh
# PostHog events end to end, on a real PostgreSQL with the real vetsyncd,
# sandboxed workers and tests/idexx_sim standing in for IDEXX, QStash, VAPI
# and PostHog's capture (on a port of its own, with the real body caps):
# syncs of three clinics give sync.started (with users.clinic_name) and
# sync.completed (with the session's consultation count) per session,
# discharge.scheduled once per published outbox row, credential.validated
# on `vetsyncctl credentials set` (valid and invalid) and on a validation
# job, each event in the contract's shape and once by uuid; a sync that
# fails gives sync.failed.  Then PostHog answering 503 (events arrive
# later, once), 429 with Retry-After (honoured), 8 s late (syncs keep
# their pace), 401 (dropped, logged once, the sync unaffected), a last
# flush at SIGTERM, PostHog down entirely (syncs complete, the stop is
# quick), no key (events off, said once), and the key never in a log line
# or /metrics.
#
# Runs itself again inside pg_virtualenv, as tests/integration/db.sh does.
. "$top_srcdir/tests/integration/lib.sh"

in_pg_virtualenv "$@"

N=45
skip_all() { skip_plan $N "events case" "$1"; }
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
db=vetsync_events
supw=${PGPASSWORD:-}
dpw="daemon-pw-$$"
PK="phc_events_key_$$_Zq7"
TOKEN=qstash-token-$$-Ev1
CK=sig_current_$$_Ev2
NK=sig_next_$$_Ev3
VK=vapi-key-$$-Ev4
tmp=$(mktemp -d /tmp/vetsync-events.XXXXXX)
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
    sed 's/^/# /' "$tmp/migrate.log"
sql "alter role vetsync_daemon login password '$dpw'"
sql "insert into users (id, clinic_name, idexx_sync_enabled, timezone) values
    ('$U1', 'Clinic One', true, '$tz'), ('$U2', 'Clinic Two', true, '$tz'),
    ('$U3', 'Clinic \"Three\"', true, '$tz'), ('$U4', 'Four', false, '$tz')"

"$sim" --port 0 --port-file "$tmp/port" --profile neo --timezone $tz \
    --clinics 4 --consultations 20 --latency-ms 2 --qstash-token "$TOKEN" \
    --qstash-current-key "$CK" --qstash-next-key "$NK" --vapi-key "$VK" \
    --posthog-key "$PK" --posthog-port-file "$tmp/phport" \
    >"$tmp/sim.log" 2>&1 &
simpid=$!
wait_for 10 test -s "$tmp/phport" || diag "simulator did not start"
url=http://127.0.0.1:$(cat "$tmp/port")
phurl=http://127.0.0.1:$(cat "$tmp/phport")
aport=$(freeport)
durl=http://127.0.0.1:$aport/hooks/discharge

mkdir -p "$tmp/state" "$tmp/creds"
chmod 700 "$tmp/creds"
for i in 1 2 3; do
	eval "u=\$U$i"
	printf 'vet%s@clinic%s.test\npassword-%s\nc%s\n' $i $i $i $i \
	    >"$tmp/creds/idexx-$u"
done
printf '%s\n' "$dpw" >"$tmp/creds/db-password"
printf 'master-secret-%s\n' "$$" >"$tmp/creds/encryption-key-k1"
printf '%s' "$TOKEN" >"$tmp/creds/qstash-token"
printf '%s' "$CK" >"$tmp/creds/qstash-current-signing-key"
printf '%s' "$NK" >"$tmp/creds/qstash-next-signing-key"
printf '%s' "$VK" >"$tmp/creds/vapi-key"
printf '%s\n' "$PK" >"$tmp/creds/posthog-key"
chmod 600 "$tmp/creds"/*
# write_conf HOST BATCH_SIZE FLUSH_INTERVAL
write_conf() {
	cat >"$tmp/vetsyncd.conf" <<CONF
[idexx]
profile = $top_srcdir/deploy/neo-profile.conf
base_url = $url
request_rate = 100
max_parallel = 8
[schedule]
default_timezone = $tz
[credentials]
key_id = k1
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
name = ev$$
[api]
listen = 127.0.0.1:$aport
[discharge]
qstash_url = $url
delivery_url = $durl
vapi_url = $url
vapi_assistant_id = asst-events-test
vapi_phone_number_id = pn-events-test
[posthog]
host = $1
batch_size = $2
flush_interval = $3
CONF
}
# VS_EVENTS_DAEMON: another vetsyncd binary, e.g. one built with
# --enable-sanitizers (the workers stay those of this build: their policy
# refuses ASan).
start_daemon() {
	rm -f "$tmp/control.sock"
	CREDENTIALS_DIRECTORY="$tmp/creds" \
	    "${VS_EVENTS_DAEMON:-$top_builddir/vetsyncd}" -d \
	    -c "$tmp/vetsyncd.conf" -S "$tmp/control.sock" -s "$tmp/state" \
	    2>>"$tmp/vetsyncd.log" &
	daemon=$!
	wait_for 30 test -S "$tmp/control.sock" || diag "vetsyncd did not start"
}
# stop_daemon: SIGTERM, and the seconds it took to exit in $stop_s
stop_daemon() {
	t0=$(date +%s%3N)
	kill -TERM "$daemon"
	wait "$daemon"
	stop_rc=$?
	stop_s=$(( ($(date +%s%3N) - t0) / 1000 ))
	daemon=
}
ctl() { CREDENTIALS_DIRECTORY="$tmp/creds" "$top_builddir/vetsyncctl" \
    -c "$tmp/vetsyncd.conf" -S "$tmp/control.sock" "$@"; }
simctl() { curl -s -X POST --data "$1" "$url/__sim/control" >/dev/null; }
ph() { curl -s "$url/__sim/posthog" | jq -r "$1"; }
# evs NAME USER: that clinic's events of that name
evs() { ph "[.events[] | select(.event == \"$1\" and
    .properties.userId == \"$2\")] | length"; }
# sessions USER [STATUS]: sync sessions (validations are not syncs)
sessions() {
	num "$(sql "select count(*) from idexx_sync_sessions where user_id = '$1'
	    and kind <> 'validate' ${2:+and status = '$2'}")"
}
sessions_ge() { [ "$(sessions "$1" completed)" -ge "$2" ]; }
# sync_next USER: one more completed session of USER than now
sync_next() {
	set -- "$1" $(($(sessions "$1" completed) + 1))
	ctl sync --user "$1" >/dev/null || return 1
	wait_for 90 sessions_ge "$1" "$2"
}
# matches USER: sync.started per session, sync.completed per completed
# session with its kind and consultation count, the clinic's name
matches() {
	sql "select kind || ' ' || consultations_synced from
	    idexx_sync_sessions where user_id = '$1' and status = 'completed'
	    and kind <> 'validate' order by 1" >"$tmp/want.$1"
	ph "[.events[] | select(.event == \"sync.completed\" and
	    .properties.userId == \"$1\") | .properties |
	    \"\(.kind) \(.consultations)\"] | sort | .[]" >"$tmp/got.$1"
	name=$(sql "select clinic_name from users where id = '$1'")
	named=$(curl -s "$url/__sim/posthog" | jq --arg u "$1" --arg n "$name" \
	    '[.events[] | select(.event == "sync.started" and
	    .properties.userId == $u and .properties.clinicName == $n)] |
	    length')
	[ -s "$tmp/want.$1" ] && cmp -s "$tmp/want.$1" "$tmp/got.$1" &&
	    [ "$(evs sync.started "$1")" -eq "$(sessions "$1")" ] &&
	    [ "$named" -eq "$(sessions "$1")" ]
}
unique_uuids() {
	[ "$(ph '[.events[].uuid] | length')" -eq \
	    "$(ph '[.events[].uuid] | unique | length')" ]
}
metric() { curl -s "http://127.0.0.1:$aport/metrics" |
    awk -v m="$1" '$1 == m { print $2 }'; }
published() { [ "$(num "$(sql "select count(*) from scheduled_discharge_calls
    where status <> 'published'")")" -eq 0 ]; }

write_conf "$phurl" 5 1s
diag "vetsyncd: ${VS_EVENTS_DAEMON:-$top_builddir/vetsyncd}"
start_daemon
check "vetsyncd starts with events on" wait_for 10 \
    grep -q 'events: PostHog at http://127.0.0.1' "$tmp/vetsyncd.log"

# --- three clinics -----------------------------------------------------------
for u in $U1 $U2 $U3; do
	ctl sync --user $u >/dev/null
done
check "three clinics: first syncs complete" wait_for 90 sh -c \
    "[ \$(psql -X -At -d $db -c \"select count(distinct user_id)
    from idexx_sync_sessions where status = 'completed'\") -eq 3 ]"
for u in $U1 $U2 $U3; do
	check "clinic ${u##*0}: sync.started and sync.completed per session, with its name and count" \
	    wait_for 20 matches $u
done
c1=$(ph "[.events[] | select(.event == \"sync.completed\" and
    .properties.userId == \"$U1\")][0].properties.consultations")
check "the counts are real: clinic one synced $c1 consultations" \
    test "$(num "$c1")" -gt 0
shape=$(ph '[.events[] | select((.event | startswith("sync.")) and
    (.properties.distinct_id == .properties.userId) and
    .properties["$lib"] == "vetsync" and
    .properties["$process_person_profile"] == true and
    (.uuid | test("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")) and
    (.timestamp | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\\.[0-9]{3}Z$")))]
    | length')
check "sync events: distinct_id, \$lib, person profile, uuid v4, timestamp ($shape)" \
    test "$shape" -eq "$(ph '[.events[] | select(.event | startswith("sync."))] | length')"
keys=$(ph '[.events[] | select(.event == "sync.completed") | .properties |
    keys_unsorted | sort | join(",")] | unique | join(" ")')
check "sync.completed carries only its properties ($keys)" test "$keys" = \
    '$lib,$process_person_profile,consultations,distinct_id,duration,kind,userId'
dur=$(ph '[.events[] | select(.event == "sync.completed") |
    .properties.duration | select(type == "number" and . > 0 and . < 600)]
    | length')
check "duration is in seconds ($dur)" test "$dur" -eq \
    "$(ph '[.events[] | select(.event == "sync.completed")] | length')"

# --- discharge.scheduled -----------------------------------------------------
check "every outbox row is published" wait_for 60 published
sql "select user_id || ' ' || consultation_id || ' ' ||
    to_char(scheduled_for at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') ||
    '.000Z' from scheduled_discharge_calls order by 1" >"$tmp/want.dis"
rows=$(wc -l <"$tmp/want.dis")
dis() {
	ph '.events[] | select(.event == "discharge.scheduled") | .properties |
	    "\(.userId) \(.consultationId) \(.scheduledFor)"' | sort \
	    >"$tmp/got.dis"
	[ "$rows" -gt 0 ] && cmp -s "$tmp/want.dis" "$tmp/got.dis"
}
check "discharge.scheduled once per outbox row, with its due time ($rows rows)" \
    wait_for 20 dis
dp=$(ph '[.events[] | select(.event == "discharge.scheduled" and
    .properties["$process_person_profile"] == false and
    .properties.distinct_id == .properties.userId)] | length')
check "discharge.scheduled: no person profile ($dp)" test "$dp" -eq "$rows"

# --- credential.validated ----------------------------------------------------
echo password-4 | ctl credentials set --user $U4 \
    --username vet4@clinic4.test --company-id c4 >/dev/null 2>&1
echo wrong-password | ctl credentials set --user $U4 \
    --username vet4@clinic4.test --company-id c4 >/dev/null 2>&1
cv() { [ "$(ph "[.events[] | select(.event == \"credential.validated\" and
    .properties.userId == \"$U4\" and .properties.status == \"$1\" and
    .properties[\"\$process_person_profile\"] == true)] | length")" -eq 1 ]; }
check "credentials set: credential.validated valid" wait_for 20 cv valid
check "credentials set with a wrong password: credential.validated invalid" \
    wait_for 20 cv invalid
ctl sync --user $U1 --kind validate >/dev/null
cv1() { [ "$(ph "[.events[] | select(.event == \"credential.validated\" and
    .properties.userId == \"$U1\" and .properties.status == \"valid\")] |
    length")" -eq 1 ]; }
check "a validation job (sync --kind validate): credential.validated valid" \
    wait_for 30 cv1
check "each event arrived once (uuids unique)" unique_uuids
pn=$(ph '[.events[] | tostring | select(test("303.?555"))] | length')
extra=$(ph '[.events[] | (.properties | keys[]), keys[]] | unique -
    ["userId", "clinicName", "kind", "consultations", "duration", "error",
    "step", "consultationId", "scheduledFor", "status", "distinct_id",
    "$lib", "$process_person_profile", "event", "properties", "timestamp",
    "uuid", "_path"] | join(",")')
check "no phone number, notes or other property in any event ($pn, '$extra')" \
    sh -c "[ $pn -eq 0 ] && [ -z '$extra' ]"

# --- 503, then back ----------------------------------------------------------
before=$(evs sync.completed $U1)
simctl '{"posthog_fail_next": 3, "posthog_fail_code": 503}'
check "PostHog answering 503: clinic one syncs again" sync_next $U1
check "the events arrive once PostHog is back" wait_for 30 matches $U1
after503() { [ "$(ph '[.requests[] | select(.code == 503)] | length')" -ge 3 ] &&
    [ "$(evs sync.completed $U1)" -eq $((before + 1)) ] && unique_uuids; }
check "... after the 503s, each once" after503
check "the 503s are logged" grep -q 'events: PostHog answered 5xx' \
    "$tmp/vetsyncd.log"

# --- 429 with Retry-After ----------------------------------------------------
simctl '{"posthog_fail_next": 1, "posthog_fail_code": 429,
    "posthog_retry_after": 3}'
check "PostHog answering 429: clinic two syncs again" sync_next $U2
check "the events arrive after the 429" wait_for 30 matches $U2
gap=$(ph '.requests as $r | [range(0; $r | length - 1) |
    select($r[.].code == 429) | $r[. + 1].at_ms - $r[.].at_ms] | last')
check "Retry-After: 3 was honoured (next request ${gap} ms later)" \
    test "$(num "$gap")" -ge 2950
check "... each event once" unique_uuids

# --- slow answers ------------------------------------------------------------
# Clinic three's events go out after the 1 s interval and hang there for
# 8 s; clinic two's sync runs meanwhile.
simctl '{"posthog_slow_ms": 8000}'
sync_next $U3
sleep 1.5
t0=$(date +%s%3N)
sync_next $U2
took=$(($(date +%s%3N) - t0))
check "PostHog answering 8 s late: a sync meanwhile takes $took ms" \
    test "$took" -lt 5000
simctl '{"posthog_slow_ms": 0}'
both_match() { matches $U3 && matches $U2; }
check "... and both clinics' events arrive after the late answers" \
    wait_for 40 both_match

# --- 401 ---------------------------------------------------------------------
simctl '{"posthog_key": "phc_someone_else"}'
n3=$(evs sync.completed $U3)
check "PostHog refusing the key (401): clinic three still syncs" \
    sync_next $U3
dropped() { [ "$(num "$(metric \
    'vetsync_posthog_events_dropped_total{reason="rejected"}')")" -ge 2 ]; }
check "the refused events are dropped and counted" wait_for 20 dropped
check "... logged once ($(grep -c 'refused a batch with 401' "$tmp/vetsyncd.log"))" \
    test "$(grep -c 'refused a batch with 401' "$tmp/vetsyncd.log")" -eq 1
check "... and not received ($(ph .stats.unauthorized) refused)" sh -c \
    "[ $(ph .stats.unauthorized) -ge 1 ] && [ $(evs sync.completed $U3) -eq $n3 ]"
simctl "{\"posthog_key\": \"$PK\"}"
sent=$(num "$(metric vetsync_posthog_events_sent_total)")
curl -s "http://127.0.0.1:$aport/metrics" >"$tmp/metrics"
check "/metrics counts the events sent ($sent), without the key" sh -c \
    "[ $sent -ge $rows ] && ! grep -qF '$PK' '$tmp/metrics'"
# The vetsync_posthog_ lines as tests/integration/api.sh checks them all.
help='# HELP vetsync_posthog_[a-z_]+ [^\\]+'
type='# TYPE vetsync_posthog_[a-z_]+ (counter|gauge)'
sample='vetsync_posthog_[a-z_]+(\{[a-z_]+="[a-z0-9_]+"\})? [0-9]+'
grep 'vetsync_posthog_' "$tmp/metrics" >"$tmp/phm"
badm=$(grep -v -E "^($help|$type|$sample)\$" "$tmp/phm" | head -1)
check "/metrics: the vetsync_posthog_ lines are well formed ($badm)" sh -c \
    "[ -z '$badm' ] && [ \$(grep -c '^# TYPE' '$tmp/phm') -eq 5 ]"

# --- sync.failed -------------------------------------------------------------
simctl '{"ui_changed": true}'
done1=$(sessions $U1 completed)
ctl sync --user $U1 >/dev/null
failed() { [ "$(ph "[.events[] | select(.event == \"sync.failed\" and
    .properties.userId == \"$U1\" and .properties.error == \"$1\" and
    .properties.step == \"$2\" and .properties.kind == \"notes\")] |
    length")" -ge 1 ]; }
check "IDEXX's UI changed: sync.failed, error ui_changed at step idexx" \
    wait_for 60 failed ui_changed idexx
simctl '{"ui_changed": false}'
check "... the retry completes and its events follow" wait_for 60 sh -c \
    "[ \$(psql -X -At -d $db -c \"select count(*) from idexx_sync_sessions
    where user_id = '$U1' and status = 'completed'\") -gt $done1 ]"
check "... one sync.started per session, failed ones too" wait_for 20 matches $U1

# --- the last flush at SIGTERM -----------------------------------------------
stop_daemon
write_conf "$phurl" 1000 10m
start_daemon
n2=$(evs sync.completed $U2)
req=$(ph .stats.requests)
sync_next $U2
sleep 1
check "events wait for the flush interval (nothing sent yet)" \
    test "$(ph .stats.requests)" -eq "$req"
stop_daemon
check "SIGTERM: the waiting events are sent before the exit (exit $stop_rc)" \
    sh -c "[ $stop_rc -eq 0 ] && [ $(evs sync.completed $U2) -eq $((n2 + 1)) ]"

# --- PostHog down entirely ---------------------------------------------------
dead=$(freeport)
write_conf "http://127.0.0.1:$dead" 5 1s
start_daemon
check "PostHog down: clinic one's sync completes as usual" sync_next $U1
check "... PostHog said unreachable" wait_for 10 grep -q \
    'events: PostHog unreachable' "$tmp/vetsyncd.log"
stop_daemon
check "... and the stop is quick (${stop_s} s, exit $stop_rc)" \
    sh -c "[ $stop_rc -eq 0 ] && [ $stop_s -lt 10 ]"

# --- no key ------------------------------------------------------------------
rm -f "$tmp/creds/posthog-key"
write_conf "$phurl" 5 1s
req=$(ph .stats.requests)
start_daemon
check "no posthog-key: events are off, said at start" wait_for 10 grep -q \
    'no posthog-key secret: PostHog events are off' "$tmp/vetsyncd.log"
sync_next $U3
sleep 2
check "... syncs run, nothing goes to PostHog" sh -c \
    "[ $(sessions $U3 completed) -ge 3 ] && [ $(ph .stats.requests) -eq $req ] &&
    [ '$(metric vetsync_posthog_enabled)' = 0 ]"
stop_daemon

check "the key is in no log line" sh -c "! grep -qF -e '$PK' \
    '$tmp/vetsyncd.log' '$tmp/sim.log'"
check "no sanitizer report in vetsyncd's log" sh -c "! grep -q -e \
    'Sanitizer' -e 'runtime error:' '$tmp/vetsyncd.log'"
