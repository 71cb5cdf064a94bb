#!/bin/sh
# The main job on a built-in default: vetsyncd syncing clinics from the
# IDEXX Neo simulator (tests/idexx_sim) through real sandboxed workers into
# a throw-away PostgreSQL (pg_virtualenv).
#
#   1. validate the example configuration (vetsyncd --check-config);
#   2. create a throw-away database and apply the migrations
#      (vetsyncctl migrate); add four clinics (users) to it;
#   3. start the simulator: 4 clinic accounts, 50 consultations each in
#      the last 48 h, 20 ms latency per request;
#   4. start vetsyncd with the shipped neo site profile and the isolation
#      policy, and show what confines the workers;
#   5. store each clinic's IDEXX credentials through the normal path
#      (vetsyncctl credentials set: validated by a sandboxed worker, then
#      encrypted into PostgreSQL); clinic 4's password is wrong, so it is
#      refused and nothing is stored;
#   6. reconcile the last 48 h of notes for the three others and
#      tomorrow's schedule for one;
#   7. show vetsyncctl status, what each job found, the cases and sync
#      rows now in PostgreSQL, the hash-chained audit log (verified) and
#      the simulator's request counts;
#   8. discharge calls: every completed consultation got one in the outbox,
#      published to the simulator's QStash; its clock is moved two days on,
#      QStash delivers to vetsyncd's signed endpoint, which claims each
#      call once and has the simulator's VAPI dial it; a summary per clinic;
#   9. on a terminal, leave it all running (dashboard, metrics) until
#      Ctrl-C, which stops everything and removes what it made.
#
# Jobs are triggered here with vetsyncctl sync so that the demo does not
# wait for the schedule.
set -eu
top=$(cd "$(dirname "$0")" && pwd)
b="$top/build"
[ -x "$b/vetsyncd" ] || { echo "demo: build first (./setup.sh)" >&2; exit 1; }
[ -x "$b/tests/idexx_sim" ] || make -C "$b" tests/idexx_sim >/dev/null

# A throw-away PostgreSQL cluster for the length of the demo.
if [ -z "${VS_DEMO_INSIDE:-}" ]; then
	VS_DEMO_INSIDE=1 exec pg_virtualenv -t -- sh "$0" "$@"
fi
tz=America/Denver
db=vetsync_demo
dpw="demo-daemon-$$"
sql() { psql -X -q -At -v ON_ERROR_STOP=1 -d $db -c "$*"; }
uuid() { printf '11111111-2222-4333-8444-55555555550%s' "$1"; }

echo "== vetsyncd --check-config -c deploy/vetsyncd.conf"
"$b/vetsyncd" --check-config -c "$top/deploy/vetsyncd.conf" 2>&1 | tail -1

tmp=$(mktemp -d /tmp/vetsync-demo.XXXXXX)
chmod 755 "$tmp"
sim_pid=
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	[ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$tmp/state" "$tmp/creds"
chmod 700 "$tmp/creds"

echo "== throw-away PostgreSQL: vetsyncctl migrate"
createdb -T template0 $db
"$b/vetsyncctl" migrate --dir "$top/migrations" --conninfo "dbname=$db"
sql "alter role vetsync_daemon login password '$dpw'"
for i in 1 2 3 4; do
	sql "insert into users (id, clinic_name, idexx_sync_enabled, timezone)
	    values ('$(uuid $i)', 'Clinic $i', true, '$tz')"
done

echo "== IDEXX Neo simulator: 4 clinics, 50 consultations each, 20 ms latency"
# The simulator also plays QStash and VAPI, with these secrets.
qtoken=demo-qstash-token-$$
qcur=demo-signing-current-$$
qnext=demo-signing-next-$$
vkey=demo-vapi-key-$$
"$b/tests/idexx_sim" --port 0 --port-file "$tmp/port" --profile neo \
    --clinics 4 --consultations 50 --latency-ms 20 --timezone $tz \
    --qstash-token "$qtoken" --qstash-current-key "$qcur" \
    --qstash-next-key "$qnext" --vapi-key "$vkey" 2>"$tmp/sim.log" &
sim_pid=$!
i=0
while [ ! -s "$tmp/port" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
port=$(cat "$tmp/port")
echo "   listening on 127.0.0.1:$port"

# The HTTP API (and QStash's delivery endpoint) on a free local port.
aport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$tmp/vetsyncd.conf" <<CONF
[idexx]
profile = $top/deploy/neo-profile.conf
base_url = http://127.0.0.1:$port
request_rate = 100
max_parallel = 8
[schedule]
default_timezone = $tz
[credentials]
key_id = demo
[api]
listen = 127.0.0.1:$aport
[discharge]
qstash_url = http://127.0.0.1:$port
delivery_url = http://127.0.0.1:$aport/hooks/discharge
vapi_url = http://127.0.0.1:$port
vapi_assistant_id = demo-discharge-assistant
vapi_phone_number_id = demo-phone-number
[database]
conninfo = host=$PGHOST port=${PGPORT:-5432} dbname=$db user=vetsync_daemon
[workers]
binary = $b/vetsync-worker
policy_dir = $top/policy
user = nobody
group = nogroup
backoff_initial = 30s
[instance]
name = demo
CONF
# Secrets, as systemd passes them: the database password and the master
# key that encrypts the clinics' credentials.
printf '%s\n' "$dpw" > "$tmp/creds/db-password"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' \
    > "$tmp/creds/encryption-key-demo"
printf '%s' "$qtoken" > "$tmp/creds/qstash-token"
printf '%s' "$qcur" > "$tmp/creds/qstash-current-signing-key"
printf '%s' "$qnext" > "$tmp/creds/qstash-next-signing-key"
printf '%s' "$vkey" > "$tmp/creds/vapi-key"
chmod 600 "$tmp/creds"/*

echo "== starting vetsyncd"
CREDENTIALS_DIRECTORY="$tmp/creds" "$b/vetsyncd" -c "$tmp/vetsyncd.conf" \
    -S "$tmp/control.sock" -s "$tmp/state" 2>"$tmp/vetsyncd.log" &
pid=$!
i=0
while [ ! -S "$tmp/control.sock" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
ctl() { "$b/vetsyncctl" -c "$tmp/vetsyncd.conf" -S "$tmp/control.sock" "$@"; }

echo "== vetsyncctl policy show (the start)"
ctl policy show | head -12
echo "   ..."

echo "== vetsyncctl credentials set (validated in a sandboxed worker, then stored encrypted)"
for i in 1 2 3 4; do
	pw=password-$i
	[ $i -eq 4 ] && pw=not-the-password
	printf '%s\n' "$pw" | ctl credentials set --user "$(uuid $i)" \
	    --username "vet$i@clinic$i.test" --company-id "c$i" 2>/dev/null ||
	    true
done
psql -X -d $db -c "select u.clinic_name, c.state, c.validation_status,
    c.encryption_key_id as key, left(c.encrypted_password, 44) || '...'
    as encrypted_password from users u left join idexx_credentials c
    on c.user_id = u.id order by 1"

echo "== queue jobs"
for i in 1 2 3; do ctl sync --user "$(uuid $i)"; done
ctl sync --user "$(uuid 1)" --kind schedule
# The results reach PostgreSQL right after each job, the audit rows soon
# after: wait for both.
count() { n=$(sql "$1" 2>/dev/null || true); echo "${n:-0}"; }
i=0
while { [ "$(count "select count(*) from idexx_sync_sessions
    where status <> 'running'")" -lt 4 ] ||
    [ "$(count "select count(*) from idexx_sync_audit_log
    where action = 'worker_exit' and metadata->>'kind' <> 'validate_credentials'")" \
    -lt 4 ]; } && [ $i -lt 600 ]; do
	sleep 0.1
	i=$((i + 1))
done

echo "== vetsyncctl status"
ctl status
echo "== what each job found (from the audit log in PostgreSQL)"
sql "select metadata || jsonb_build_object('clinic', u.clinic_name)
    from idexx_sync_audit_log a join users u on u.id = a.user_id
    where a.action = 'worker_exit' and a.metadata->>'kind' <>
    'validate_credentials' order by a.seq" |
jq -r '"\(.clinic) \(.kind): \(if .ok then "ok" else "FAILED (\(.result // .class))" end), \(.consultations) consultations, \(.appointments) appointments, \(.duration_ms) ms, peak memory \((.memory_peak // 0) / 1048576 * 10 | floor / 10) MiB"'
grep -E 'job ended|held|alert|refused' "$tmp/vetsyncd.log" |
    sed 's/^[^ ]* [^ ]* /   /' || true
echo "== PostgreSQL: sync sessions"
psql -X -d $db -c "select u.clinic_name, s.kind, s.status,
    s.consultations_synced as synced, s.consultations_failed as failed
    from idexx_sync_sessions s join users u on u.id = s.user_id
    order by u.clinic_name, s.kind"
echo "== PostgreSQL: cases and their notes, per clinic"
psql -X -d $db -c "select u.clinic_name, count(c.*) as cases,
    count(*) filter (where c.metadata->'idexx'->>'notes' <> '') as with_notes,
    count(*) filter (where c.status = 'scheduled') as scheduled
    from users u left join cases c on c.user_id = u.id
    group by u.clinic_name order by 1"
echo "== one case, as vetsync wrote it"
sql "select jsonb_pretty(metadata) from cases where user_id = '$(uuid 1)'
    and metadata ? 'idexx' order by id limit 1" | cut -c1-100 | head -20
echo "== audit log: events, and its hash chain"
psql -X -d $db -c "select action, count(*) from idexx_sync_audit_log
    group by 1 order by 1"
"$b/vetsyncctl" audit verify --conninfo "dbname=$db" || true
echo "== simulator: requests and bytes per clinic"
curl -s "http://127.0.0.1:$port/__sim/stats" | jq -c '.clinics | to_entries[] | {clinic: .key, requests: .value.requests, bytes: .value.bytes, failed_logins: .value.failed_logins}'
echo "== discharge calls: the outbox, published to QStash (due in 2 days)"
i=0
while [ "$(count "select count(*) from scheduled_discharge_calls
    where status = 'pending'")" -gt 0 ] && [ $i -lt 200 ]; do
	sleep 0.1
	i=$((i + 1))
done
psql -X -d $db -c "select u.clinic_name, d.status, count(*) as calls,
    min(d.scheduled_for)::date as first_due from scheduled_discharge_calls d
    join users u on u.id = d.user_id group by 1, 2 order by 1, 2"
echo "== two days later (the simulator's QStash clock moves on): delivered,"
echo "   claimed once each, dialled through VAPI"
curl -s -X POST --data '{"qstash_advance": 259200}' \
    "http://127.0.0.1:$port/__sim/control" >/dev/null
i=0
while [ "$(count "select count(*) from scheduled_discharge_calls
    where status in ('pending', 'published')")" -gt 0 ] && [ $i -lt 300 ]; do
	sleep 0.1
	i=$((i + 1))
done
echo "== per clinic: consultations synced, notes added, discharge calls"
psql -X -d $db -c "select u.clinic_name,
    (select coalesce(sum(consultations_synced), 0) from idexx_sync_sessions s
     where s.user_id = u.id and s.kind = 'notes') as consultations_synced,
    (select count(*) from cases c where c.user_id = u.id
     and c.metadata->'idexx'->>'notes' <> '') as cases_with_notes,
    (select count(*) from scheduled_discharge_calls d
     where d.user_id = u.id) as calls_scheduled,
    (select count(*) from scheduled_discharge_calls d
     where d.user_id = u.id and d.status = 'completed') as calls_made
    from users u order by 1"
echo "   VAPI (simulated) received $(curl -s "http://127.0.0.1:$port/__sim/vapi" |
    jq '.calls | length') call requests"

if [ -t 0 ] && [ -t 1 ]; then
	echo "== vetsyncd is running; where to look next:"
	echo "   dashboard   http://127.0.0.1:$aport/dashboard"
	echo "   metrics     http://127.0.0.1:$aport/metrics"
	echo "   status      $b/vetsyncctl -S $tmp/control.sock status"
	echo "   database    psql -d $db  (PG* are set inside pg_virtualenv)"
	echo "   Ctrl-C stops vetsyncd and the simulator and removes it all."
	while kill -0 "$pid" 2>/dev/null; do sleep 1; done
fi
kill -TERM "$pid"
wait "$pid" && echo "== vetsyncd stopped cleanly"
pid=
