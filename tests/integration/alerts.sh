#!/bin/sh
# Alerts by email, end to end on a real PostgreSQL: vetsyncd runs the real,
# sandboxed worker against tests/idexx_sim and mails alerts to the
# simulator's SMTP sink (AUTH required, so the smtp-password is used).
#
#   - a clinic whose syncs fail (IDEXX answering 5xx) three times in a row:
#     exactly one mail, to both recipients, with the subject, the clinic's
#     id and name, the threshold and the figure; the alert's row says sent;
#   - a second failure episode within repeat_after: no second mail;
#   - the mail server answering 4xx, then back: the alert (a clinic held
#     for its locked IDEXX account) arrives later, once;
#   - the mail server answering 5xx: refused for good, tried once, the row
#     says failed (a sync running past slow_sync);
#   - the failure rate over the last hour, with the figure and the worst
#     clinic, mailed once while two instances evaluate it;
#   - two instances on one database, a clinic with no sync for longer than
#     stale_after (its lease held by a vanished instance): one mail;
#   - every alert audited; no secret (SMTP, IDEXX or database password) in
#     any mail or log line;
#   - the sink's knobs: a dropped connection, slow answers;
#   - no sanitizer report, when VS_ALERTS_DAEMON is an ASan+UBSan vetsyncd.
#
# VETSYNC_ALERTS_SCAN_MS=500 evaluates the thresholds twice a second instead
# of every minute.  Runs itself again inside pg_virtualenv.
. "$top_srcdir/tests/integration/lib.sh"

in_pg_virtualenv "$@"

N=21
skip_all() { skip_plan $N "alerts case" "$1"; }
[ "$(id -u)" -eq 0 ] || skip_all "needs root (worker identity)"
grep -q '^#define VS_SANITIZERS 1' "$top_builddir/config.h" &&
    skip_all "sanitizer build: the worker policy refuses ASan"
for tool in jq curl psql; do
	command -v $tool >/dev/null 2>&1 || skip_all "$tool is not installed"
done
sim=$top_builddir/tests/idexx_sim
[ -x "$sim" ] || skip_all "tests/idexx_sim not built"

tap_plan $N

tz=Europe/London
db=vetsync_alerts
supw=${PGPASSWORD:-}
dpw="daemon-pw-$$"
SMTPPW="smtp-secret-$$-x7"
FROM=vetsync@ops.clinic.test
TO1=ops@ops.clinic.test
TO2=oncall@pager.clinic.test
tmp=$(mktemp -d /tmp/vetsync-alerts.XXXXXX)
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
trap "exit 1" INT TERM

sql() { PGPASSWORD=$supw psql -X -q -At -v ON_ERROR_STOP=1 -d $db -c "$*"; }
num() { case $1 in ''|*[!0-9]*) echo -1 ;; *) echo "$1" ;; esac; }
uid() { printf 'a1e27000-0000-4000-8000-%012d' "$1"; }
freeport() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

PGPASSWORD=$supw createdb -T template0 $db
"$top_builddir/vetsyncctl" migrate --dir "$top_srcdir/migrations" \
    --conninfo "dbname=$db" >"$tmp/migrate.log" 2>&1 ||
    sed 's/^/# /' "$tmp/migrate.log"
sql "alter role vetsync_daemon login password '$dpw'"

"$sim" --port 0 --port-file "$tmp/port" --profile neo --timezone $tz \
    --clinics 6 --consultations 4 --latency-ms 1 \
    --smtp-port-file "$tmp/smtp-port" --smtp-user alerts \
    --smtp-password "$SMTPPW" >"$tmp/sim.log" 2>&1 &
simpid=$!
wait_for 10 test -s "$tmp/smtp-port" || diag "simulator did not start"
url=http://127.0.0.1:$(cat "$tmp/port")
smtp=127.0.0.1:$(cat "$tmp/smtp-port")
ctl_sim() {
	curl -s -f -X POST -d "$1" "$url/__sim/control" >/dev/null ||
	    diag "simulator refused $1"
}
mail() { curl -s "$url/__sim/mail"; }
# mails SUBJECT-PREFIX: how many mails have a Subject starting so
mails() {
	num "$(mail | jq --arg s "Subject: [vetsync] $1" '[.messages[] |
	    select(.data | split("\r\n") | any(startswith($s)))] | length')"
}
# body SUBJECT-PREFIX: the data of the first such mail
body() {
	mail | jq -r --arg s "Subject: [vetsync] $1" '[.messages[] |
	    select(.data | split("\r\n") | any(startswith($s)))][0].data'
}
counter() { num "$(mail | jq -r ".$1")"; }
# For wait_for, which runs its command again and again: these evaluate
# their figure at each call.
has_mails() { [ "$(mails "$1")" -ge 1 ]; }
has_counter() { [ "$(counter "$1")" -ge "$2" ]; }

# Six clinics; credentials in files.  Clinic 1 is active from the start,
# the others become so (or not) case by case.
mkdir -p "$tmp/creds" "$tmp/state-a" "$tmp/state-b"
chmod 700 "$tmp/creds"
values=
for i in 1 2 3 4 5 6; do
	u=$(uid $i)
	printf 'vet%d@clinic%d.test\npassword-%d\nc%d\n' $i $i $i $i \
	    >"$tmp/creds/idexx-$u"
	values="$values${values:+,}('$u', 'Clinic $i', true, '$tz')"
done
printf '%s\n' "$dpw" >"$tmp/creds/db-password"
printf '%s' "$SMTPPW" >"$tmp/creds/smtp-password"
chmod 600 "$tmp/creds"/*
sql "insert into users (id, clinic_name, idexx_sync_enabled, timezone)
    values $values"
activate() {
	sql "insert into idexx_credentials (user_id, encrypted_username,
	    encrypted_password, encryption_key_id, state, validation_status,
	    created_at) values ('$(uid $1)', 'file', 'file', 'file', 'active',
	    'valid', now() - interval '${2:-0} minutes')"
}

cat >"$tmp/vetsyncd.conf" <<CONF
[idexx]
profile = $top_srcdir/deploy/neo-profile.conf
base_url = $url
request_rate = 100
max_parallel = 4
request_timeout = 5s
[schedule]
default_timezone = $tz
[workers]
binary = $top_builddir/vetsync-worker
policy_dir = $top_srcdir/policy
user = nobody
group = nogroup
backoff_initial = 1s
backoff_max = 2s
failure_threshold = 6
job_timeout = 2m
[database]
conninfo = host=$PGHOST port=${PGPORT:-5432} dbname=$db user=vetsync_daemon
connect_timeout = 2s
[alerts]
smtp_url = smtp://alerts@$smtp
from = $FROM
to = $TO1, $TO2
consecutive_failures = 3
failure_rate = 0.10
slow_sync = 1m
stale_after = 1h
repeat_after = 10m
[api]
listen = 127.0.0.1:3001
[instance]
lease_time = 10s
CONF
# start NAME STATEDIR: vetsyncd as instance NAME, its pid in $started.
# VS_ALERTS_DAEMON: another vetsyncd binary, e.g. one built with
# --enable-sanitizers (the workers stay those of this build: their policy
# refuses ASan).
start() {
	sed -e "s/^\[instance\]$/[instance]\nname = $1/" \
	    -e "s/^listen = .*/listen = 127.0.0.1:$(freeport)/" \
	    "$tmp/vetsyncd.conf" >"$tmp/$1.conf"
	rm -f "$tmp/$1.sock"
	VETSYNC_ALERTS_SCAN_MS=500 CREDENTIALS_DIRECTORY="$tmp/creds" \
	    "${VS_ALERTS_DAEMON:-$top_builddir/vetsyncd}" -c "$tmp/$1.conf" \
	    -S "$tmp/$1.sock" \
	    -s "$2" >/dev/null 2>>"$tmp/$1.log" &
	started=$!
	wait_for 10 test -S "$tmp/$1.sock" || diag "vetsyncd $1 did not start"
}
vctl() { "$top_builddir/vetsyncctl" -c "$tmp/sa.conf" -S "$tmp/sa.sock" "$@"; }
sessions() {
	num "$(sql "select count(*) from idexx_sync_sessions where
	    user_id = '$(uid $1)' and status = '$2' and kind <> 'validate'
	    and started_at >= coalesce(nullif('${3:-}', '')::timestamptz,
	    '-infinity')")"
}
# has_sessions CLINIC STATUS SINCE N: at least N such sessions
has_sessions() { [ "$(sessions "$1" "$2" "$3")" -ge "$4" ]; }

# History: 20 syncs of clinics 4 and 6 ended in the last hour, 8 of them
# (clinic 4's oldest) failed: a failure rate of 40 %, seen at the first
# evaluation.  The most recent syncs of clinic 4 succeeded: no clinic has
# three failures in a row.
sql "insert into idexx_sync_sessions (user_id, kind, status, started_at,
    completed_at) select case when g <= 10 then '$(uid 4)'::uuid
    else '$(uid 6)'::uuid end, 'notes', case when g <= 8 then 'failed'
    else 'completed' end, now() - interval '40 minutes' + g * interval
    '1 minute', now() - interval '40 minutes' + g * interval '1 minute' +
    interval '30 seconds' from generate_series(1, 20) g"

# --- three failures in a row: one mail -----------------------------------
CF="3 consecutive failed syncs: Clinic 1"
ctl_sim '{"rate_5xx": 1.0}'
activate 1
start sa "$tmp/state-a"
pa=$started
# The scheduler's first run would come within the notes interval: ask now.
# Each failure is retried after the backoff, without asking again.
vctl sync --user "$(uid 1)" >/dev/null 2>&1
wait_for 90 has_mails "$CF"
n=$(mails "$CF")
check "three failures of clinic 1 in a row: one mail ($n)" test "$n" -eq 1
m=$(body "$CF")
rcpt=$(mail | jq -c --arg s "Subject: [vetsync] $CF" '[.messages[] |
    select(.data | split("\r\n") | any(startswith($s)))][0].rcpt')
check "to both recipients ($rcpt)" \
    test "$rcpt" = "[\"$TO1\",\"$TO2\"]"
hdr_ok() {
	printf '%s' "$m" | grep -q "^To: $TO1, $TO2" &&
	    printf '%s' "$m" | grep -q "^From: vetsync <$FROM>" &&
	    printf '%s' "$m" | grep -q '^Date: [A-Z][a-z][a-z], [0-9]' &&
	    printf '%s' "$m" |
	    grep -q '^Message-ID: <alert\.[0-9a-f]*\.[0-9]*@ops\.clinic\.test>' &&
	    printf '%s' "$m" | grep -q '^Content-Type: text/plain; charset=utf-8'
}
check "an RFC 5322 message: To, From, Date, Message-ID, MIME" hdr_ok
body_ok() {
	printf '%s' "$m" | grep -q "Clinic:    Clinic 1 (id $(uid 1))" &&
	    printf '%s' "$m" | grep -q 'Threshold: alerts.consecutive_failures' &&
	    printf '%s' "$m" | grep -q 'Figure:    its last 3 syncs failed' &&
	    printf '%s' "$m" | grep -q 'Look at:   '
}
check "the body names the clinic, the threshold, the figure, where to look" \
    body_ok
au=$(mail | jq -r '[.messages[].auth_user] | unique | join(",")')
check "every mail was sent after AUTH with the smtp-password ($au)" \
    test "$au" = alerts -a "$(counter auth_failed)" -eq 0
cfrow() {
	sql "select state || ' ' || mails || ' ' || claimed_by from
	    vetsync_alerts where key = 'consecutive_failures:$(uid 1)'"
}
cf_sent() { [ "$(cfrow)" = "sent 1 sa" ]; }
wait_for 5 cf_sent
row=$(cfrow)
check "its row: sent once, by sa ($row)" test "$row" = "sent 1 sa"

# --- a second episode within repeat_after: no second mail ----------------
ctl_sim '{"rate_5xx": 0}'
t1=$(sql "select now()")
vctl sync --user "$(uid 1)" >/dev/null 2>&1
wait_for 30 has_sessions 1 completed "$t1" 1
ok1=$(sessions 1 completed "$t1")
ctl_sim '{"rate_5xx": 1.0}'
t2=$(sql "select now()")
vctl sync --user "$(uid 1)" >/dev/null 2>&1
wait_for 60 has_sessions 1 failed "$t2" 3
sleep 2
f2=$(sessions 1 failed "$t2")
n=$(mails "$CF")
check "after a success ($ok1) and $f2 more failures: still one mail ($n)" \
    test "$ok1" -ge 1 -a "$f2" -ge 3 -a "$n" -eq 1
ctl_sim '{"rate_5xx": 0}'

# --- the mail server answers 4xx, then takes the alert -------------------
HELD="clinic held: Clinic 2"
ctl_sim '{"smtp_fail": "4xx", "locked": [2]}'
activate 2
vctl sync --user "$(uid 2)" >/dev/null 2>&1
wait_for 60 has_counter refused_4xx 2
r4=$(counter refused_4xx)
n=$(mails "$HELD")
check "while the server answers 4xx ($r4 refusals) nothing arrives ($n)" \
    test "$r4" -ge 2 -a "$n" -eq 0
ctl_sim '{"smtp_fail": "none"}'
wait_for 30 has_mails "$HELD"
sleep 3
n=$(mails "$HELD")
check "once the server is back the alert arrives, once ($n)" test "$n" -eq 1
printf '%s' "$(body "$HELD")" | grep -q "rejected its credentials" ||
    diag "held mail: $(body "$HELD" | tail -8)"

# --- 5xx: refused for good ---------------------------------------------
SLOW="sync running for"
ctl_sim '{"smtp_fail": "5xx"}'
sql "insert into idexx_sync_sessions (user_id, kind, status, started_at,
    instance) values ('$(uid 5)', 'notes', 'running',
    now() - interval '5 minutes', 'vanished')"
wait_for 30 has_counter refused_5xx 1
sleep 4
r5=$(counter refused_5xx)
st=$(sql "select state from vetsync_alerts where key =
    'slow_sync:$(uid 5)'")
check "a 5xx is final: one attempt ($r5), the row says $st" \
    test "$r5" -eq 1 -a "$st" = failed
ctl_sim '{"smtp_fail": "none"}'
sleep 2
n=$(mails "$SLOW")
check "the refused alert is not mailed again within repeat_after ($n)" \
    test "$n" -eq 0

# --- two instances; the failure rate; a stale clinic ---------------------
start sb "$tmp/state-b"
pb=$started
# The failure rate (the history above, then clinic 1's failures): one
# mail, not again while two instances evaluate it twice a second.
RATE="sync failure rate"
wait_for 20 has_mails "$RATE"
sleep 3
n=$(mails "$RATE")
check "the failure rate over the last hour: one mail ($n)" test "$n" -eq 1
rb=$(body "$RATE")
rate_ok() {
	printf '%s' "$rb" | grep -q 'Threshold: alerts.failure_rate' &&
	    printf '%s' "$rb" |
	    grep -q '8 of 20 syncs that ended in the last hour failed (40.0%' &&
	    printf '%s' "$rb" | grep -q "Clinic 4 (id $(uid 4)): 8 failed"
}
check "it gives the figure and names the worst clinic" rate_ok
[ "$n" -eq 1 ] && ! rate_ok && diag "$(printf '%s' "$rb" | tail -12)"

# Clinic 3: active for two hours, never synced: its lease is held by an
# instance that vanished, so neither instance runs it.
sql "insert into clinic_leases (user_id, instance, expires_at, claimed_at)
    values ('$(uid 3)', 'vanished', now() + interval '1 hour', now())"
activate 3 120
STALE="no completed sync in 1h: Clinic 3"
wait_for 20 has_mails "$STALE"
sleep 3
n=$(mails "$STALE")
check "a clinic without a sync for stale_after, two instances: one mail ($n)" \
    test "$n" -eq 1
la=$(grep -c "alert: stale:$(uid 3)" "$tmp/sa.log")
lb=$(grep -c "alert: stale:$(uid 3)" "$tmp/sb.log")
by=$(sql "select claimed_by from vetsync_alerts where key =
    'stale:$(uid 3)'")
check "one instance raised it ($by; logged by sa $la, sb $lb)" \
    test "$((la + lb))" -ge 1 -a \( "$la" -eq 0 -o "$lb" -eq 0 \)
printf '%s' "$(body "$STALE")" | grep -q 'no sync has ever completed' ||
    diag "stale mail: $(body "$STALE" | tail -8)"

# --- audit, secrets -------------------------------------------------------
kill -TERM "$pa" "$pb"
wait "$pa" 2>/dev/null
wait "$pb" 2>/dev/null
pa=
pb=
audited() {
	num "$(sql "select count(*) from idexx_sync_audit_log where
	    action = '$1' and status = '$2'")"
}
ar=$(audited alert_raised raised)
am=$(audited alert_mailed ok)
af=$(audited alert_mailed failed)
check "audited: $ar raised, $am mailed, $af refused" \
    test "$ar" -ge 5 -a "$am" -ge 4 -a "$af" -ge 1
total=$(num "$(mail | jq '.messages | length')")
diag "mails: $total; $(mail | jq -r '[.messages[].data | split("\r\n")[] |
    select(startswith("Subject:"))] | join("; ")')"
mail >"$tmp/mail.json"
leak=
# The simulator's IDEXX passwords are password-1 .. password-6.
for s in "$SMTPPW" 'password-[1-6]' "$dpw"; do
	grep -q -- "$s" "$tmp/mail.json" && leak="$leak mail:$s"
	grep -q -- "$s" "$tmp/sa.log" "$tmp/sb.log" && leak="$leak log:$s"
done
check "no secret in any mail ($total) or log line${leak:+:$leak}" \
    test -z "$leak" -a "$total" -ge 4
warn=$(grep -c '^.*alert: ' "$tmp/sa.log" "$tmp/sb.log" | paste -sd' ')
check "alerts are logged ($warn)" grep -q "alert: consecutive_failures:" \
    "$tmp/sa.log"
check "no sanitizer report in vetsyncd's logs" sh -c "! grep -q -e \
    'Sanitizer' -e 'runtime error:' '$tmp/sa.log' '$tmp/sb.log'"

# --- the sink's own knobs: dropped connections, slow answers -------------
printf 'Subject: probe\r\n\r\nprobe\r\n' >"$tmp/probe.txt"
probe() {
	curl -s -m 20 --url "smtp://$smtp" --user "alerts:$SMTPPW" \
	    --mail-from "$FROM" --mail-rcpt "$TO1" --upload-file "$tmp/probe.txt"
}
ctl_sim '{"smtp_fail": "drop", "smtp_fail_next": 1}'
d0=$(counter dropped)
probe
r1=$?
probe
r2=$?
d1=$(counter dropped)
check "smtp_fail drop: that session closed unanswered ($r1), the next sent ($r2)" \
    test "$r1" -ne 0 -a "$r2" -eq 0 -a "$d1" -eq $((d0 + 1))
ctl_sim '{"smtp_slow_ms": 200}'
t0=$(date +%s%N)
probe
r3=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
ctl_sim '{"smtp_slow_ms": 0}'
check "smtp_slow_ms 200: a mail of 7 or 8 answers took $ms ms" \
    test "$r3" -eq 0 -a "$ms" -ge 1400

if [ $tap_failed -gt 0 ]; then
	for f in sa sb; do
		[ -f "$tmp/$f.log" ] && grep -i 'alert\|mail\|smtp' \
		    "$tmp/$f.log" | tail -20 | sed "s/^/# $f: /"
	done
	tail -20 "$tmp/sim.log" | sed 's/^/# sim: /'
fi
exit 0
