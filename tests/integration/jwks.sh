#!/bin/sh
# RS256 and ES256 Supabase tokens end to end: a real vetsyncd on a real
# PostgreSQL with api.jwks_url pointing at the simulator's JWKS document
# (tests/sim/jwks.c), serving the public halves of keys made here with
# `openssl genpkey`; the tokens are signed with their private halves by
# tests/jws_sign.  Accepted: RS256 and ES256 by a kid of the set, HS256
# with jwt-secret beside them.  Refused with a reason: a kid not in the
# set (one fetch, then no more for JWKS_MISS_S however many forged kids
# come), another key claiming a kid, alg none, HS256 "signed" with the RSA
# public key, ES256 by an RSA key's kid.  A key the set holds but we cannot
# use (RSA under 2048 bits) is skipped and named in the log.  A rotated-in
# kid is picked up by the fetch its first token asks for (the request
# waits for it); a kid rotated out stops working after a fetch.  When the
# URL answers 500, is slower than the fetch timeout or serves an oversized
# document, the last good set stays in use, and a request by a known kid
# never waits on the fetch; a client leaving or SIGTERM while a request
# waits is harmless; a vetsyncd whose JWKS is down from the start still
# takes HS256.  /metrics counts keys and fetches.  No token in the log.
#
# Runs itself again inside pg_virtualenv, as tests/integration/api.sh does.
. "$top_srcdir/tests/integration/lib.sh"

in_pg_virtualenv "$@"

N=40
skip_all() { skip_plan $N "jwks case" "$1"; }
[ "$(id -u)" -eq 0 ] || skip_all "needs root (worker identity)"
grep -q '^#define VS_SANITIZERS 1' "$top_builddir/config.h" &&
    skip_all "sanitizer build: the worker policy refuses ASan"
for tool in jq curl psql openssl python3; do
	command -v $tool >/dev/null 2>&1 || skip_all "$tool is not installed"
done
sim=$top_builddir/tests/idexx_sim
sign=$top_builddir/tests/jws_sign
[ -x "$sim" ] && [ -x "$sign" ] || skip_all "test programs not built"

tap_plan $N

tz=Europe/London
U=44444444-5555-4666-8777-888888888801
db=vetsync_jwks
supw=${PGPASSWORD:-}
dpw="daemon-pw-$$"
secret="jwt-secret-of-the-project-$$-0123456789abcdef"
iss=https://vetsync-test.supabase.co/auth/v1
tmp=$(mktemp -d /tmp/vetsync-jwks.XXXXXX)
chmod 755 "$tmp"
simpid=
daemon=
daemon2=
cleanup() {
	[ -n "$daemon" ] && kill -KILL "$daemon" 2>/dev/null
	[ -n "$daemon2" ] && kill -KILL "$daemon2" 2>/dev/null
	[ -n "$simpid" ] && kill "$simpid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

sql() { PGPASSWORD=$supw psql -X -q -At -v ON_ERROR_STOP=1 -d $db -c "$*"; }
now() { date +%s; }

PGPASSWORD=$supw createdb -T template0 $db
"$top_builddir/vetsyncctl" migrate --dir "$top_srcdir/migrations" \
    --conninfo "dbname=$db" >"$tmp/migrate.log" 2>&1 ||
    sed 's/^/# /' "$tmp/migrate.log"
sql "alter role vetsync_daemon login password '$dpw'"
sql "insert into users (id, clinic_name, idexx_sync_enabled, timezone) values
    ('$U', 'One', true, '$tz')"

# --- keys: made now, never committed ---------------------------------------
mkdir -p "$tmp/keys"
for k in rsa1 rsa2 forger; do
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
	    -out "$tmp/keys/$k.pem" 2>/dev/null
done
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 \
    -out "$tmp/keys/weak.pem" 2>/dev/null
for k in ec1 ecforger; do
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
	    -out "$tmp/keys/$k.pem" 2>/dev/null
done
openssl pkey -in "$tmp/keys/rsa1.pem" -pubout -out "$tmp/keys/rsa1.pub" \
    2>/dev/null
printf '%s' "$secret" >"$tmp/keys/secret"

"$sim" --port 0 --port-file "$tmp/port" --profile neo --timezone $tz \
    --clinics 1 --consultations 5 >"$tmp/sim.log" 2>&1 &
simpid=$!
wait_for 10 test -s "$tmp/port" || diag "simulator did not start"
url=http://127.0.0.1:$(cat "$tmp/port")
# jwksctl JSON: steer the simulator's JWKS; jwks_requests: its counter
jwksctl() {
	curl -s -o "$tmp/jwksctl" -w '%{http_code}' -X POST --data "$1" \
	    "$url/__sim/jwks"
}
jwks_requests() { curl -s "$url/__sim/jwks" | jq -r .requests; }
key() { printf '{"kid":"%s","pem":"%s"}' "$1" "$tmp/keys/$2.pem"; }
c=$(jwksctl "{\"keys\":[$(key rsa-1 rsa1),$(key ec-1 ec1)]}")
check "simulator: serves the two keys ($c)" \
    sh -c "[ $c = 200 ] && curl -s '$url/auth/v1/.well-known/jwks.json' |
    jq -e '.keys | length == 2 and .[0].kty == \"RSA\" and
    .[1].crv == \"P-256\" and (.[1].d | not)' >/dev/null"

port=$(python3 -c 'import socket; s = socket.socket();
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
api=http://127.0.0.1:$port

mkdir -p "$tmp/state" "$tmp/creds"
chmod 700 "$tmp/creds"
printf '%s\n' "$dpw" >"$tmp/creds/db-password"
printf '%s\n' "master-secret-$$" >"$tmp/creds/encryption-key-k1"
printf '%s\n' "$secret" >"$tmp/creds/jwt-secret"
chmod 600 "$tmp/creds"/*
cat >"$tmp/vetsyncd.conf" <<CONF
[idexx]
profile = $top_srcdir/deploy/neo-profile.conf
base_url = $url
[schedule]
default_timezone = $tz
[credentials]
key_id = k1
[workers]
binary = $top_builddir/vetsync-worker
policy_dir = $top_srcdir/policy
user = nobody
group = nogroup
prespawn = 0
[database]
conninfo = host=$PGHOST port=${PGPORT:-5432} dbname=$db user=vetsync_daemon
connect_timeout = 2s
[api]
listen = 127.0.0.1:$port
jwt_issuer = $iss
jwks_url = $url/auth/v1/.well-known/jwks.json
[instance]
name = jwks$$
CONF
CREDENTIALS_DIRECTORY="$tmp/creds" "${VS_API_DAEMON:-$top_builddir/vetsyncd}" \
    -d -c "$tmp/vetsyncd.conf" -S "$tmp/control.sock" -s "$tmp/state" \
    2>"$tmp/vetsyncd.log" &
daemon=$!
wait_for 60 test -S "$tmp/control.sock" || diag "vetsyncd did not start"

# --- tokens ----------------------------------------------------------------
# tok ALG KEY KID [PAYLOAD]: a token signed by jws_sign (KEY in $tmp/keys)
claims() {
	printf '{"aud":"authenticated","iss":"%s","sub":"%s",' "$iss" "$U"
	printf '"role":"authenticated","iat":%d,"exp":%d}' "$(now)" \
	    $(($(now) + 3600))
}
tok() { printf '%s' "${4:-$(claims)}" | "$sign" "$1" "$tmp/keys/$2" "$3"; }
# req TOKEN [PATH]: status code on stdout, body in $tmp/body
req() {
	curl -s -m 60 -o "$tmp/body" -w '%{http_code}' \
	    -H "Authorization: Bearer $1" "$api${2:-/api/idexx/sync-status}"
}
is_error() {
	[ "$1" = "$2" ] && jq -e '.error | type == "string"' "$tmp/body" \
	    >/dev/null 2>&1 && grep -q -i -- "$3" "$tmp/body"
}
synced() { [ "$1" = 200 ] && jq -e '.syncEnabled == true' "$tmp/body" \
    >/dev/null 2>&1; }
# A fetch for an unknown kid is allowed once per JWKS_MISS_S (10 s).
cooldown() { sleep 11; }

healthy() { [ "$(req x /health)" = 200 ] &&
    jq -e '.status == "ok" and .auth == true' "$tmp/body" >/dev/null; }
check "health: ok, auth configured" wait_for 30 healthy
check "the JWKS is fetched at start" \
    wait_for 10 sh -c "[ \$(curl -s '$url/__sim/jwks' | jq .requests) -ge 1 ]"
check "the log says 2 keys are in use" \
    wait_for 10 grep -q 'api.jwks_url: 2 key(s) in use' "$tmp/vetsyncd.log"
check "no 'not supported' warning about api.jwks_url any more" \
    sh -c "! grep -q 'not supported' '$tmp/vetsyncd.log'"
# metric NAME: its value in /metrics
metric() { curl -s "$api/metrics" | awk -v n="$1" '$1 == n { print $2 }'; }
check "metrics: vetsync_jwks_keys 2, one fetch, no failure" \
    test "$(metric vetsync_jwks_keys) $(metric vetsync_jwks_fetches_total)\
 $(metric vetsync_jwks_fetch_failures_total)" = "2 1 0"

# --- accepted --------------------------------------------------------------
TRS=$(tok RS256 rsa1.pem rsa-1)
TES=$(tok ES256 ec1.pem ec-1)
c=$(req "$TRS")
check "RS256 by kid rsa-1: 200 with the user's status ($c)" synced "$c"
c=$(req "$TES")
check "ES256 by kid ec-1: 200 with the user's status ($c)" synced "$c"
c=$(req "$(tok HS256 secret -)")
check "HS256 with jwt-secret still works beside the JWKS ($c)" synced "$c"
TADM=$(tok ES256 ec1.pem ec-1 "$(printf '{"iss":"supabase","role":%s%d}' \
    '"service_role","exp":' $(($(now) + 600)))")
c=$(req "$TADM" /api/admin/idexx-sync/metrics)
check "ES256 service key on the admin route: 200 ($c)" test "$c" = 200

# --- refused ---------------------------------------------------------------
before=$(jwks_requests)
c=$(req "$(tok RS256 forger.pem rsa-1)")
check "another RSA key claiming kid rsa-1: 401 'signature' ($c)" \
    is_error "$c" 401 "signature does not match"
c=$(req "$(tok ES256 ecforger.pem ec-1)")
check "another EC key claiming kid ec-1: 401 'signature' ($c)" \
    is_error "$c" 401 "signature does not match"
c=$(req "$(tok HS256 rsa1.pub rsa-1)")
check "HS256 signed with the RSA public key (alg confusion): 401 ($c)" \
    is_error "$c" 401 "signature does not match"
c=$(req "$(tok ES256 ec1.pem rsa-1)")
check "ES256 by an RSA key's kid: 401 'does not fit' ($c)" \
    is_error "$c" 401 "does not fit"
c=$(req "$(tok none secret rsa-1 | sed 's/\.[^.]*$/./')")
check "alg none by a known kid: 401 'alg none' ($c)" \
    is_error "$c" 401 "alg none"
check "none of these made vetsyncd fetch the JWKS" \
    test "$(jwks_requests)" = "$before"
c=$(req "$(tok RS256 forger.pem forged-1)")
check "a kid not in the set: 401 naming the kid ($c)" \
    is_error "$c" 401 "kid is not in the project's JWKS"
check "... after exactly one fetch for it" \
    test "$(jwks_requests)" = $((before + 1))
for i in 2 3 4 5 6 7 8 9; do
	req "$(tok RS256 forger.pem forged-$i)" >/dev/null
done
check "eight more forged kids at once: no more fetches ($(jwks_requests))" \
    test "$(jwks_requests)" = $((before + 1))

# --- rotation --------------------------------------------------------------
c=$(jwksctl "{\"keys\":[$(key rsa-1 rsa1),$(key ec-1 ec1),$(key rsa-2 rsa2),\
$(key weak-1 weak)]}")
cooldown
c=$(req "$(tok RS256 rsa2.pem rsa-2)")
check "a rotated-in kid: its first token waits for the fetch, 200 ($c)" \
    synced "$c"
check "the log says 3 keys are in use" \
    grep -q 'api.jwks_url: 3 key(s) in use (was 2)' "$tmp/vetsyncd.log"
check "... and names the 1024-bit RSA key it skipped" \
    grep -q 'api.jwks_url: key 3 skipped: an RSA modulus outside 2048' \
    "$tmp/vetsyncd.log"

# --- the URL fails: the last good set stays ---------------------------------
jwksctl '{"status":500}' >/dev/null
cooldown
before=$(jwks_requests)
c=$(req "$(tok RS256 forger.pem forged-10)")
check "JWKS answering 500: a new kid is refused ($c)" \
    sh -c "[ $c = 401 ] &&
    [ \$(curl -s '$url/__sim/jwks' | jq .requests) = $((before + 1)) ]"
c=$(req "$TRS")
c2=$(req "$TES")
check "JWKS answering 500: rsa-1 and ec-1 still accepted ($c $c2)" \
    sh -c "[ $c = 200 ] && [ $c2 = 200 ]"
check "the log says the fetch failed and the keys are kept" \
    grep -q 'api.jwks_url: answered 500, not 200; keeping the 3 key(s)' \
    "$tmp/vetsyncd.log"
check "metrics: the failure is counted, the 3 keys still in use" \
    test "$(metric vetsync_jwks_keys) $(metric \
    vetsync_jwks_fetch_failures_total)" = "3 1"

jwksctl '{"status":200,"pad_bytes":70000}' >/dev/null
cooldown
c=$(req "$(tok RS256 forger.pem forged-11)")
c2=$(req "$TRS")
check "an oversized JWKS: refused, rsa-1 still accepted ($c $c2)" \
    sh -c "[ $c = 401 ] && [ $c2 = 200 ] &&
    grep -q 'api.jwks_url: .*limit.*keeping the 3 key(s)' \
    '$tmp/vetsyncd.log'"

jwksctl '{"pad_bytes":0,"slow_ms":15000}' >/dev/null
cooldown
t0=$(date +%s%3N)
req "$(tok RS256 forger.pem forged-12)" >"$tmp/slowcode" &
slowreq=$!
sleep 1
t1=$(date +%s%3N)
c=$(req "$TES")
t2=$(date +%s%3N)
check "a JWKS slower than the fetch timeout: a known kid does not wait \
($c in $((t2 - t1)) ms)" sh -c "[ $c = 200 ] && [ $((t2 - t1)) -lt 2000 ]"
wait $slowreq
t3=$(date +%s%3N)
check "... the unknown kid's request ends at the fetch timeout, 401 \
($(cat "$tmp/slowcode") after $((t3 - t0)) ms)" \
    sh -c "[ $(cat "$tmp/slowcode") = 401 ] && [ $((t3 - t0)) -ge 9000 ] &&
    [ $((t3 - t0)) -lt 14000 ]"
# A client that gives up while its request waits for the fetch.
cooldown
c=$(curl -s -m 1 -o /dev/null -w '%{http_code}' \
    -H "Authorization: Bearer $(tok RS256 forger.pem forged-14)" \
    "$api/api/idexx/sync-status")
sleep 10
c2=$(req "$TES")
check "a client leaving while its request waits: no answer to it ($c), \
the next one 200 ($c2)" sh -c "[ $c = 000 ] && [ $c2 = 200 ] &&
    kill -0 $daemon"

# --- rotated out ------------------------------------------------------------
jwksctl "{\"slow_ms\":0,\"keys\":[$(key ec-1 ec1),$(key rsa-2 rsa2)]}" \
    >/dev/null
cooldown
req "$(tok RS256 forger.pem forged-13)" >/dev/null
c=$(req "$TRS")
check "rsa-1 rotated out: its tokens are refused after the fetch ($c)" \
    is_error "$c" 401 "kid is not in"
c=$(req "$TES")
check "... while ec-1 goes on ($c)" synced "$c"

# --- the log ----------------------------------------------------------------
leaks() {
	for t in "$TRS" "$TES" "$TADM" "$secret"; do
		grep -l -F -- "$t" "$@" 2>/dev/null
		grep -l -F -- "${t##*.}" "$@" 2>/dev/null
	done
}
check "no token, signature or jwt-secret in the daemon's log" \
    test -z "$(leaks "$tmp/vetsyncd.log")"
# SIGTERM while a request waits on a slow fetch.
jwksctl '{"slow_ms":15000}' >/dev/null
cooldown
req "$(tok RS256 forger.pem forged-15)" >"$tmp/parked" &
parked=$!
sleep 1
kill -TERM $daemon
wait $daemon; rc=$?
daemon=
wait $parked
check "SIGTERM with a request waiting on the JWKS: exit 0 ($rc), the \
request answered 503 or dropped ($(cat "$tmp/parked"))" \
    sh -c "[ $rc -eq 0 ] && grep -q -E '^(503|000)\$' '$tmp/parked'"

# --- a JWKS that is down from the start ---------------------------------------
jwksctl '{"slow_ms":0}' >/dev/null
dead=$(python3 -c 'import socket; s = socket.socket();
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
port2=$(python3 -c 'import socket; s = socket.socket();
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$tmp/state2"
sed -e "s|^listen = .*|listen = 127.0.0.1:$port2|" \
    -e "s|^jwks_url = .*|jwks_url = http://127.0.0.1:$dead/jwks.json|" \
    -e "s|^name = .*|name = jwks2$$|" "$tmp/vetsyncd.conf" >"$tmp/down.conf"
CREDENTIALS_DIRECTORY="$tmp/creds" "${VS_API_DAEMON:-$top_builddir/vetsyncd}" \
    -d -c "$tmp/down.conf" -S "$tmp/control2.sock" -s "$tmp/state2" \
    2>"$tmp/down.log" &
daemon2=$!
api=http://127.0.0.1:$port2
check "JWKS down at start: vetsyncd serves, health ok" wait_for 30 healthy
c=$(req "$(tok HS256 secret -)")
check "JWKS down at start: HS256 with jwt-secret works ($c)" synced "$c"
c=$(req "$TRS")
check "JWKS down at start: RS256 refused, naming the kid ($c)" \
    is_error "$c" 401 "kid is not in"
check "JWKS down at start: the log says why, keeping 0 keys" \
    grep -q 'api.jwks_url: .*keeping the 0 key(s) we have' "$tmp/down.log"
kill -TERM $daemon2
wait $daemon2; rc=$?
daemon2=
check "JWKS down at start: SIGTERM, exit 0 ($rc)" test $rc -eq 0
check "no sanitizer report in the daemons' logs (with VS_API_DAEMON)" \
    sh -c "! grep -E 'runtime error|AddressSanitizer|LeakSanitizer' \
    '$tmp/vetsyncd.log' '$tmp/down.log'"
[ $tap_failed -eq 0 ] || sed "s/^/# /" "$tmp/vetsyncd.log" | tail -40
[ $tap_failed -eq 0 ] || sed "s/^/# /" "$tmp/down.log" | tail -20
