#!/bin/sh
# The database, on a real PostgreSQL: `vetsyncctl migrate` (fresh, twice,
# two at once, a changed file, a Supabase-like schema), row-level security
# in every table for users, anonymous callers and the daemon's roles, the
# hash-chained audit log (`vetsyncctl audit verify` and tail, concurrent
# writers, tampering, deletion, append-only, retention), and vetsyncctl's
# errors when the database cannot be reached.
#
# The script runs itself again inside pg_virtualenv (Debian's
# postgresql-common), which makes a throw-away cluster, as root or not, and
# sets PG* for its superuser.  VS_DB_TEST_INSIDE=1 skips that step and uses
# the server PG* already name (it must be a superuser, on a scratch server).
. "$top_srcdir/tests/integration/lib.sh"

in_pg_virtualenv "$@"

tap_plan 53

tmp=$(mktemp -d /tmp/vetsync-db.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
ctl="$top_builddir/vetsyncctl"
mig="$top_srcdir/migrations"
supw=${PGPASSWORD:-}
dpw="daemon-pw-$$"
A=aaaaaaaa-0000-4000-8000-00000000000a
B=bbbbbbbb-0000-4000-8000-00000000000b
tables="users clinics cases idexx_credentials idexx_sync_sessions
	consultation_sync_status scheduled_discharge_calls idexx_sync_audit_log"
nfiles=$(ls "$mig"/[0-9][0-9][0-9][0-9]_*.sql | wc -l)

# cond "description" 'shell condition': ok if the condition holds
cond() {
	if eval "$2"; then ok "$1"; else not_ok "$1"; fi
}
# has PATTERN: $out matches the grep pattern
has() { printf '%s\n' "$out" | grep -q -- "$1"; }
# num VALUE: VALUE if it is a number, else a number no test expects
num() { case $1 in ''|*[!0-9]*) echo 999999 ;; *) echo "$1" ;; esac; }
# sql DB STATEMENTS: as the superuser; prints rows as a|b
sql() {
	d=$1
	shift
	PGPASSWORD=$supw psql -X -q -At -v ON_ERROR_STOP=1 -d "$d" -c "$*"
}
# as_role DB ROLE SUB STATEMENTS: inside one transaction, switched to ROLE
# with the claims PostgREST would set for user SUB (none if SUB is empty)
as_role() {
	claims=
	[ -n "$3" ] && claims="set local request.jwt.claims =
	    '{\"sub\": \"$3\", \"role\": \"$2\"}';"
	sql "$1" "begin; set local role $2; $claims $4; commit;"
}
# dsql DB STATEMENTS: logged in as vetsync_daemon, with its password
dsql() {
	PGPASSWORD=$dpw psql -X -q -At -v ON_ERROR_STOP=1 -h "$PGHOST" \
	    -U vetsync_daemon -d "$1" -c "$2"
}
newdb() { PGPASSWORD=$supw createdb -T template0 "$1"; }
migrate() { "$ctl" migrate --dir "$mig" --conninfo "dbname=$1" ; }
# vetsyncctl as vetsyncd would connect: configuration + db-password
mkdir -p "$tmp/creds"
chmod 700 "$tmp/creds"
printf '%s\n' "$dpw" > "$tmp/creds/db-password"
chmod 600 "$tmp/creds/db-password"
conf() {
	cat > "$tmp/vetsyncd.conf" <<-CONF
	[database]
	conninfo = host=$PGHOST port=${PGPORT:-5432} dbname=$1 user=vetsync_daemon
	connect_timeout = 5s
	CONF
}
dctl() {
	env -u PGPASSWORD CREDENTIALS_DIRECTORY="$tmp/creds" \
	    "$ctl" -c "$tmp/vetsyncd.conf" "$@"
}

diag "$(PGPASSWORD=$supw psql -X -At -d postgres -c 'select version()')"

# --- migrate ---------------------------------------------------------------
newdb vt
out=$(migrate vt 2>&1)
rc=$?
applied=$(printf '%s\n' "$out" | grep -c '^applying .*done')
cond "fresh migrate applies all $nfiles migrations and names each" \
    '[ $rc -eq 0 ] && [ "$applied" -eq "$nfiles" ] &&
    has "$nfiles applied, 0 applied before"'
[ $rc -eq 0 ] || printf '%s\n' "$out" | sed 's/^/# /'

expect=$(cd "$mig" && sha256sum [0-9][0-9][0-9][0-9]_*.sql |
    awk '{ printf "%d|%s|%s\n", substr($2, 1, 4), $2, $1 }')
got=$(sql vt "select version, name, sha256 from vetsync_schema_migrations
    order by version")
check "version table records every file with its sha256" [ "$got" = "$expect" ]

before=$(sql vt "select version, applied_at from vetsync_schema_migrations")
out=$(migrate vt 2>&1)
rc=$?
after=$(sql vt "select version, applied_at from vetsync_schema_migrations")
cond "second migrate applies nothing and says so" \
    '[ $rc -eq 0 ] && [ "$before" = "$after" ] && has "up to date" &&
    ! has "^applying"'

newdb vt_dry
out=$("$ctl" migrate --dry-run --dir "$mig" --conninfo dbname=vt_dry 2>&1)
rc=$?
n=$(printf '%s\n' "$out" | grep -c '^would apply')
got=$(sql vt_dry "select to_regclass('vetsync_schema_migrations') is null")
cond "--dry-run lists the pending migrations and changes nothing" \
    '[ $rc -eq 0 ] && [ "$n" -eq "$nfiles" ] && [ "$got" = t ]'

newdb vt_race
migrate vt_race > "$tmp/race1" 2>&1 &
p1=$!
migrate vt_race > "$tmp/race2" 2>&1 &
p2=$!
wait $p1
r1=$?
wait $p2
r2=$?
n=$(cat "$tmp/race1" "$tmp/race2" | grep -c '^applying .*done')
got=$(sql vt_race "select count(*), count(distinct version), max(version)
    from vetsync_schema_migrations")
cond "two migrates at once: both succeed, each file applied once" \
    '[ $r1 -eq 0 ] && [ $r2 -eq 0 ] && [ "$n" -eq "$nfiles" ] &&
    [ "$got" = "$nfiles|$nfiles|$nfiles" ]'
[ $r1 -eq 0 ] && [ $r2 -eq 0 ] || sed 's/^/# /' "$tmp/race1" "$tmp/race2"

cp -r "$mig" "$tmp/mig"
printf '%s\n' '-- an edit after release' >> "$tmp/mig/0002_core_tables.sql"
out=$("$ctl" migrate --dir "$tmp/mig" --conninfo dbname=vt 2>&1)
rc=$?
cond "a changed applied migration is refused, naming the file" \
    '[ $rc -eq 1 ] && has "0002_core_tables.sql changed since it was applied"'

cp "$mig/0002_core_tables.sql" "$tmp/mig/"
printf 'create table vetsync_test_extra (id int);\n' > "$tmp/mig/0099_extra.sql"
out=$("$ctl" migrate --dir "$tmp/mig" --conninfo dbname=vt_race 2>&1)
rc=$?
n=$(printf '%s\n' "$out" | grep -c '^applying')
cond "a new migration is applied alone" \
    '[ $rc -eq 0 ] && [ "$n" -eq 1 ] && has "^applying 0099_extra.sql"'

printf 'create table vetsync_test_bad (id int);\nselect 1/0;\n' \
    > "$tmp/mig/0100_bad.sql"
out=$("$ctl" migrate --dir "$tmp/mig" --conninfo dbname=vt_race 2>&1)
rc=$?
got=$(sql vt_race "select to_regclass('vetsync_test_bad') is null")
cond "a failing migration is rolled back whole and named" \
    '[ $rc -eq 1 ] && has "0100_bad.sql failed.*division by zero" &&
    [ "$got" = t ]'

# A Supabase-like database: users and cases exist, with their own columns.
newdb vt_supa
sql vt_supa "create table users (id uuid primary key, email text);
    create table cases (id uuid primary key default gen_random_uuid(),
        user_id uuid references users (id), title text);
    insert into users values ('$A', 'a@example.org');
    insert into cases (user_id, title) values ('$A', 'kept');"
out=$(migrate vt_supa 2>&1)
rc=$?
got=$(sql vt_supa "select u.email, u.idexx_sync_enabled, c.title, c.metadata
    from users u join cases c on c.user_id = u.id")
cond "on existing users and cases: columns added, rows kept" \
    '[ $rc -eq 0 ] && [ "$got" = "a@example.org|f|kept|{}" ]'
[ $rc -eq 0 ] || printf '%s\n' "$out" | sed 's/^/# /'

# --- row-level security ----------------------------------------------------
got=$(sql vt "select count(*) from pg_class c join pg_namespace n
    on n.oid = c.relnamespace where n.nspname = 'public' and c.relkind = 'r'
    and not (c.relrowsecurity and c.relforcerowsecurity)")
n=$(sql vt "select count(*) from pg_tables where schemaname = 'public'")
cond "RLS enabled and forced on every table ($n tables)" \
    '[ "$got" = 0 ] && [ "$n" -ge 11 ]'
got=$(sql vt "select count(*) from pg_tables t where schemaname = 'public'
    and not exists (select 1 from pg_policies p
    where p.tablename = t.tablename and p.schemaname = 'public')")
check "every table has policies" [ "$got" = 0 ]

sql vt "alter role vetsync_daemon login password '$dpw'"
for u in $A $B; do
	sql vt "insert into users (id, clinic_name, idexx_sync_enabled, timezone)
	    values ('$u', 'clinic $u', true, 'Europe/London');
	insert into clinics (id, user_id, name) values ('$u', '$u', 'c');
	insert into cases (user_id, clinic_id, patient_name)
	    values ('$u', '$u', 'Rex');
	insert into idexx_credentials (user_id, encrypted_username,
	    encrypted_password, encryption_key_id) values ('$u', 'x', 'y', 'k1');
	insert into idexx_sync_sessions (user_id, clinic_id, status)
	    values ('$u', '$u', 'completed');
	insert into scheduled_discharge_calls (user_id, consultation_id,
	    scheduled_for, dedup_id) values ('$u', 'c1', now(), 'd-$u');
	insert into consultation_sync_status (consultation_id, user_id,
	    sync_status, discharge_call_id) select 'c1', '$u', 'synced', id
	    from scheduled_discharge_calls where user_id = '$u';
	insert into idexx_sync_audit_log (user_id, action)
	    values ('$u', 'test.rls');"
done

for t in $tables; do
	col=user_id
	[ "$t" = users ] && col=id
	got=$(as_role vt authenticated "$A" "select
	    count($col) filter (where $col = '$A'),
	    count($col) filter (where $col <> '$A') from $t" 2>&1)
	check "authenticated as user A sees A's rows, not B's: $t ($got)" \
	    [ "$got" = "1|0" ]
done

n=0
for t in $tables; do
	col=user_id
	[ "$t" = users ] && col=id
	got=$(as_role vt authenticated "" "select count($col) from $t" 2>&1)
	n=$((n + $(num "$got")))
done
check "authenticated without claims sees no row in any table" [ "$n" = 0 ]

n=0
for t in $tables; do
	as_role vt anon "" "select 1 from $t limit 1" > /dev/null 2>&1 &&
	    n=$((n + 1))
done
check "anon may read no table" [ "$n" = 0 ]

out=$(as_role vt authenticated "$A" "select encrypted_password
    from idexx_credentials" 2>&1)
cond "authenticated cannot read the credential ciphertexts" \
    'has "permission denied"'
out=$(as_role vt authenticated "$A" "insert into consultation_sync_status
    (consultation_id, user_id) values ('c9', '$A')" 2>&1)
cond "authenticated cannot write sync status, even its own" \
    'has "permission denied"'

out=$(dsql vt "select count(*) from idexx_credentials" 2>&1)
cond "the daemon's own role reads nothing without choosing a role" \
    'has "permission denied"'
got=$(dsql vt "begin; set local role vetsync_tenant;
    set local request.jwt.claims = '{\"sub\": \"$A\"}';
    select string_agg(user_id::text, ',') from idexx_credentials; commit" 2>&1)
check "the daemon as tenant A sees A's credentials only" [ "$got" = "$A" ]
got=$(dsql vt "begin; set local role vetsync_tenant; select count(*)
    from idexx_credentials; commit" 2>&1)
check "the daemon as tenant without claims sees nothing" [ "$got" = 0 ]
out=$(dsql vt "begin; set local role vetsync_tenant;
    set local request.jwt.claims = '{\"sub\": \"$A\"}';
    insert into consultation_sync_status (consultation_id, user_id)
    values ('c2', '$B'); commit" 2>&1)
cond "the daemon as tenant A cannot write B's rows" \
    'has "violates row-level security"'
got=$(dsql vt "begin; set local role vetsync_tenant;
    set local request.jwt.claims = '{\"sub\": \"$A\"}';
    with u as (update consultation_sync_status set sync_status = 'failed'
    returning user_id) select count(*) filter (where user_id = '$A'),
    count(*) filter (where user_id <> '$A') from u; rollback" 2>&1)
check "the daemon as tenant A updates A's rows only" [ "$got" = "1|0" ]
got=$(dsql vt "begin; set local role service_role; select count(*)
    from idexx_credentials; commit" 2>&1)
check "the daemon as service_role sees every clinic" [ "$got" = 2 ]

# --- the audit chain -------------------------------------------------------
conf vt
append() {
	{
		echo "set role service_role;"
		i=0
		while [ $i -lt 200 ]; do
			echo "insert into idexx_sync_audit_log
			    (action, actor, metadata) values ('test.concurrent',
			    '$1', '{\"i\": $i, \"s\": \"é\\\\t\"}');"
			i=$((i + 1))
		done
	} | PGPASSWORD=$dpw psql -X -q -v ON_ERROR_STOP=1 -h "$PGHOST" \
	    -U vetsync_daemon -d vt > "$tmp/append-$1" 2>&1
}
append one &
p1=$!
append two &
p2=$!
wait $p1
r1=$?
wait $p2
r2=$?
got=$(sql vt "select count(*), min(seq), max(seq), count(distinct seq)
    from idexx_sync_audit_log")
switches=$(sql vt "select count(*) from (select actor, lag(actor)
    over (order by seq) p from idexx_sync_audit_log) x where actor <> p")
diag "the two writers took turns $switches times"
cond "two sessions append 400 rows to one gap-free chain" \
    '[ $r1 -eq 0 ] && [ $r2 -eq 0 ] && [ "$got" = "402|1|402|402" ]'
out=$(dctl audit verify 2>&1)
rc=$?
cond "audit verify (as vetsyncd, db-password): intact, 402 rows" \
    '[ $rc -eq 0 ] && has "402 rows verified, seq 1 to 402"'
[ $rc -eq 0 ] || printf '%s\n' "$out" | sed 's/^/# /'
out=$(dctl audit tail -n 3 2>&1)
got=$(printf '%s\n' "$out" | cut -d' ' -f1 | tr '\n' ' ')
cond "audit tail -n 3 prints the latest three, oldest first" \
    '[ "$got" = "400 401 402 " ] && has "metadata={\"i\": 199"'

out=$(dsql vt "set role service_role; update idexx_sync_audit_log
    set action = 'x' where seq = 5" 2>&1)
cond "the daemon cannot UPDATE audit rows" 'has "permission denied"'
out=$(dsql vt "set role service_role; set vetsync.audit_retention = on;
    delete from idexx_sync_audit_log where seq = 5" 2>&1)
cond "the daemon cannot DELETE audit rows, even with the retention setting" \
    'has "permission denied"'
n=0
for s in "update idexx_sync_audit_log set action = 'x' where seq = 5" \
    "delete from idexx_sync_audit_log where seq = 5" \
    "truncate idexx_sync_audit_log" \
    "update idexx_sync_audit_chain set seq = 1" \
    "delete from idexx_sync_audit_checkpoints"; do
	sql vt "$s" 2>&1 | grep -q 'ERROR: .* refused' &&
	    n=$((n + 1))
done
cond "the owner's UPDATE, DELETE, TRUNCATE of log, head, checkpoints refused" \
    '[ "$n" -eq 5 ]'
got=$(dsql vt "set role service_role; insert into idexx_sync_audit_log
    (action, created_at) values ('test.backdate', now() - interval '7 years')
    returning created_at > now() - interval '1 minute'" 2>&1)
check "the daemon cannot backdate created_at" [ "$got" = t ]

# As a superuser who disabled the triggers: change, remove, put back rows.
replica() { sql vt "set session_replication_role = replica; $1"; }
take_row() {
	replica "create table saved as select * from idexx_sync_audit_log
	    where seq = $1; delete from idexx_sync_audit_log where seq = $1"
}
put_back() {
	replica "insert into idexx_sync_audit_log select * from saved;
	    drop table saved"
}
replica "update idexx_sync_audit_log set action = 'tampered' where seq = 123"
out=$(dctl audit verify 2>&1)
rc=$?
cond "a changed field: verify names that row, exit 1" \
    '[ $rc -eq 1 ] && has "BROKEN at seq 123 .*do not match its hash" &&
    has "^122 rows before it verified"'
[ $rc -eq 1 ] || printf '%s\n' "$out" | sed 's/^/# /'
replica "update idexx_sync_audit_log set action = 'test.concurrent'
    where seq = 123"
cond "restored, the chain verifies again" "dctl audit verify > /dev/null 2>&1"

take_row 200
out=$(dctl audit verify 2>&1)
rc=$?
cond "a deleted row: verify names the gap after it" \
    '[ $rc -eq 1 ] && has "BROKEN at seq 201 .*expected seq 200"'
put_back
take_row 403
out=$(dctl audit verify 2>&1)
rc=$?
cond "the newest row deleted: the chain head gives it away" \
    '[ $rc -eq 1 ] && has "head is at seq 403 but the last row is seq 402"'
put_back
replica "update idexx_sync_audit_log set prev_hash = repeat('0', 64)
    where seq = 300"
out=$(dctl audit verify 2>&1)
rc=$?
cond "a relinked row: verify names it" \
    '[ $rc -eq 1 ] && has "BROKEN at seq 300 .*prev_hash"'

# --- retention -------------------------------------------------------------
newdb vt_ret
migrate vt_ret > /dev/null 2>&1
ins() {
	sql vt_ret "set vetsync.audit_backdate = on;
	insert into idexx_sync_audit_log (action, created_at)
	    select 'test.retention', now() - interval '$2'
	    from generate_series(1, $1)"
}
ins 10 '7 years'
ins 1 '1 day'
ins 2 '7 years'
ins 5 '1 hour'
hash10=$(sql vt_ret "select hash from idexx_sync_audit_log where seq = 10")
got=$(sql vt_ret "select count(*) from idexx_sync_audit_log
    where created_at < now() - interval '6 years'")
check "the owner may backdate rows (for imports and this test): 12 old" \
    [ "$got" = 12 ]
got=$(dsql vt_ret "set role service_role; select * from vetsync_audit_retain()")
check "retention deletes the old prefix only: 10 rows, through seq 10" \
    [ "$got" = "10|10" ]
got=$(sql vt_ret "select through_seq, through_hash, rows_deleted
    from idexx_sync_audit_checkpoints")
check "a checkpoint records the last deleted row's hash" \
    [ "$got" = "10|$hash10|10" ]
got=$(sql vt_ret "select min(seq), count(*) from idexx_sync_audit_log")
check "old rows after a younger one stay (chain order)" [ "$got" = "11|8" ]
conf vt_ret
out=$(dctl audit verify 2>&1)
rc=$?
cond "verify is intact from the checkpoint" '[ $rc -eq 0 ] &&
    has "8 rows verified, seq 11 to 18, after the retention checkpoint" &&
    has "checkpoint at seq 10$"'
out=$(dsql vt_ret "set role service_role;
    select * from vetsync_audit_retain('1 year')" 2>&1)
cond "retention under 6 years is refused" 'has "less than the 6 years"'
got=$(dsql vt_ret "set role service_role; select * from vetsync_audit_retain()")
cond "retention again deletes nothing; still intact" \
    '[ "$got" = "0|" ] && dctl audit verify > /dev/null'

# --- errors ----------------------------------------------------------------
out=$("$ctl" audit verify --conninfo "host=127.0.0.1 port=1 dbname=x" 2>&1)
rc=$?
cond "database down (TCP): exit 1, names the host and port" \
    '[ $rc -eq 1 ] &&
    has "connection to server at \"127.0.0.1\", port 1 failed"'
out=$("$ctl" migrate --dir "$mig" --conninfo "host=$tmp/nosock dbname=x" 2>&1)
rc=$?
cond "database down (socket): exit 1, names the socket" \
    '[ $rc -eq 1 ] && has "socket \"$tmp/nosock/.s.PGSQL.${PGPORT:-5432}\""'
printf 'wrong-password\n' > "$tmp/creds/db-password"
out=$(dctl audit verify 2>&1)
rc=$?
cond "a wrong db-password: exit 1, said, the password not shown" \
    '[ $rc -eq 1 ] && has "password authentication failed" &&
    ! has wrong-password'
chmod 644 "$tmp/creds/db-password"
out=$(dctl audit verify 2>&1)
rc=$?
cond "a db-password readable by others is refused" \
    '[ $rc -eq 1 ] && has "db-password"'
"$ctl" audit > /dev/null 2>&1
r1=$?
"$ctl" migrate --bogus > /dev/null 2>&1
r2=$?
"$ctl" credentials bogus > /dev/null 2>&1
r3=$?
"$ctl" keys rotate > /dev/null 2>&1
r4=$?
cond "usage errors exit 2 (audit, migrate, credentials, keys)" \
    '[ $r1 -eq 2 ] && [ $r2 -eq 2 ] && [ $r3 -eq 2 ] && [ $r4 -eq 2 ]'

[ "$tap_n" = 53 ] || diag "ran $tap_n cases, planned 53"
[ "$tap_failed" = 0 ]
