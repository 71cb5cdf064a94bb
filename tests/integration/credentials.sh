#!/bin/sh
# Clinic credentials end to end, on a real PostgreSQL with the real
# vetsyncd, sandboxed workers and tests/idexx_sim: `vetsyncctl credentials
# set` stores only what a validation job accepted, encrypted in the PRD's
# format; syncs decrypt them (audited); a tampered row, a missing key and a
# row written by Node's crypto fail cleanly; `credentials revoke` kills the
# running worker through LISTEN/NOTIFY within 1 s and holds the clinic;
# `keys rotate` re-encrypts every row while syncs run, can be interrupted
# and resumed; bad control requests (not JSON, fields missing or wrong,
# oversized) and an unreachable vetsyncd are refused, naming what was
# wrong; and the password never shows in a log, the spool, the daemon's
# environment or a table.
#
# Runs itself again inside pg_virtualenv, as tests/integration/db.sh does.
. "$top_srcdir/tests/integration/lib.sh"

in_pg_virtualenv "$@"

N=53
skip_all() { skip_plan $N "credentials case" "$1"; }
[ "$(id -u)" -eq 0 ] || skip_all "needs root (worker identity)"
grep -q '^#define VS_SANITIZERS 1' "$top_builddir/config.h" &&
    skip_all "sanitizer build: the worker policy refuses ASan"
for tool in jq curl psql; do
	command -v $tool >/dev/null 2>&1 || skip_all "$tool is not installed"
done
sim=$top_builddir/tests/idexx_sim
tool=$top_builddir/tests/credcrypt_tool
[ -x "$sim" ] && [ -x "$tool" ] || skip_all "test programs not built"

tap_plan $N

tz=Europe/London
U=22222222-3333-4444-8555-666666666601	# sync enabled: active
V=22222222-3333-4444-8555-666666666602	# not enabled: validated
W=22222222-3333-4444-8555-666666666603	# written by Node
X=22222222-3333-4444-8555-666666666604	# a key that is missing
db=vetsync_creds
supw=${PGPASSWORD:-}
dpw="daemon-pw-$$"
k1="master-secret-one-$$"
k2="master-secret-two-$$"
tmp=$(mktemp -d /tmp/vetsync-creds.XXXXXX)
chmod 755 "$tmp"
simpid=
daemon=
cleanup() {
	[ -n "$daemon" ] && kill -KILL "$daemon" 2>/dev/null
	[ -n "$simpid" ] && kill "$simpid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

sql() { PGPASSWORD=$supw psql -X -q -At -v ON_ERROR_STOP=1 -d $db -c "$*"; }
num() { case $1 in ''|*[!0-9]*) echo -1 ;; *) echo "$1" ;; esac; }
now_ms() { date +%s%3N; }

PGPASSWORD=$supw createdb -T template0 $db
"$top_builddir/vetsyncctl" migrate --dir "$top_srcdir/migrations" \
    --conninfo "dbname=$db" >"$tmp/migrate.log" 2>&1 ||
    sed 's/^/# /' "$tmp/migrate.log"
sql "alter role vetsync_daemon login password '$dpw'"
sql "insert into users (id, clinic_name, idexx_sync_enabled, timezone) values
    ('$U', 'One', true, '$tz'), ('$V', 'Two', false, '$tz'),
    ('$W', 'Three', true, '$tz'), ('$X', 'Four', true, '$tz')"

"$sim" --port 0 --port-file "$tmp/port" --profile neo --timezone $tz \
    --clinics 4 --consultations 10 --latency-ms 2 >"$tmp/sim.log" 2>&1 &
simpid=$!
wait_for 10 test -s "$tmp/port" || diag "simulator did not start"
url=http://127.0.0.1:$(cat "$tmp/port")
simctl() { curl -s -X POST --data "$1" "$url/__sim/control" >/dev/null; }

mkdir -p "$tmp/state" "$tmp/creds"
chmod 700 "$tmp/creds"
printf '%s\n' "$dpw" >"$tmp/creds/db-password"
printf '%s\n' "$k1" >"$tmp/creds/encryption-key-k1"
printf '%s\n' "$k2" >"$tmp/creds/encryption-key-k2"
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
[instance]
name = cr$$
CONF
CREDENTIALS_DIRECTORY="$tmp/creds" "$top_builddir/vetsyncd" -d \
    -c "$tmp/vetsyncd.conf" -S "$tmp/control.sock" -s "$tmp/state" \
    2>"$tmp/vetsyncd.log" &
daemon=$!
wait_for 10 test -S "$tmp/control.sock" || diag "vetsyncd did not start"
ctl() { CREDENTIALS_DIRECTORY="$tmp/creds" "$top_builddir/vetsyncctl" \
    -c "$tmp/vetsyncd.conf" -S "$tmp/control.sock" "$@"; }
dbctl() { ctl "$@" --conninfo "dbname=$db"; }
cred() { sql "select $2 from idexx_credentials where user_id = '$1'"; }
sessions() {
	num "$(sql "select count(*) from idexx_sync_sessions
	    where user_id = '$1' and status = '$2'")"
}
sessions_ge() { [ "$(sessions "$1" completed)" -ge "$2" ]; }
dec() { CREDENTIALS_DIRECTORY="$tmp/creds" "$tool" decrypt 2>/dev/null; }

# --- set -------------------------------------------------------------------
out=$(echo password-1 | ctl credentials set --user $U \
    --username vet1@clinic1.test --company-id c1 2>&1); rc=$?
check "set: valid credentials are stored (exit $rc: $out)" \
    test $rc -eq 0 -a -n "$(echo "$out" | grep 'credentials valid')"
row=$(cred $U "state || ' ' || validation_status || ' ' ||
    (last_validated_at is not null) || ' ' || encryption_key_id")
check "set: the row is active, valid, dated, under k1 ($row)" \
    test "$row" = "active valid true k1"
ct=$(cred $U encrypted_password)
check "set: the ciphertext is the PRD's EncryptedData JSON" sh -c "
    echo '$ct' | jq -e '(.encrypted | test(\"^[0-9a-f]+\$\")) and
    (.iv | test(\"^[0-9a-f]{32}\$\")) and (.authTag | test(\"^[0-9a-f]{32}\$\"))
    and .keyId == \"k1\"' >/dev/null"
got=$(echo "$ct" | dec)
check "set: it decrypts to the password ($got)" test "$got" = password-1
if command -v node >/dev/null 2>&1; then
	got=$(echo "$ct" | ENCRYPTION_KEY_k1="$k1" node \
	    "$top_srcdir/tests/crypto/aes-node.js" decrypt)
	check "set: the product's TypeScript code (Node) decrypts it ($got)" \
	    test "$got" = password-1
else
	skip "set: Node decrypts it" "node is not installed"
fi
out=$(echo password-2 | ctl credentials set --user $V \
    --username vet2@clinic2.test 2>&1)
check "set: a user without sync enabled is 'validated' ($(cred $V state))" \
    test "$(cred $V state)" = validated
sql "update users set idexx_sync_enabled = true where id = '$V'"
a=$(cred $V state)
sql "update users set idexx_sync_enabled = false where id = '$V'"
check "state follows the user's sync switch (on: $a, off: $(cred $V state))" \
    test "$a" = active -a "$(cred $V state)" = validated
before=$(cred $U "encrypted_password || updated_at")
out=$(echo wrong-password | ctl credentials set --user $U \
    --username vet1@clinic1.test --json 2>/dev/null); rc=$?
check "set: IDEXX refuses a wrong password: exit 1, 'invalid' (exit $rc)" \
    test $rc -eq 1 -a "$(echo "$out" | jq -r '.validationStatus')" = invalid
check "set: the PRD's response shape (success false, validationStatus)" \
    test "$(echo "$out" | jq -r '.success')" = false
check "set: nothing of the refused credentials is stored" \
    test "$(cred $U "encrypted_password || updated_at")" = "$before"
ctl credentials set --user $U --username a --password x </dev/null \
    >/dev/null 2>&1; rc=$?
check "set: no --password option: a password never comes from argv ($rc)" \
    test $rc -eq 2
ctl credentials set --user $U --username a </dev/null >/dev/null 2>&1; rc=$?
check "set: no password on stdin is a usage error ($rc)" test $rc -eq 2
ctl credentials set --user not-a-uuid </dev/null >/dev/null 2>&1; rc=$?
check "set: a user id that is not a uuid is refused ($rc)" test $rc -eq 2

# --- bad requests ----------------------------------------------------------
before=$(cred $U "encrypted_password || updated_at")
out=$(echo password-1 | CREDENTIALS_DIRECTORY="$tmp/creds" \
    "$top_builddir/vetsyncctl" -c "$tmp/vetsyncd.conf" \
    -S "$tmp/nobody.sock" credentials set --user $U \
    --username vet1@clinic1.test 2>&1); rc=$?
out=$(echo "$out" | tail -1)
check "set: vetsyncd not there: exit 3 naming its socket ($rc: $out)" \
    sh -c "test $rc -eq 3 && echo '$out' | grep -q nobody.sock"
# raw LINE: the control socket's answer to LINE, as vetsyncctl would send
# it ("closed" when the connection ends without one)
raw() {
	node -e '
const s = require("net").connect(process.argv[1]);
let out = "";
s.on("connect", () => s.write(process.argv[2]));
s.on("data", (d) => { out += d; });
s.on("close", () => process.stdout.write(out === "" ? "closed" : out));
s.on("error", (e) => process.stdout.write("error " + e.code));
' "$tmp/control.sock" "$1"
}
# refused LINE TEXT: answered ok false, with an error that says TEXT
refused() {
	a=$(raw "$1")
	echo "$a" | jq -e --arg t "$2" '.ok == false and
	    (.error | contains($t))' >/dev/null || { diag "answer: $a"; return 1; }
}
rs=raw-secret-$$
if command -v node >/dev/null 2>&1; then
	check "control: a line that is not JSON is refused, named" \
	    refused 'password=hunter2
' "not a JSON object"
	# req CLINIC MORE: a credentials-set line with MORE after username
	req() {
		printf '{"cmd":"credentials-set","clinic":"%s","username":"a"%s}\n' \
		    "$1" "$2"
	}
	check "control: credentials-set without a password is refused" \
	    refused "$(req $U '')
" "needs 'clinic', 'username' and 'password'"
	check "control: a company_id that is not a string is refused" \
	    refused "$(req $U ",\"password\":\"$rs\",\"company_id\":7")
" "'company_id' is not a string"
	check "control: a clinic that is not a user id is refused" \
	    refused "$(req ../$U ",\"password\":\"$rs\"")
" "a clinic is a user id"
	check "control: a password of two lines is refused" \
	    refused "$(req $U ",\"password\":\"$rs\\nx\"")
" "single lines"
	big=$(head -c 5000 /dev/zero | tr '\0' x)
	a=$(raw "$big")
	check "control: a request over 4096 bytes ends the connection ($a)" \
	    sh -c "test '$a' = closed && grep -q 'request over 4096 bytes' \
	    '$tmp/vetsyncd.log'"
else
	for c in 1 2 3 4 5 6; do
		skip "control: bad request $c" "node is not installed"
	done
fi
check "after them vetsyncd still answers (status)" \
    sh -c "ctl() { $(command -v env) CREDENTIALS_DIRECTORY='$tmp/creds' \
    '$top_builddir/vetsyncctl' -c '$tmp/vetsyncd.conf' \
    -S '$tmp/control.sock' \"\$@\"; }; ctl status >/dev/null"
check "and the stored credentials are as they were, no secret logged" \
    sh -c "test '$(cred $U "encrypted_password || updated_at")' = '$before' &&
    ! grep -q '$rs' '$tmp/vetsyncd.log'"

# --- syncs read them -------------------------------------------------------
ctl sync --user $U >/dev/null
check "sync: a clinic syncs with its stored credentials" \
    wait_for 60 sessions_ge $U 1
# audited ACTION USER FILTER: rows of the audit log (once the writer is done)
audited() {
	num "$(sql "select count(*) from idexx_sync_audit_log
	    where action = '$1' and user_id = '$2' and $3")"
}
audited_ge() { [ "$(audited "$1" "$2" "$3")" -ge 1 ]; }
check "sync: the decryption is audited (purpose, source database)" \
    wait_for 20 audited_ge credential_access $U "metadata->>'purpose' =
    'sync job' and metadata->>'source' = 'database'"

# A row the product's TypeScript code wrote: Node encrypts, we read.
if command -v node >/dev/null 2>&1; then
	nu=$(printf vet3@clinic3.test | ENCRYPTION_KEY_k2="$k2" node \
	    "$top_srcdir/tests/crypto/aes-node.js" encrypt k2)
	np=$(printf password-3 | ENCRYPTION_KEY_k2="$k2" node \
	    "$top_srcdir/tests/crypto/aes-node.js" encrypt k2)
	sql "insert into idexx_credentials (user_id, encrypted_username,
	    encrypted_password, encryption_key_id, state, validation_status)
	    values ('$W', '$nu', '$np', 'k2', 'active', 'valid')"
	ctl sync --user $W >/dev/null
	check "sync: a row Node's crypto wrote decrypts and syncs" \
	    wait_for 60 sessions_ge $W 1
else
	skip "sync: a row Node's crypto wrote" "node is not installed"
fi

# A key that is not there: a clear failure, no worker.
mu=$(printf vet4@clinic4.test | "$tool" encrypt k9 2>/dev/null ||
    echo '{"encrypted":"00","iv":"00000000000000000000000000000000","authTag":"00000000000000000000000000000000","keyId":"k9"}')
sql "insert into idexx_credentials (user_id, encrypted_username,
    encrypted_password, encryption_key_id, state, validation_status)
    values ('$X', '$mu', '$mu', 'k9', 'active', 'valid')"
ctl sync --user $X >/dev/null
check "sync: a missing master key fails the job, named, no worker" \
    wait_for 20 grep -q "clinic=$X.*cannot read its credentials.*k9" \
    "$tmp/vetsyncd.log"

# A tampered tag: authentication fails, nothing decrypted, audited.
sql "update idexx_credentials set encrypted_password = jsonb_set(
    encrypted_password::jsonb, '{authTag}',
    to_jsonb('00' || substr(encrypted_password::jsonb->>'authTag', 3)))::text
    where user_id = '$V'"
ctl sync --user $V >/dev/null
check "sync: a tampered ciphertext fails: it does not authenticate" \
    wait_for 20 grep -q "clinic=$V.*cannot read its credentials" \
    "$tmp/vetsyncd.log"
check "sync: the failed decryption is audited (ok false)" \
    wait_for 20 audited_ge credential_access $V "metadata->>'ok' = 'false'"
echo password-2 | ctl credentials set --user $V \
    --username vet2@clinic2.test >/dev/null 2>&1
check "set again repairs it (validated, decrypts)" \
    test "$(cred $V encrypted_password | dec)" = password-2

# --- revocation ------------------------------------------------------------
simctl '{"latency_ms": 1500}'
ctl sync --user $U >/dev/null
ctl sync --user $U --kind schedule >/dev/null
worker_pid() {
	ctl status --json | jq -r --arg c $U \
	    '.workers[] | select(.clinic == $c) | .pid' | head -1
}
wpid=
has_worker() { wpid=$(worker_pid); [ -n "$wpid" ] && [ "$wpid" -gt 0 ]; }
wait_for 20 has_worker
check "revoke: the clinic's worker runs (pid $wpid)" test -n "$wpid"
t0=$(now_ms)
dbctl credentials revoke --user $U >"$tmp/revoke.out" 2>&1; rc=$?
gone() { ! kill -0 "$wpid" 2>/dev/null; }
wait_for 5 gone
t1=$(now_ms)
check "revoke: exit 0 ($rc: $(cat "$tmp/revoke.out"))" test $rc -eq 0
check "revoke: the worker is gone within 1 s ($((t1 - t0)) ms)" \
    test $((t1 - t0)) -lt 1000
row=$(cred $U "state || ' ' || (encrypted_password is null) || ' ' ||
    (encrypted_username is null) || ' ' || (revoked_at is not null)")
check "revoke: ciphertexts deleted, row marked revoked ($row)" \
    test "$row" = "revoked true true true"
st=$(ctl status --json | jq -r --arg c $U \
    '.clinics[] | select(.clinic == $c) | .state')
check "revoke: the clinic is held, its queued job dropped ($st)" \
    test "$st" = held
check "revoke: audited by vetsyncctl and by vetsyncd, worker killed" \
    wait_for 20 sh -c "[ \$(psql -X -At -d $db -c \"select count(*) from
    idexx_sync_audit_log where action = 'credentials_revoked' and
    user_id = '$U' and (actor = 'vetsyncctl' or
    metadata->>'worker_killed' = 'true')\") -eq 2 ]"
simctl '{"latency_ms": 2}'
n0=$(sessions $U completed)
ctl sync --user $U >/dev/null
sleep 1
check "revoke: a manual sync of a revoked clinic runs nothing" \
    test "$(sessions $U completed)" -eq "$n0" -a -z "$(worker_pid)"
echo password-1 | ctl credentials set --user $U \
    --username vet1@clinic1.test --company-id c1 >/dev/null 2>&1; rc=$?
check "set after revoke: stored and active again ($rc, $(cred $U state))" \
    test $rc -eq 0 -a "$(cred $U state)" = active
ctl sync --user $U >/dev/null
check "set after revoke: the clinic syncs again" \
    wait_for 60 sessions_ge $U $((n0 + 1))

# --- rotation --------------------------------------------------------------
sql "delete from idexx_credentials where user_id = '$X'"
# 300 more rows under k1 (one ciphertext, as good as any), then rotate to k2
# in batches of 10 while clinics sync; interrupt, resume, finish.
c1=$(printf 'user-x' | CREDENTIALS_DIRECTORY="$tmp/creds" "$tool" encrypt k1)
sql "insert into users (id, idexx_sync_enabled)
    select ('33333333-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid, true
    from generate_series(1, 300) g;
    insert into idexx_credentials (user_id, encrypted_username,
    encrypted_password, encryption_key_id, state, validation_status)
    select ('33333333-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid,
    '$c1', '$c1', 'k1', 'active', 'valid' from generate_series(1, 300) g"
dbctl keys status >"$tmp/status.before" 2>&1
check "keys status: k1 in use by 302 rows, present, new writes" \
    grep -q 'key k1 .*302 row(s)  present here, new writes' "$tmp/status.before"
nfail0=$(sessions $U failed)
nu0=$(sessions $U completed)
nv0=$(sessions $V completed)
CREDENTIALS_DIRECTORY="$tmp/creds" "$top_builddir/vetsyncctl" \
    -c "$tmp/vetsyncd.conf" keys rotate --to k2 --batch 10 --pause 200 \
    --conninfo "dbname=$db" >"$tmp/rot1.out" 2>"$tmp/rot1.err" &
rot=$!
wait_for 20 grep -q 'rotated$' "$tmp/rot1.err"
kill -TERM $rot 2>/dev/null
wait $rot; rc=$?
left=$(num "$(sql "select count(*) from idexx_credentials
    where encryption_key_id = 'k1' and state <> 'revoked'")")
check "rotate: interrupted part-way, exit 1, says so ($rc, $left left)" \
    test $rc -eq 1 -a "$left" -gt 0 -a "$left" -lt 302
grep -q 'interrupted' "$tmp/rot1.out" || diag "$(cat "$tmp/rot1.out")"
ctl sync --user $U >/dev/null
ctl sync --user $V >/dev/null
dbctl keys rotate --to k2 --batch 10 >"$tmp/rot2.out" 2>"$tmp/rot2.err"; rc=$?
check "rotate: run again, it finishes (exit $rc: $(cat "$tmp/rot2.out"))" \
    test $rc -eq 0
check "rotate: it showed its progress" grep -q '/[0-9]* rotated' "$tmp/rot2.err"
left=$(sql "select count(*) from idexx_credentials where state <> 'revoked'
    and (encryption_key_id <> 'k2' or encrypted_password::jsonb->>'keyId' <> 'k2')")
check "rotate: no row is left on the old key ($left)" test "$left" = 0
dbctl keys status >"$tmp/status.after" 2>&1
check "keys status: only k2 holds rows now" sh -c "
    ! grep -q 'key k1 .*[1-9][0-9]* row' '$tmp/status.after' &&
    grep -q 'key k2 ' '$tmp/status.after'"
more_done() { [ "$(sessions $U completed)" -gt "$nu0" ]; }
wait_for 60 more_done
check "rotate: syncs running meanwhile completed, none failed" \
    test "$(sessions $U completed)" -gt "$nu0" -a \
    "$(sessions $U failed)" -eq "$nfail0"
got=$(cred $U encrypted_password | dec)
check "rotate: the rotated row decrypts under k2 ($got)" test "$got" = password-1
n=$(num "$(sql "select count(*) from idexx_sync_audit_log
    where action = 'credential_access' and metadata->>'purpose' = 'rotation'")")
check "rotate: every row's decryption is audited ($n rows)" test "$n" -ge 302
n=$(num "$(sql "select count(*) from idexx_sync_audit_log
    where action = 'keys_rotated'")")
check "rotate: each run is audited ($n)" test "$n" -eq 2
ctl sync --user $V >/dev/null
check "sync after rotation: works under the new key" \
    wait_for 60 sessions_ge $V $((nv0 + 1))

# --- no secret anywhere ----------------------------------------------------
leaks() {
	for p in password-1 password-2 password-3 wrong-password "$k1" "$k2"; do
		grep -l -F -- "$p" "$@" 2>/dev/null
	done
}
check "the passwords and keys are in no log and not in the spool" \
    test -z "$(leaks "$tmp/vetsyncd.log" "$tmp/state/audit.spool" \
    "$tmp/sim.log")"
check "nor in the daemon's environment" \
    test -z "$(tr '\0' '\n' </proc/$daemon/environ | grep -F -e password-1 \
    -e "$k1")"
sql "select t::text from idexx_credentials t union all
    select t::text from idexx_sync_audit_log t union all
    select t::text from idexx_sync_sessions t" >"$tmp/tables"
check "nor in any table" test -z "$(leaks "$tmp/tables")"
check "vetsyncd is still up" kill -0 $daemon
