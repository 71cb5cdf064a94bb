#!/bin/sh
# Benchmark (not a test; "make bench-cycle", as root): one full
# reconciliation cycle, DESIGN §8's "1,000 clinics x 50 consultations,
# cycle < 2 min, supervisor < 100 MB".  vetsyncd with real sandboxed
# workers, the simulator (20 ms per request) and a throw-away pg_virtualenv
# cluster; every clinic's notes job is queued at once and the clock stops
# when the last session is closed in PostgreSQL.
#
# CLINICS, CONSULTATIONS, LATENCY_MS, CONCURRENT (workers.max_concurrent),
# RATE (idexx.request_rate) change the run.  Prints the wall time, the
# sessions completed and failed, the consultations written, and the
# supervisor's peak RSS (VmHWM).
: "${top_srcdir:?}" "${top_builddir:?}"
top_srcdir=$(cd "$top_srcdir" && pwd -P)
top_builddir=$(cd "$top_builddir" && pwd -P)

if [ -z "${VS_DB_TEST_INSIDE:-}" ]; then
	command -v pg_virtualenv >/dev/null 2>&1 ||
	    { echo "bench-cycle: pg_virtualenv is not installed" >&2; exit 1; }
	VS_DB_TEST_INSIDE=1 exec pg_virtualenv -t -- sh "$0" "$@"
fi
[ "$(id -u)" -eq 0 ] || { echo "bench-cycle: run it as root" >&2; exit 1; }

clinics=${CLINICS:-1000}
cons=${CONSULTATIONS:-50}
latency=${LATENCY_MS:-20}
concurrent=${CONCURRENT:-32}
rate=${RATE:-200}
db=vetsync_bench_cycle
dpw="bench-$$"
tmp=$(mktemp -d /tmp/vetsync-bench-cycle.XXXXXX)
chmod 755 "$tmp"
simpid=
daemon=
cleanup() {
	[ -n "$daemon" ] && kill "$daemon" 2>/dev/null
	[ -n "$simpid" ] && kill "$simpid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
sql() { psql -X -q -At -v ON_ERROR_STOP=1 -d $db -c "$*"; }
uuid() { printf '55555555-0000-4000-8000-%012d' "$1"; }

createdb -T template0 $db
"$top_builddir/vetsyncctl" migrate --dir "$top_srcdir/migrations" \
    --conninfo "dbname=$db" >/dev/null
sql "alter role vetsync_daemon login password '$dpw'"
sql "insert into users (id, clinic_name, idexx_sync_enabled) select
    ('55555555-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid,
    'Clinic ' || g, true from generate_series(1, $clinics) g"

"$top_builddir/tests/idexx_sim" --port 0 --port-file "$tmp/port" \
    --profile neo --clinics "$clinics" --consultations "$cons" \
    --latency-ms "$latency" 2>"$tmp/sim.log" &
simpid=$!
i=0
while [ ! -s "$tmp/port" ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i + 1)); done
url=http://127.0.0.1:$(cat "$tmp/port")

# Credentials as systemd credentials, one file a clinic.
mkdir -p "$tmp/state" "$tmp/creds"
chmod 700 "$tmp/creds"
printf '%s\n' "$dpw" >"$tmp/creds/db-password"
for n in $(seq "$clinics"); do
	printf 'vet%s@clinic%s.test\npassword-%s\n' "$n" "$n" "$n" \
	    >"$tmp/creds/idexx-$(uuid "$n")"
done
chmod 600 "$tmp/creds"/*
cat >"$tmp/vetsyncd.conf" <<CONF
[idexx]
profile = $top_srcdir/deploy/neo-profile.conf
base_url = $url
request_rate = $rate
max_parallel = 8
[workers]
binary = $top_builddir/vetsync-worker
policy_dir = $top_srcdir/policy
user = nobody
group = nogroup
max_concurrent = $concurrent
prespawn = 8
[database]
conninfo = host=$PGHOST port=${PGPORT:-5432} dbname=$db user=vetsync_daemon
[api]
listen = 127.0.0.1:$((20000 + $$ % 20000))
[instance]
name = bench
CONF
CREDENTIALS_DIRECTORY="$tmp/creds" "$top_builddir/vetsyncd" \
    -c "$tmp/vetsyncd.conf" -S "$tmp/control.sock" -s "$tmp/state" \
    2>"$tmp/vetsyncd.log" &
daemon=$!
i=0
while [ ! -S "$tmp/control.sock" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
[ -S "$tmp/control.sock" ] ||
    { tail -5 "$tmp/vetsyncd.log" >&2; echo "bench-cycle: no vetsyncd" >&2
    exit 1; }
sleep 2	# spares started

closed() {
	sql "select count(*) from idexx_sync_sessions where kind = 'notes'
	    and status <> 'running'"
}
t0=$(date +%s%3N)
# One control connection per clinic, as vetsyncctl sync makes, without a
# process each.
python3 - "$tmp/control.sock" "$clinics" <<'PY'
import json, socket, sys
path, n = sys.argv[1], int(sys.argv[2])
for i in range(1, n + 1):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.sendall((json.dumps({"cmd": "sync", "kind": "notes",
        "clinic": "55555555-0000-4000-8000-%012d" % i}) + "\n").encode())
    ans = json.loads(s.makefile().readline())
    if not ans.get("ok"):
        sys.exit("sync %d: %s" % (i, ans.get("error")))
    s.close()
PY
t1=$(date +%s%3N)
while [ "$(closed)" -lt "$clinics" ]; do
	sleep 0.5
	[ $(($(date +%s%3N) - t0)) -gt 1800000 ] && break
done
t2=$(date +%s%3N)
rss=$(awk '/^VmHWM/ { print $2 }' "/proc/$daemon/status")
echo "clinics $clinics x $cons consultations, ${latency} ms latency," \
    "$concurrent workers at once, $rate requests/s per clinic"
echo "queued in $((t1 - t0)) ms; cycle $((t2 - t0)) ms" \
    "(target < 120000 ms)"
sql "select 'sessions ' || status || ': ' || count(*) from
    idexx_sync_sessions where kind = 'notes' group by status order by 1"
sql "select 'consultations written: ' || count(*) from
    consultation_sync_status"
echo "supervisor peak RSS (VmHWM): $((rss / 1024)) MiB (target < 100 MiB)"
