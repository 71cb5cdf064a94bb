#!/bin/sh
# The nightly schedule sync across a daylight-saving change, end to end and
# in real time: vetsyncd, its sandboxed worker and PostgreSQL all read one
# zoneinfo in which two made-up zones change their clocks a minute or two
# from now -- one springs forward, one falls back -- while a third clinic
# stays on UTC.  The three clinics share one local schedule_sync_time M,
# chosen so that
#
#   - VetsyncTest/Fall (UTC+1 min, then UTC at T0 = M - 30 s) reads M twice:
#     its sync runs once, at the first reading (M - 60 s), not again at M;
#   - VetsyncTest/Spring (UTC, then UTC+1 min at T0) never reads M, which
#     falls in the gap: its sync runs once, at the end of the gap (T0);
#   - UTC runs at M;
#
# and each clinic's next run is planned for M of the next local day (a day
# of 24 h less a minute for Spring).  Three different instants from one
# wall-clock time: a scheduler that ignored the zone, took the standard
# reading, skipped the gap or ran the repeated minute twice fails.
#
# The zones are compiled with zic into a copy of /usr/share/zoneinfo bound
# over the real one in a private mount namespace (unshare -m), so nothing
# on the machine changes.  Runs itself again inside pg_virtualenv, as
# tests/integration/scheduler.sh does.
. "$top_srcdir/tests/integration/lib.sh"

N=12
skip_all() { skip_plan $N "daylight-saving case" "$1"; }
[ "$(id -u)" -eq 0 ] || skip_all "needs root (mount namespace, workers)"
grep -q '^#define VS_SANITIZERS 1' "$top_builddir/config.h" &&
    skip_all "sanitizer build: the worker policy refuses ASan"
for tool in jq curl psql unshare zic; do
	command -v $tool >/dev/null 2>&1 || skip_all "$tool is not installed"
done
sim=$top_builddir/tests/idexx_sim
[ -x "$sim" ] || skip_all "tests/idexx_sim not built"

# Outside: a private mount namespace with our own zoneinfo, then the
# cluster (started inside it, so PostgreSQL reads the same zones).
if [ -z "${VS_DST_ZONEINFO:-}" ]; then
	zi=$(mktemp -d /tmp/vetsync-zoneinfo.XXXXXX)
	cp -a /usr/share/zoneinfo/. "$zi/" || skip_all "cannot copy zoneinfo"
	chmod 755 "$zi"
	VS_DST_ZONEINFO=$zi unshare -m --propagation private sh -c '
	    mount --bind "$VS_DST_ZONEINFO" /usr/share/zoneinfo || exit 77
	    exec sh "$0" "$@"' "$0" "$@"
	rc=$?
	rm -rf "$zi"
	[ $rc -eq 77 ] && skip_all "cannot bind-mount a zoneinfo (no mount namespace)"
	exit $rc
fi

in_pg_virtualenv "$@"

tap_plan $N

db=vetsync_dst
supw=${PGPASSWORD:-}
dpw="daemon-pw-$$"
tmp=$(mktemp -d /tmp/vetsync-dst.XXXXXX)
chmod 755 "$tmp"
simpid=
pid=
cleanup() {
	[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
	[ -n "$simpid" ] && kill "$simpid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

sql() { PGPASSWORD=$supw psql -X -q -At -v ON_ERROR_STOP=1 -d $db -c "$*"; }
num() { case $1 in ''|*[!0-9-]*) echo -1 ;; *) echo "$1" ;; esac; }
uid() { printf 'd5700000-0000-4000-8000-%012d' "$1"; }

# M: a whole minute 80 to 140 s ahead; the clocks change at T0 = M - 30 s.
now=$(date +%s)
M=$(( (now + 80 + 59) / 60 * 60 ))
T0=$((M - 30))
slot=$(date -u -d "@$M" +%H:%M)
# Rules, not fixed offsets, so the daylight readings carry isdst as a
# real zone's do.
set -- $(date -u -d "@$T0" '+%Y %b %d %H:%M:%S')
cat >"$tmp/zones" <<ZONES
Rule	VTF	$(($1 - 1))	only	-	Jan	1	0:00u	0:01	D
Rule	VTF	$1	only	-	$2	$3	${4}u	0	S
Rule	VTS	$(($1 - 1))	only	-	Jan	1	0:00u	0	S
Rule	VTS	$1	only	-	$2	$3	${4}u	0:01	D
Zone	VetsyncTest/Fall	0:00	VTF	X%sT
Zone	VetsyncTest/Spring	0:00	VTS	X%sT
ZONES
zic -d /usr/share/zoneinfo "$tmp/zones" 2>"$tmp/zic.log"
# What glibc (our date(1)) reads from the compiled zones: the premise.
lt() { TZ=$1 date -d "@$2" '+%H:%M:%S %Z'; }
premise="$(lt VetsyncTest/Fall $((M - 60))) $(lt VetsyncTest/Fall $M)"
premise="$premise $(lt VetsyncTest/Spring $((T0 - 1))) $(lt VetsyncTest/Spring $T0)"
want="$slot:00 XDT $slot:00 XST $(date -u -d "@$((T0 - 1))" +%H:%M:%S) XST"
want="$want $(date -u -d "@$((T0 + 60))" +%H:%M:%S) XDT"
check "the zones change their clocks at $(date -u -d "@$T0" +%T) UTC" \
    test "$premise" = "$want"
[ "$premise" = "$want" ] || diag "zones read: $premise; want: $want"

PGPASSWORD=$supw createdb -T template0 $db
"$top_builddir/vetsyncctl" migrate --dir "$top_srcdir/migrations" \
    --conninfo "dbname=$db" >"$tmp/migrate.log" 2>&1 ||
    sed 's/^/# /' "$tmp/migrate.log"
sql "alter role vetsync_daemon login password '$dpw'"
pgzone=$(sql "select to_char(to_timestamp($T0) at time zone
    'VetsyncTest/Spring', 'HH24:MI:SS')")
check "PostgreSQL reads the same zones ($pgzone)" \
    test "$pgzone" = "$(date -u -d "@$((T0 + 60))" +%H:%M:%S)"

"$sim" --port 0 --port-file "$tmp/port" --profile neo --timezone UTC \
    --clinics 3 --consultations 4 --latency-ms 1 >"$tmp/sim.log" 2>&1 &
simpid=$!
wait_for 10 test -s "$tmp/port" || diag "simulator did not start"
url=http://127.0.0.1:$(cat "$tmp/port")

mkdir -p "$tmp/creds" "$tmp/state"
chmod 700 "$tmp/creds"
values=
i=0
for z in VetsyncTest/Fall VetsyncTest/Spring UTC; do
	i=$((i + 1))
	printf 'vet%d@clinic%d.test\npassword-%d\nc%d\n' $i $i $i $i \
	    >"$tmp/creds/idexx-$(uid $i)"
	values="$values${values:+,}('$(uid $i)', 'Clinic $i', true, '$z')"
done
printf '%s\n' "$dpw" >"$tmp/creds/db-password"
chmod 600 "$tmp/creds"/*
sql "insert into users (id, clinic_name, idexx_sync_enabled, timezone)
    values $values"
sql "insert into idexx_credentials (user_id, encrypted_username,
    encrypted_password, encryption_key_id, state, validation_status)
    select id, 'file', 'file', 'file', 'active', 'valid' from users"

cat >"$tmp/vetsyncd.conf" <<CONF
[idexx]
profile = $top_srcdir/deploy/neo-profile.conf
base_url = $url
request_rate = 100
[schedule]
notes_interval = 7d
jitter = 0s
default_timezone = UTC
schedule_sync_time = $slot
[workers]
binary = $top_builddir/vetsync-worker
policy_dir = $top_srcdir/policy
user = nobody
group = nogroup
[database]
conninfo = host=$PGHOST port=${PGPORT:-5432} dbname=$db user=vetsync_daemon
connect_timeout = 2s
[instance]
name = dst
CONF
CREDENTIALS_DIRECTORY="$tmp/creds" "$top_builddir/vetsyncd" \
    -c "$tmp/vetsyncd.conf" -S "$tmp/sock" -s "$tmp/state" \
    >/dev/null 2>"$tmp/vetsyncd.log" &
pid=$!
wait_for 10 test -S "$tmp/sock" || diag "vetsyncd did not start"

# planned I: clinic I's next schedule sync, epoch seconds
planned() {
	num "$(sql "select extract(epoch from next_schedule_at)::bigint
	    from clinic_leases where user_id = '$(uid $1)'")"
}
wait_for 15 test "$(planned 3)" -gt 0
p="$(planned 1) $(planned 2) $(planned 3)"
check "planned: Fall at M - 60 s, Spring at T0 (the gap's end), UTC at M" \
    test "$p" = "$((M - 60)) $T0 $M"
[ "$p" = "$((M - 60)) $T0 $M" ] ||
    diag "planned $p; want $((M - 60)) $T0 $M (M=$M)"

# runs I: clinic I's schedule sessions as "count first-start status"
runs() {
	sql "select count(*) || ' ' || coalesce(min(floor(extract(epoch from
	    started_at)))::bigint, 0) || ' ' || coalesce(string_agg(distinct
	    status, ','), '-') from idexx_sync_sessions
	    where user_id = '$(uid $1)' and kind = 'schedule'"
}
# ran_at I WHEN: one completed run that started within WHEN - 2 .. WHEN + 15
# (the wrong readings are 30 s or more away)
ran_at() {
	set -- $(runs $1) "$2"
	[ "$1" -eq 1 ] && [ "$3" = completed ] &&
	    [ "$2" -ge $(($4 - 2)) ] && [ "$2" -lt $(($4 + 15)) ]
}
left=$((M + 25 - $(date +%s)))
[ $left -gt 0 ] && sleep $left
r1=$(runs 1)
r2=$(runs 2)
r3=$(runs 3)
check "Fall ran once, at the first of its two $slot (M - 60 s): $r1" \
    ran_at 1 $((M - 60))
check "Spring ran once, at the end of the gap where $slot would be: $r2" \
    ran_at 2 $T0
check "UTC ran once, at $slot: $r3" ran_at 3 $M
diag "M=$M T0=$T0; runs as count, start, status"

# Next: M of the next local day.  Spring is now a minute ahead of UTC.
day=86400
wait_for 10 test "$(planned 1)" -gt $M
n1=$(planned 1)
n2=$(planned 2)
n3=$(planned 3)
check "Fall's next run is tomorrow's $slot: $n1 (want $((M + day)))" \
    test "$n1" -eq $((M + day))
check "Spring's next run is tomorrow's $slot: $n2 (want $((M + day - 60)))" \
    test "$n2" -eq $((M + day - 60))
check "UTC's next run is tomorrow's $slot: $n3 (want $((M + day)))" \
    test "$n3" -eq $((M + day))

# The schedule sync asked IDEXX for the clinic's local tomorrow.
asked=$(sql "select count(*) from idexx_sync_sessions
    where kind = 'schedule' and status = 'completed'")
check "the three schedule syncs completed ($asked)" test "$asked" -eq 3
nss=$(sql "select count(*) from idexx_sync_sessions s join clinic_leases l
    using (user_id) where s.kind = 'schedule' and s.next_scheduled_sync =
    least(l.next_notes_at, l.next_schedule_at)")
check "each session row carries the clinic's next run ($nss)" \
    test "$nss" -eq 3
errs=$(grep -c 'error\|alert:' "$tmp/vetsyncd.log")
check "vetsyncd logged no error ($errs)" test "$errs" -eq 0

kill -TERM "$pid"
wait "$pid" 2>/dev/null
pid=
if [ $tap_failed -gt 0 ]; then
	tail -20 "$tmp/vetsyncd.log" | sed 's/^/# vetsyncd: /'
	sed 's/^/# zic: /' "$tmp/zic.log"
fi
exit 0
