#!/bin/sh
# The audit log's writer on a real PostgreSQL, end to end: vetsyncd spools
# every audit record and drains the spool into the hash-chained
# idexx_sync_audit_log as vetsync_daemon.  Checks the rows of a real sync
# (real sandboxed worker, tests/idexx_sim) and their fields, that
# `vetsyncctl audit verify` passes on what the writer wrote, a database
# stopped while records are produced (spooled, then replayed in order:
# none lost, none doubled), a crash after the database committed but
# before the cursor moved (replayed, not doubled), vetsyncd killed with
# SIGKILL while a batch is in flight, a transaction the database refuses
# (retried, said once), the spool's limit and a full disk under it (each
# refused loudly, once; the earlier records intact and written later).
#
# Runs itself again inside pg_virtualenv, as tests/integration/db.sh does.
. "$top_srcdir/tests/integration/lib.sh"

in_pg_virtualenv "$@"

N=41
skip_all() { skip_plan $N "audit case" "$1"; }
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
U=11111111-2222-4333-8444-555555555511
db=vetsync_audit
supw=${PGPASSWORD:-}
dpw="daemon-pw-$$"
tmp=$(mktemp -d /tmp/vetsync-audit.XXXXXX)
chmod 755 "$tmp"
simpid=
daemon=
cleanup() {
	[ -n "$daemon" ] && kill -KILL "$daemon" 2>/dev/null
	[ -n "$simpid" ] && kill "$simpid" 2>/dev/null
	pg_ctlcluster "${PGVERSION:-15}" regress start >/dev/null 2>&1
	rm -rf "$tmp"
}
trap cleanup EXIT

sql() { PGPASSWORD=$supw psql -X -q -At -v ON_ERROR_STOP=1 -d $db -c "$*"; }
num() { case $1 in ''|*[!0-9]*) echo -1 ;; *) echo "$1" ;; esac; }
pgstop() { pg_ctlcluster "${PGVERSION:-15}" regress stop; }
pgstart() { pg_ctlcluster "${PGVERSION:-15}" regress start; }

PGPASSWORD=$supw createdb -T template0 $db
"$top_builddir/vetsyncctl" migrate --dir "$top_srcdir/migrations" \
    --conninfo "dbname=$db" >"$tmp/migrate.log" 2>&1 ||
    sed 's/^/# /' "$tmp/migrate.log"
sql "alter role vetsync_daemon login password '$dpw'"
sql "insert into users (id, clinic_name, idexx_sync_enabled, timezone)
    values ('$U', 'Clinic One', true, '$tz')"

"$sim" --port 0 --port-file "$tmp/port" --profile neo --timezone $tz \
    --clinics 1 --consultations 5 --latency-ms 1 >"$tmp/sim.log" 2>&1 &
simpid=$!
wait_for 10 test -s "$tmp/port" || diag "simulator did not start"
url=http://127.0.0.1:$(cat "$tmp/port")

mkdir -p "$tmp/state" "$tmp/creds"
chmod 700 "$tmp/creds"
printf 'vet1@clinic1.test\npassword-1\nc1\n' >"$tmp/creds/idexx-$U"
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
name = au$$
CONF
spool=$tmp/state/audit.spool
cursor=$spool.cursor
log=$tmp/vetsyncd.log
# start [ENV=VALUE...]: vetsyncd in the background, logging to $log
start() {
	env CREDENTIALS_DIRECTORY="$tmp/creds" "$@" "$top_builddir/vetsyncd" \
	    -d -c "$tmp/vetsyncd.conf" -S "$tmp/control.sock" -s "$tmp/state" \
	    2>>"$log" &
	daemon=$!
	wait_for 10 test -S "$tmp/control.sock" || diag "vetsyncd did not start"
}
stop() {
	kill -TERM "$daemon" 2>/dev/null
	wait "$daemon" 2>/dev/null
	daemon=
	rm -f "$tmp/control.sock"
}
ctl() { "$top_builddir/vetsyncctl" -c "$tmp/vetsyncd.conf" \
    -S "$tmp/control.sock" "$@"; }
epoch() { jq -r .epoch "$cursor"; }
# rows WHERE: how many of the writer's rows match
rows() {
	num "$(sql "select count(*) from idexx_sync_audit_log
	    where metadata ? 'spool_key' and ($1)")"
}
rows_ge() { [ "$(rows "$1")" -ge "$2" ]; }
spool_empty() { [ ! -s "$spool" ]; }
# keys_once: every key at most once, and table order = spool order
keys_once() {
	d=$(num "$(sql "select count(*) - count(distinct metadata->>'spool_key')
	    from idexx_sync_audit_log where metadata ? 'spool_key'")")
	o=$(num "$(sql "select count(*) from (select (metadata->>'seq')::bigint
	    - lag((metadata->>'seq')::bigint) over (order by seq) as step
	    from idexx_sync_audit_log
	    where metadata->>'spool_key' like '$(epoch)/%') s
	    where step <= 0")")
	[ "$d" -eq 0 ] && [ "$o" -eq 0 ] ||
	    { diag "$d key(s) doubled, $o row(s) out of spool order"
	    return 1; }
}
# all_in FILE: every seq listed in FILE is in the table, once
all_in() {
	sort "$1" >"$tmp/want"
	sql "select metadata->>'seq' from idexx_sync_audit_log
	    where metadata->>'spool_key' like '$(epoch)/%'" | sort >"$tmp/got"
	m=$(comm -23 "$tmp/want" "$tmp/got" | wc -l)
	[ "$m" -eq 0 ] && [ -s "$tmp/want" ] ||
	    { diag "$m of $(wc -l <"$tmp/want") spooled record(s) missing"
	    return 1; }
}
verify() {
	out=$("$top_builddir/vetsyncctl" audit verify \
	    --conninfo "dbname=$db" 2>&1)
	echo "$out" | grep -q '^audit chain intact' ||
	    { diag "$out"; return 1; }
}
# reloads N: N configuration reloads, each an audit record; returns once
# the last is spooled
reloads() {
	for i in $(seq "$1"); do
		kill -HUP "$daemon"
		sleep 0.01
	done
	settled=-1
	while [ "$settled" != "$(stat -c %s "$spool")" ]; do
		settled=$(stat -c %s "$spool")
		sleep 0.3
	done
}

start
check "supervisor_started reaches the table" \
    wait_for 20 rows_ge "action = 'supervisor_started'" 1
row=$(sql "select actor || ' ' || status || ' ' || length(policy_hash) || ' '
    || (user_id is null) || ' ' || (metadata->>'instance')
    from idexx_sync_audit_log where action = 'supervisor_started'")
check "its actor, status, policy hash and instance ($row)" \
    test "$row" = "vetsyncd ok 64 true au$$"

# A real sync: credential access, login, sync start, worker exit.
ctl sync --user $U >/dev/null
check "a sync's worker_exit reaches the table" \
    wait_for 60 rows_ge "action = 'worker_exit' and clinic_id = '$U'" 1
got=$(sql "select string_agg(action, ',' order by seq)
    from idexx_sync_audit_log where clinic_id = '$U'")
for a in credential_access sync_started LOGIN_OK worker_exit; do
	case ",$got," in
	*,$a,*) ok "clinic row '$a' written" ;;
	*) not_ok "clinic row '$a' written ($got)" ;;
	esac
done
job=$(sql "select metadata->>'job' from idexx_sync_audit_log
    where action = 'sync_started' and clinic_id = '$U'")
row=$(sql "select user_id || ' ' || session_id || ' ' || status || ' '
    || (policy_hash = (select policy_hash from idexx_sync_audit_log
    where action = 'supervisor_started'))
    || ' ' || (error_details is null)
    from idexx_sync_audit_log where action = 'worker_exit'
    and clinic_id = '$U'")
check "worker_exit: user, session, status, policy hash ($row)" \
    test "$row" = "$U job-$job ok true true"
sess=$(num "$(sql "select count(distinct session_id) from idexx_sync_audit_log
    where clinic_id = '$U' and action <> 'credential_access'")")
check "the job's rows share its session ($sess)" test "$sess" -eq 1
check "vetsyncctl audit verify passes on the writer's rows" verify
# vetsyncctl's door: auditlog_append() as the daemon's role.
ta=$top_builddir/tests/unit/test_audit_append
if [ -x "$ta" ]; then
	VETSYNC_TEST_CONNINFO="host=$PGHOST port=${PGPORT:-5432} dbname=$db
	    user=vetsync_daemon password=$dpw" "$ta" >"$tmp/append.out" 2>&1
	rc=$?
	grep -q SKIP "$tmp/append.out" && rc=77
	[ $rc -eq 0 ] || sed 's/^/# /' "$tmp/append.out"
	check "auditlog_append(): 3 cases on the chain ($rc)" test $rc -eq 0
else
	skip "auditlog_append(): 3 cases on the chain" "cmocka is not installed"
fi
check "the spool is emptied once the database has it all" \
    wait_for 10 spool_empty
c=$(jq -r .seq "$cursor")
m=$(sql "select max((metadata->>'seq')::bigint) from idexx_sync_audit_log
    where metadata->>'spool_key' like '$(epoch)/%'")
check "the cursor is at the last seq written ($c, $m)" test "$c" = "$m"

# The database refuses the writer's transaction: retried, said once.
sql "revoke insert on idexx_sync_audit_log from service_role"
reloads 3
jq -r .seq "$spool" >"$tmp/refused.seqs"
wait_for 10 grep -q 'alert: audit: the database refused' "$log"
sleep 3.5	# retries at 1, 2 (and 4) s
nr=$(grep -c 'alert: audit: the database refused' "$log")
check "a refused batch stays spooled, said once while retried ($nr)" \
    test "$nr" -eq 1 -a -s "$spool"
sql "grant insert on idexx_sync_audit_log to service_role"
check "once allowed again, the spool drains" wait_for 70 spool_empty
check "the refused records are written, in order, once" \
    eval 'all_in "$tmp/refused.seqs" && keys_once'

# The database is stopped while records are produced.
pgstop
ctl sync --user $U >/dev/null
jobs_done() {
	[ "$(grep -c "clinic=$U job=[0-9]*: reconcile_notes done" "$log")" \
	    -ge "$1" ]
}
wait_for 60 jobs_done 2 || diag "the second sync did not end"
reloads 50
n=$(wc -l <"$spool")
jq -r .seq "$spool" >"$tmp/down.seqs"
cp "$spool" "$tmp/spool.saved"
cp "$cursor" "$tmp/cursor.saved"
check "with the database down, the records wait in the spool ($n)" \
    test "$n" -ge 20
pgstart
check "after the restart the spool drains" wait_for 60 spool_empty
check "every spooled record is in the table" all_in "$tmp/down.seqs"
check "none doubled, all in spool order" keys_once

# A crash after the COMMIT, before the cursor moved: the same records are
# replayed on the next start, and skipped by their keys.
kill -KILL "$daemon"
wait "$daemon" 2>/dev/null
rm -f "$tmp/control.sock"
before=$(rows true)
cp "$tmp/spool.saved" "$spool"
cp "$tmp/cursor.saved" "$cursor"
start
wait_for 30 rows_ge true $((before + 1))
wait_for 30 spool_empty
after=$(rows true)
check "replayed after a crash: no record doubled" keys_once
check "only the new start's record was added ($before -> $after)" \
    test "$after" -eq $((before + 1))

# SIGKILL while a batch is in flight: the second batch sleeps in the
# database (so the first is committed and confirmed), vetsyncd dies, the
# database still commits what it was sent; the restarted vetsyncd replays
# it and must not double a row.
# The row that sleeps is the first of the second batch, after the chain
# head is taken: the restarted writer waits for it, then finds its keys.
stop
S=$(jq -r .seq "$cursor")
sql "create sequence vs_sleep_once;
    create function vs_sleep_once() returns trigger language plpgsql
    security definer as \$f\$ begin
	if new.metadata->>'spool_key' like '$(epoch)/%' then
		if (new.metadata->>'seq')::bigint >= $((S + 201)) then
			if nextval('vs_sleep_once') = 1 then
				perform pg_sleep(3);
			end if;
		end if;
	end if;
	return new;
    end \$f\$;
    create trigger vs_sleep_once before insert on idexx_sync_audit_log
    for each row execute function vs_sleep_once()"
pgstop
start
reloads 350
jq -r .seq "$spool" >"$tmp/kill.seqs"
nk=$(wc -l <"$tmp/kill.seqs")
[ "$nk" -gt 200 ] || diag "only $nk records spooled: one batch"
pgstart
sleeping() {
	[ "$(sql "select count(*) from pg_stat_activity where
	    application_name = 'vetsyncd' and wait_event = 'PgSleep'")" -ge 1 ]
}
if wait_for 60 sleeping; then
	ok "a batch is in flight ($nk records spooled)"
else
	not_ok "a batch is in flight ($nk records spooled)"
fi
kill -KILL "$daemon"
wait "$daemon" 2>/dev/null
daemon=
rm -f "$tmp/control.sock"
start
check "restarted after SIGKILL: the spool drains" wait_for 60 spool_empty
sql "drop trigger vs_sleep_once on idexx_sync_audit_log"
check "after SIGKILL: every record is in the table" all_in "$tmp/kill.seqs"
check "after SIGKILL: none doubled, all in spool order" keys_once
check "vetsyncctl audit verify passes after it all (appends too)" verify

# The limit: with the database down, the spool fills and refuses.
stop
pgstop
log_before=$(wc -l <"$log")
start VETSYNC_AUDIT_SPOOL_MAX=8192
reloads 120
refused=$(tail -n +"$log_before" "$log" | grep -c 'audit spool .* is full')
check "spool full: one loud error for the episode ($refused)" \
    test "$refused" -eq 1
sz=$(stat -c %s "$spool")
check "the spool stays within its limit ($sz <= 8192)" test "$sz" -le 8192
jq -r .seq "$spool" >"$tmp/full.seqs"
first=$(head -1 "$tmp/full.seqs")
last=$(tail -1 "$tmp/full.seqs")
nf=$(wc -l <"$tmp/full.seqs")
check "the records spooled before are intact ($nf, seq $first..$last)" \
    test "$nf" -eq $((last - first + 1)) -a "$nf" -ge 20
pgstart
wait_for 60 spool_empty
kill -HUP "$daemon"
check "when the database returns, the records spooled before are written" \
    all_in "$tmp/full.seqs"
check "and the spool takes records again" \
    wait_for 10 grep -q 'audit spool .* taking records again' "$log"
stop
sum=$(grep 'audit: .* record(s) written since the start' "$log" | tail -1)
check "at exit, the writer says what the full spool refused" \
    eval 'echo "$sum" | grep -q "written since the start, [1-9][0-9]* refused"'
check "none doubled in the end" keys_once

# A full disk: the state directory on a small tmpfs of its own (a private
# mount namespace; the daemon's view is /proc/PID/root), the database
# down, the file system filled up behind the spool's back.
full=$tmp/state-full
mkdir -p "$full"
pgstop
log_before=$(wc -l <"$log")
env CREDENTIALS_DIRECTORY="$tmp/creds" unshare -m --propagation private \
    sh -c 'mount -t tmpfs -o size=128k,mode=700 vetsync-full "$0" &&
    exec "$@"' "$full" "$top_builddir/vetsyncd" -d -c "$tmp/vetsyncd.conf" \
    -S "$tmp/control.sock" -s "$full" 2>>"$log" &
daemon=$!
wait_for 10 test -S "$tmp/control.sock" || diag "vetsyncd did not start"
spool=/proc/$daemon/root$full/audit.spool
cursor=$spool.cursor
reloads 10
jq -r .seq "$spool" >"$tmp/disk.seqs"
nd=$(wc -l <"$tmp/disk.seqs")
dd if=/dev/zero of="/proc/$daemon/root$full/filler" bs=4k \
    count=64 2>/dev/null
reloads 80
refused=$(tail -n +"$log_before" "$log" |
    grep -c "alert: audit spool .* cannot be written: No space left")
check "disk full: one loud error naming it ($refused)" test "$refused" -eq 1
check "disk full: vetsyncd goes on" kill -0 "$daemon"
# tmpfs takes writes into the page it has already given: a few records
# may still get in; every one after the first refusal is refused.
jq -r .seq "$spool" >"$tmp/disk.after" 2>"$tmp/disk.jq"
na=$(wc -l <"$tmp/disk.after")
first=$(head -1 "$tmp/disk.after")
last=$(tail -1 "$tmp/disk.after")
check "disk full: the records spooled are intact, no half line ($na)" \
    test ! -s "$tmp/disk.jq" -a "$na" -eq $((last - first + 1)) -a \
    "$(head -n "$nd" "$tmp/disk.after" | cmp -s - "$tmp/disk.seqs" &&
    echo same)" = same
check "disk full: the later records were refused ($na of $((nd + 80)) in)" \
    test "$na" -lt $((nd + 80))
rm -f "/proc/$daemon/root$full/filler"
pgstart
check "disk free again: the records spooled before are written" \
    eval 'wait_for 60 spool_empty && all_in "$tmp/disk.after"'
kill -HUP "$daemon"
again() {
	tail -n +"$log_before" "$log" |
	    grep -q "audit spool .*: taking records again; [1-9]"
}
check "and the spool takes records again" wait_for 10 again
check "none doubled after the full disk" keys_once
stop
if [ "$tap_failed" -gt 0 ]; then
	diag "vetsyncd log (tail):"
	grep -v 'audit: {' "$log" | tail -40 | sed 's/^/# /'
fi
exit 0
