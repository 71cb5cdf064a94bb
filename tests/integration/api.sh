#!/bin/sh
# The HTTP API end to end, on a real PostgreSQL with the real vetsyncd,
# sandboxed workers and tests/idexx_sim: /health and /metrics (the
# Prometheus text format checked line by line), configure-credentials
# (validated by a worker, stored or refused), trigger-sync, sync-status in
# the PRD's shape, revocation through DELETE (the running worker killed),
# the admin metrics, the dashboard and its event stream; every 4xx with a
# JSON error naming what was wrong; forged, expired, alg-none and
# other-audience tokens; oversized bodies and headers; a client that leaves
# before its answer; a burst of garbage; and no password or token in the
# daemon's log.  Tokens are made here with openssl (HS256 over the
# jwt-secret's bytes, as Supabase signs them).
#
# Runs itself again inside pg_virtualenv, as tests/integration/db.sh does.
. "$top_srcdir/tests/integration/lib.sh"

in_pg_virtualenv "$@"

N=72
skip_all() { skip_plan $N "api case" "$1"; }
[ "$(id -u)" -eq 0 ] || skip_all "needs root (worker identity)"
grep -q '^#define VS_SANITIZERS 1' "$top_builddir/config.h" &&
    skip_all "sanitizer build: the worker policy refuses ASan"
for tool in jq curl psql openssl python3; do
	command -v $tool >/dev/null 2>&1 || skip_all "$tool is not installed"
done
sim=$top_builddir/tests/idexx_sim
[ -x "$sim" ] || skip_all "test programs not built"

tap_plan $N

tz=Europe/London
U=33333333-4444-4555-8666-777777777701	# sync enabled
V=33333333-4444-4555-8666-777777777702
NOUSER=33333333-4444-4555-8666-7777777777ff
db=vetsync_api
supw=${PGPASSWORD:-}
dpw="daemon-pw-$$"
key="master-secret-$$"
secret="jwt-secret-of-the-project-$$-0123456789abcdef"
iss=https://vetsync-test.supabase.co/auth/v1
body_max=4096
tmp=$(mktemp -d /tmp/vetsync-api.XXXXXX)
chmod 755 "$tmp"
simpid=
daemon=
daemon2=
ssepid=
cleanup() {
	[ -n "$ssepid" ] && kill "$ssepid" 2>/dev/null
	[ -n "$daemon" ] && kill -KILL "$daemon" 2>/dev/null
	[ -n "$daemon2" ] && kill -KILL "$daemon2" 2>/dev/null
	[ -n "$simpid" ] && kill "$simpid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

sql() { PGPASSWORD=$supw psql -X -q -At -v ON_ERROR_STOP=1 -d $db -c "$*"; }
num() { case $1 in ''|*[!0-9]*) echo -1 ;; *) echo "$1" ;; esac; }
now_ms() { date +%s%3N; }
now() { date +%s; }

PGPASSWORD=$supw createdb -T template0 $db
"$top_builddir/vetsyncctl" migrate --dir "$top_srcdir/migrations" \
    --conninfo "dbname=$db" >"$tmp/migrate.log" 2>&1 ||
    sed 's/^/# /' "$tmp/migrate.log"
sql "alter role vetsync_daemon login password '$dpw'"
sql "insert into users (id, clinic_name, idexx_sync_enabled, timezone) values
    ('$U', 'One', true, '$tz'), ('$V', 'Two', true, '$tz')"

"$sim" --port 0 --port-file "$tmp/port" --profile neo --timezone $tz \
    --clinics 2 --consultations 10 --latency-ms 2 >"$tmp/sim.log" 2>&1 &
simpid=$!
wait_for 10 test -s "$tmp/port" || diag "simulator did not start"
url=http://127.0.0.1:$(cat "$tmp/port")
simctl() { curl -s -X POST --data "$1" "$url/__sim/control" >/dev/null; }

port=$(python3 -c 'import socket; s = socket.socket();
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
api=http://127.0.0.1:$port

mkdir -p "$tmp/state" "$tmp/creds"
chmod 700 "$tmp/creds"
printf '%s\n' "$dpw" >"$tmp/creds/db-password"
printf '%s\n' "$key" >"$tmp/creds/encryption-key-k1"
printf '%s\n' "$secret" >"$tmp/creds/jwt-secret"
chmod 600 "$tmp/creds"/*
cat >"$tmp/vetsyncd.conf" <<CONF
[idexx]
profile = $top_srcdir/deploy/neo-profile.conf
base_url = $url
request_rate = 200
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
prespawn = 1
[database]
conninfo = host=$PGHOST port=${PGPORT:-5432} dbname=$db user=vetsync_daemon
connect_timeout = 2s
[api]
listen = 127.0.0.1:$port
jwt_issuer = $iss
body_max = $body_max
[instance]
name = api$$
CONF
# VS_API_DAEMON: another vetsyncd binary, e.g. one built with
# --enable-sanitizers (the workers stay those of this build: their policy
# refuses ASan).  valgrind cannot run vetsyncd: it compiles seccomp filters.
CREDENTIALS_DIRECTORY="$tmp/creds" "${VS_API_DAEMON:-$top_builddir/vetsyncd}" \
    -d -c "$tmp/vetsyncd.conf" -S "$tmp/control.sock" -s "$tmp/state" \
    2>"$tmp/vetsyncd.log" &
daemon=$!
diag "vetsyncd: ${VS_API_DAEMON:-$top_builddir/vetsyncd}"
wait_for 60 test -S "$tmp/control.sock" || diag "vetsyncd did not start"
ctl() { CREDENTIALS_DIRECTORY="$tmp/creds" "$top_builddir/vetsyncctl" \
    -c "$tmp/vetsyncd.conf" -S "$tmp/control.sock" "$@"; }
cred() { sql "select $2 from idexx_credentials where user_id = '$1'"; }
sessions() {
	num "$(sql "select count(*) from idexx_sync_sessions
	    where user_id = '$1' and status = '$2'")"
}
sessions_ge() { [ "$(sessions "$1" completed)" -ge "$2" ]; }

# --- tokens ----------------------------------------------------------------
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
# jwt PAYLOAD [KEY] [HEADER]
hs256='{"alg":"HS256","typ":"JWT"}'
jwt() {
	h=$(printf '%s' "${3:-$hs256}" | b64url)
	p=$(printf '%s' "$1" | b64url)
	s=$(printf '%s' "$h.$p" | openssl dgst -sha256 -hmac "${2:-$secret}" \
	    -binary | b64url)
	echo "$h.$p.$s"
}
# claims SUB [EXP-OFFSET] [AUD] [EXTRA]
claims() {
	printf '{"aud":"%s","iss":"%s","sub":"%s","role":"authenticated",' \
	    "${3:-authenticated}" "$iss" "$1"
	printf '"email":"vet@example.com","iat":%d,"exp":%d%s}' "$(now)" \
	    $(($(now) + ${2:-3600})) "${4:-}"
}
TU=$(jwt "$(claims $U)")
TV=$(jwt "$(claims $V)")
TNOUSER=$(jwt "$(claims $NOUSER)")
# A service key (Supabase's API-key token: no sub, no aud).
TADMIN=$(jwt "$(printf '{"iss":"supabase","ref":"vetsync-test",%s%d,%s%d}' \
    '"role":"service_role","iat":' "$(now)" '"exp":' $(($(now) + 600)))")
TAPPADMIN=$(jwt "$(claims $V 3600 authenticated \
    ',"app_metadata":{"role":"admin"}')")

# req METHOD PATH [TOKEN] [BODY]: status code on stdout, body in $tmp/body
req() {
	_m=$1 _p=$2 _t=${3:-} _b=${4:-}
	set -- -s -m 60 -o "$tmp/body" -w '%{http_code}' -X "$_m"
	[ -n "$_t" ] && set -- "$@" -H "Authorization: Bearer $_t"
	[ -n "$_b" ] && set -- "$@" -H 'Content-Type: application/json' \
	    --data-binary "$_b"
	curl "$@" "$api$_p" 2>/dev/null
}
jb() { jq -r "$1" "$tmp/body" 2>/dev/null; }
jqe() { jq -e "$@" >/dev/null 2>&1; }
# is_error CODE WANT-CODE WORDS: a JSON {"error"} naming what was wrong
is_error() {
	[ "$1" = "$2" ] && jq -e '.error | type == "string"' "$tmp/body" \
	    >/dev/null 2>&1 && grep -q -i -- "$3" "$tmp/body"
}

# --- health and metrics ----------------------------------------------------
healthy() { [ "$(req GET /health)" = 200 ] && [ "$(jb .status)" = ok ]; }
check "health: 200 and status ok once the database is connected" \
    wait_for 20 healthy
check "health: database true, workers and clinics are numbers" \
    jqe '.database == true and (.workers | type == "number") and
    (.clinics | type == "number") and .auth == true' "$tmp/body"
curl -s -D "$tmp/mh" -o "$tmp/metrics" "$api/metrics"
check "metrics: text/plain; version=0.0.4" \
    grep -q -i '^content-type: text/plain; version=0.0.4' "$tmp/mh"
help='# HELP vetsync_[a-z_]+ [^\\]+'
type='# TYPE vetsync_[a-z_]+ (counter|gauge)'
label='[a-z_]+="[a-z0-9_]+"'
sample="vetsync_[a-z_]+(\\{$label(,$label)*\\})? [0-9]+(\\.[0-9]+)?"
bad=$(grep -n -v -E "^($help|$type|$sample)\$" "$tmp/metrics" | head -3)
check "metrics: every line is HELP, TYPE or a sample ($bad)" \
    test -z "$bad" -a -s "$tmp/metrics"
check "metrics: the last line ends with a newline" \
    test "$(tail -c 1 "$tmp/metrics" | od -An -c | tr -d ' ')" = '\n'
# Each sample's name has its TYPE before it, once; counters end in _total.
check "metrics: TYPE before samples, once per name; counters end in _total" \
    awk '
	/^# TYPE / { if ($3 in type) exit 1; type[$3] = $4;
	    if ($4 == "counter" && $3 !~ /_total$/) exit 1; next }
	/^# / { next }
	{ n = $1; sub(/\{.*/, "", n); if (!(n in type)) exit 1 }
    ' "$tmp/metrics"
check "metrics: clinics by state, workers, jobs by kind, database, audit" \
    sh -c "grep -q '^vetsync_clinics{state=\"held\"} ' '$tmp/metrics' &&
    grep -q '^vetsync_workers ' '$tmp/metrics' &&
    grep -q '^vetsync_jobs_total{kind=\"reconcile_notes\",result=\"ok\"} ' \
    '$tmp/metrics' &&
    grep -q '^vetsync_database_connected 1' '$tmp/metrics' &&
    grep -q '^vetsync_audit_records_total ' '$tmp/metrics'"

# --- authentication --------------------------------------------------------
body='{"username":"vet1@clinic1.test","password":"password-1"}'
c=$(req POST /api/idexx/configure-credentials "" "$body")
check "no token: 401 naming the Authorization header ($c)" \
    is_error "$c" 401 "authorization"
c=$(curl -s -o "$tmp/body" -w '%{http_code}' -X POST \
    -H "Authorization: Basic dTpw" --data-binary "$body" \
    "$api/api/idexx/configure-credentials")
check "not a Bearer token: 401 ($c)" is_error "$c" 401 "bearer"
c=$(req POST /api/idexx/configure-credentials \
    "$(jwt "$(claims $U)" another-projects-secret)" "$body")
check "forged token (another secret): 401 'signature' ($c)" \
    is_error "$c" 401 "signature"
c=$(req POST /api/idexx/configure-credentials "$(jwt "$(claims $U -120)")" \
    "$body")
check "expired token: 401 'expired' ($c)" is_error "$c" 401 "expired"
c=$(req POST /api/idexx/configure-credentials \
    "$(jwt "$(claims $U)" "$secret" '{"alg":"none","typ":"JWT"}')" "$body")
check "alg none: 401 'alg' ($c)" is_error "$c" 401 "alg none"
c=$(req POST /api/idexx/configure-credentials \
    "$(jwt "$(claims $U)" "$secret" '{"alg":"RS256","typ":"JWT"}')" "$body")
check "alg RS256 signed with the HS secret: 401 ($c)" \
    is_error "$c" 401 "RS256"
c=$(req POST /api/idexx/configure-credentials \
    "$(jwt "$(claims $U 3600 anon)")" "$body")
check "another audience: 401 'aud' ($c)" is_error "$c" 401 "aud"
c=$(req POST /api/idexx/configure-credentials "$TADMIN" "$body")
check "a service key has no sub: not a user's token, 401 ($c)" \
    is_error "$c" 401 "sub"
c=$(req POST /api/idexx/configure-credentials "not.a.token" "$body")
check "garbage token: 401 ($c)" is_error "$c" 401 "token"

# --- configure-credentials -------------------------------------------------
c=$(req POST /api/idexx/configure-credentials "$TU" "$body")
check "configure: valid credentials: 200, success, valid, dated ($c)" \
    sh -c "[ $c = 200 ] && jq -e '.success == true and
    .validationStatus == \"valid\" and (.lastValidated | length) > 0 and
    (has(\"ok\") | not)' '$tmp/body' >/dev/null"
row=$(cred $U "state || ' ' || validation_status")
check "configure: the row is stored, active and valid ($row)" \
    test "$row" = "active valid"
before=$(cred $U "encrypted_password || updated_at")
c=$(req POST /api/idexx/configure-credentials "$TU" \
    '{"username":"vet1@clinic1.test","password":"wrong-password-x"}')
check "configure: a wrong password: 422, success false, invalid ($c)" \
    sh -c "[ $c = 422 ] && jq -e '.success == false and
    .validationStatus == \"invalid\"' '$tmp/body' >/dev/null"
check "configure: nothing of the refused credentials is stored" \
    test "$(cred $U "encrypted_password || updated_at")" = "$before"
c=$(req POST /api/idexx/configure-credentials "$TV" \
    '{"username":"vet2@clinic2.test"}')
check "configure: no password: 400 naming 'password' ($c)" \
    is_error "$c" 400 "'password'"
c=$(req POST /api/idexx/configure-credentials "$TV" \
    '{"username":"vet2@clinic2.test","password":7}')
check "configure: a password that is not a string: 400 ($c)" \
    is_error "$c" 400 "'password' must be a string"
c=$(req POST /api/idexx/configure-credentials "$TV" \
    '{"username":"vet2@clinic2.test","password":"pass-secret-zz1"')
bad_json() {
	[ "$c" = 400 ] && grep -q 'not JSON' "$tmp/body" &&
	    ! grep -q pass-secret-zz1 "$tmp/body"
}
check "configure: bad JSON: 400, and the body is not echoed ($c)" bad_json
c=$(req POST /api/idexx/configure-credentials "$TV" '[1,2]')
check "configure: a JSON array: 400 'not a JSON object' ($c)" \
    is_error "$c" 400 "not a JSON object"
big=$(head -c $((body_max + 1)) /dev/zero | tr '\0' 'a')
c=$(req POST /api/idexx/configure-credentials "$TV" "$big")
check "configure: a body of body_max + 1 bytes: 413 JSON ($c)" \
    is_error "$c" 413 "api.body_max"
head -c $((body_max + 200000)) /dev/zero | tr '\0' 'a' >"$tmp/huge"
c=$(curl -s -o "$tmp/body" -w '%{http_code}' -X POST \
    -H "Authorization: Bearer $TV" --data-binary @"$tmp/huge" \
    "$api/api/idexx/configure-credentials")
check "configure: a body far over the limit: 413 ($c)" test "$c" = 413
c=$(req POST /api/idexx/configure-credentials "$TV" \
    '{"username":"vet2@clinic2.test","password":"password-2"}')
check "configure: a second clinic: 200 valid ($c)" \
    test "$c" = 200 -a "$(jb .validationStatus)" = valid

# --- events, trigger-sync, sync-status -------------------------------------
curl -s -N -m 120 "$api/api/idexx/events" >"$tmp/sse" 2>/dev/null &
ssepid=$!
wait_for 5 grep -q '^event: snapshot' "$tmp/sse"
check "events: the stream opens with a snapshot of the clinics" \
    grep -q '^event: snapshot' "$tmp/sse"
c=$(req POST /api/idexx/trigger-sync "$TU")
check "trigger-sync: 202, queued ($c: $(cat "$tmp/body"))" \
    sh -c "[ $c = 202 ] && jq -e '.queued == true and
    (.state | type == \"string\")' '$tmp/body' >/dev/null"
check "trigger-sync: the clinic syncs" wait_for 60 sessions_ge $U 1
job_end() {
	grep -q '^event: job_end' "$tmp/sse" &&
	    grep -q "^data: .*\"clinic\":\"$U\".*\"kind\":\"reconcile_notes\"" \
	    "$tmp/sse"
}
check "events: a job_end event of the clinic's notes job arrives" \
    wait_for 20 job_end
check "events: and its job_start" grep -q '^event: job_start' "$tmp/sse"
c=$(req GET /api/idexx/sync-status "$TU")
check "sync-status: 200 in the PRD's shape ($c: $(cat "$tmp/body"))" \
    sh -c "[ $c = 200 ] && jq -e '.lastSync.status == \"completed\" and
    (.lastSync.timestamp | test(\"^[0-9]{4}-[0-9]{2}-[0-9]{2}T\")) and
    (.lastSync.consultationsSynced | type == \"number\") and
    (.lastSync.dischargeCallsScheduled | type == \"number\") and
    has(\"nextScheduledSync\") and .syncEnabled == true and
    .credentialStatus == \"valid\"' '$tmp/body' >/dev/null"
n=$(sql "select consultations_synced from idexx_sync_sessions where
    user_id = '$U' and status = 'completed' order by started_at desc limit 1")
check "sync-status: consultationsSynced is the session's ($n)" \
    test "$(jb .lastSync.consultationsSynced)" = "$n"
c=$(req GET /api/idexx/sync-status "$TNOUSER")
check "sync-status: a sub with no users row: 404 ($c)" \
    is_error "$c" 404 "no such user"
c=$(req POST /api/idexx/trigger-sync "$TU" '{"kind":"everything"}')
check "trigger-sync: an unknown kind: 400 naming 'kind' ($c)" \
    is_error "$c" 400 "'kind'"
c=$(req POST /api/idexx/trigger-sync "$TU" '{"kind":"schedule"}')
check "trigger-sync: kind schedule: 202 ($c)" \
    sh -c "[ $c = 202 ] && [ \"\$(jq -r .kind '$tmp/body')\" = schedule ]"

# --- methods and paths -----------------------------------------------------
c=$(req GET /api/idexx/trigger-sync "$TU")
check "GET on a POST route: 405 naming the method ($c)" \
    is_error "$c" 405 "method GET not allowed"
c=$(req PUT /health)
check "PUT /health: 405 ($c)" is_error "$c" 405 "PUT"
c=$(req TRACE /metrics)
check "TRACE /metrics: 405 in JSON too ($c)" is_error "$c" 405 "TRACE"
c=$(req GET /api/idexx/nothing-here "$TU")
check "an unknown path: 404 naming it ($c)" \
    is_error "$c" 404 "nothing-here"

# --- admin -----------------------------------------------------------------
c=$(req GET /api/admin/idexx-sync/metrics "$TU")
check "admin metrics with a user's token: 403 naming the role ($c)" \
    is_error "$c" 403 "authenticated"
c=$(req GET /api/admin/idexx-sync/metrics)
check "admin metrics without a token: 401 ($c)" is_error "$c" 401 "token"
c=$(req GET /api/admin/idexx-sync/metrics "$TADMIN")
check "admin metrics with the service key: 200, clinics, counts ($c)" \
    sh -c "[ $c = 200 ] && jq -e '.totalClinics == 2 and
    .enabledClinics == 2 and (.clinics | length) >= 1 and
    .last24Hours.syncs >= 1 and (.lastHour.failures | type == \"number\")
    and (.failureRateLastHour | type == \"number\") and
    (.successRate | type == \"number\") and (.errorLog | type == \"array\")' \
    '$tmp/body' >/dev/null"
check "admin metrics: the clinic's state and last outcome" \
    jqe --arg c $U '.clinics[] | select(.clinic == $c) |
    .lastOutcome == "ok" and .jobsOk >= 1' "$tmp/body"
c=$(req GET /api/admin/idexx-sync/metrics "$TAPPADMIN")
check "admin metrics with app_metadata.role admin: 200 ($c)" test "$c" = 200

# --- dashboard -------------------------------------------------------------
curl -s -D "$tmp/dh" -o "$tmp/dash" "$api/dashboard"
check "dashboard: 200 text/html" grep -q -i '^content-type: text/html' \
    "$tmp/dh"
check "dashboard: self-contained, reading the event stream" \
    sh -c "grep -q \"EventSource('/api/idexx/events')\" '$tmp/dash' &&
    ! grep -q -i -E '(src|href)=\"?(https?:)?//' '$tmp/dash'"

# --- revocation ------------------------------------------------------------
simctl '{"latency_ms": 1500}'
ctl sync --user $U >/dev/null
worker_pid() {
	ctl status --json | jq -r --arg c $U \
	    '.workers[] | select(.clinic == $c) | .pid' | head -1
}
wpid=
has_worker() { wpid=$(worker_pid); [ -n "$wpid" ] && [ "$wpid" -gt 0 ]; }
wait_for 20 has_worker
check "revoke: the clinic's worker runs (pid $wpid)" test -n "$wpid"
t0=$(now_ms)
c=$(req DELETE /api/idexx/credentials "$TU")
gone() { ! kill -0 "$wpid" 2>/dev/null; }
wait_for 5 gone
t1=$(now_ms)
check "revoke: 200 {revoked: true} ($c: $(cat "$tmp/body"))" \
    sh -c "[ $c = 200 ] && jq -e '.revoked == true' '$tmp/body' >/dev/null"
check "revoke: the worker is gone within 1 s ($((t1 - t0)) ms)" \
    test $((t1 - t0)) -lt 1000
row=$(cred $U "state || ' ' || (encrypted_password is null) || ' ' ||
    (revoked_at is not null)")
check "revoke: ciphertexts deleted, row revoked ($row)" \
    test "$row" = "revoked true true"
c=$(req DELETE /api/idexx/credentials "$TU")
check "revoke again: 200 {revoked: false} ($c)" \
    sh -c "[ $c = 200 ] && jq -e '.revoked == false' '$tmp/body' >/dev/null"
check "revoke is the token's own clinic only: V's row untouched" \
    test "$(cred $V state)" = active
c=$(req DELETE /api/idexx/credentials "$TV")
check "revoke: V's own token revokes V's ($c, $(cred $V state))" \
    test "$c" = 200 -a "$(cred $V state)" = revoked
c=$(req GET /api/idexx/sync-status "$TU")
check "sync-status after revoke: credentialStatus not_configured ($c)" \
    test "$(jb .credentialStatus)" = not_configured
simctl '{"latency_ms": 2}'

# --- clients that leave, bounds, garbage -----------------------------------
simctl '{"latency_ms": 1500}'
curl -s -m 0.5 -o /dev/null -X POST -H "Authorization: Bearer $TV" \
    --data-binary '{"username":"vet2@clinic2.test","password":"password-2"}' \
    "$api/api/idexx/configure-credentials" 2>/dev/null
# Its answer comes once the validation job ends, to nobody.
stored_v() { [ "$(cred $V state)" = active ]; }
wait_for 30 stored_v
check "a client that left before its answer: stored anyway, no crash" \
    stored_v
simctl '{"latency_ms": 2}'
c=$(curl -s -o "$tmp/body" -w '%{http_code}' \
    -H "X-Big: $(head -c 10000 /dev/zero | tr '\0' 'b')" "$api/health")
check "headers over the limit: refused ($c)" test "$c" -ge 400 -a "$c" -lt 500
i=0
while [ $i -lt 200 ]; do
	p=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
	case $((i % 5)) in
	0) curl -s -m 5 -o /dev/null -X POST --data-binary @/dev/null \
	    "$api/$p" ;;
	1) head -c $((i * 7)) /dev/urandom | curl -s -m 5 -o /dev/null \
	    -X POST -H "Authorization: Bearer $TU" --data-binary @- \
	    "$api/api/idexx/trigger-sync" ;;
	2) head -c 300 /dev/urandom | curl -s -m 5 -o /dev/null -X POST \
	    -H "Authorization: Bearer $p.$p.$p" --data-binary @- \
	    "$api/api/idexx/configure-credentials" ;;
	3) head -c 200 /dev/urandom | python3 -c "
import socket, sys
s = socket.create_connection(('127.0.0.1', $port))
s.sendall(sys.stdin.buffer.read()); s.settimeout(2)
try: s.recv(100)
except Exception: pass" 2>/dev/null ;;
	4) curl -s -m 5 -o /dev/null -X DELETE "$api/api/idexx/events?$p" ;;
	esac
	i=$((i + 1))
done
check "200 garbage requests later vetsyncd is up and healthy" \
    sh -c "kill -0 $daemon && [ \"\$(curl -s -m 5 -o /dev/null \
    -w '%{http_code}' $api/health)\" = 200 ]"
kill "$ssepid" 2>/dev/null
ssepid=
subs() { curl -s "$api/metrics" | grep -q '^vetsync_events_subscribers 0'; }
check "a subscriber that left is dropped (subscribers 0)" wait_for 20 subs
pids=
for i in $(seq 32); do
	curl -s -N -m 60 -o /dev/null "$api/api/idexx/events" 2>/dev/null &
	pids="$pids $!"
done
subs32() { curl -s "$api/metrics" |
    grep -q '^vetsync_events_subscribers 32'; }
wait_for 20 subs32
c=$(req GET /api/idexx/events)
check "events: the 33rd subscriber gets 503 naming the limit ($c)" \
    is_error "$c" 503 "32 subscribers"
kill $pids 2>/dev/null
wait $pids 2>/dev/null
check "events: the 32 that left are dropped" wait_for 20 subs

# --- TLS -------------------------------------------------------------------
# A second vetsyncd serving the API over TLS (api.tls_cert / api.tls_key).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$tmp/tls.key" -out "$tmp/tls.crt" >/dev/null 2>&1
chmod 600 "$tmp/tls.key"
tport=$(python3 -c 'import socket; s = socket.socket();
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$tmp/state2"
sed -e "s|^listen = .*|listen = 127.0.0.1:$tport|" \
    -e "/^listen = /a tls_cert = $tmp/tls.crt" \
    -e "/^listen = /a tls_key = $tmp/tls.key" \
    -e "s|^name = .*|name = tls$$|" "$tmp/vetsyncd.conf" >"$tmp/tls.conf"
CREDENTIALS_DIRECTORY="$tmp/creds" "${VS_API_DAEMON:-$top_builddir/vetsyncd}" \
    -d -c "$tmp/tls.conf" -S "$tmp/control2.sock" -s "$tmp/state2" \
    2>"$tmp/tls.log" &
daemon2=$!
tls_up() {
	[ "$(curl -s -m 5 --cacert "$tmp/tls.crt" -o "$tmp/body" \
	    -w '%{http_code}' "https://127.0.0.1:$tport/health")" = 200 ]
}
check "TLS: /health over https with the configured certificate" \
    wait_for 20 tls_up
c=$(curl -s -m 5 --cacert "$tmp/tls.crt" -o "$tmp/body" -w '%{http_code}' \
    -H "Authorization: Bearer $(jwt "$(claims $U)" another-projects-secret)" \
    "https://127.0.0.1:$tport/api/idexx/sync-status")
check "TLS: a forged token over TLS: 401 JSON ($c)" \
    is_error "$c" 401 "signature"
c=$(curl -s -m 5 -o /dev/null -w '%{http_code}' \
    "http://127.0.0.1:$tport/health" 2>/dev/null)
check "TLS: plain HTTP to the TLS port gets no answer ($c)" test "$c" = 000
check "TLS: the log says TLS" \
    grep -q "api: listening on 127.0.0.1:$tport (TLS)" "$tmp/tls.log"
kill -TERM $daemon2
wait $daemon2; rc=$?
daemon2=
check "TLS: that vetsyncd stops cleanly ($rc)" test $rc -eq 0

# --- no secret anywhere ----------------------------------------------------
leaks() {
	for p in password-1 password-2 wrong-password-x pass-secret-zz1 \
	    "$secret" "$TU" "$TV" "$TADMIN"; do
		grep -l -F -- "$p" "$@" 2>/dev/null
	done
	# Any part of a token's signature
	for t in "$TU" "$TADMIN"; do
		grep -l -F -- "${t##*.}" "$@" 2>/dev/null
	done
}
check "no password, token or jwt-secret in the daemon's log or the spool" \
    test -z "$(leaks "$tmp/vetsyncd.log" "$tmp/state/audit.spool")"
check "the refusals are logged with their reason" \
    grep -q 'token refused: token: signature does not match' \
    "$tmp/vetsyncd.log"
kill -TERM $daemon
wait_for 60 sh -c "! kill -0 $daemon 2>/dev/null"
check "SIGTERM: vetsyncd stops with the API up" \
    sh -c "! kill -0 $daemon 2>/dev/null"
wait $daemon; rc=$?
daemon=
check "SIGTERM: exit 0 ($rc)" test $rc -eq 0
check "no sanitizer report in the daemons' logs (with VS_API_DAEMON)" \
    sh -c "! grep -E 'runtime error|AddressSanitizer|LeakSanitizer' \
    '$tmp/vetsyncd.log' '$tmp/tls.log'"
[ $tap_failed -eq 0 ] || sed "s/^/# /" "$tmp/vetsyncd.log" | tail -40
