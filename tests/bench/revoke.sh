#!/bin/sh
# Benchmark (not a test; "make bench-revoke", as root): revocation to
# worker gone (DESIGN §8 target: under 1 s).  vetsyncd, the real sandboxed
# worker and the simulator (slowed down so that every sync is still running
# when its credentials are revoked) on a throw-away pg_virtualenv cluster.
# For each of ROUNDS clinics: store its credentials (vetsyncctl credentials
# set), start a sync, wait for its worker, then revoke with one UPDATE in
# psql (what vetsyncctl credentials revoke and the HTTP API do) and time
# the moment the UPDATE commits to the moment the worker's process is gone.
# Prints each time and the median, p90 and maximum in milliseconds.
: "${top_srcdir:?}" "${top_builddir:?}"
# Paths in the configuration must be canonical (no '..').
top_srcdir=$(cd "$top_srcdir" && pwd -P)
top_builddir=$(cd "$top_builddir" && pwd -P)

if [ -z "${VS_DB_TEST_INSIDE:-}" ]; then
	command -v pg_virtualenv >/dev/null 2>&1 ||
	    { echo "bench-revoke: pg_virtualenv is not installed" >&2; exit 1; }
	VS_DB_TEST_INSIDE=1 exec pg_virtualenv -t -- sh "$0" "$@"
fi
[ "$(id -u)" -eq 0 ] || { echo "bench-revoke: run it as root" >&2; exit 1; }

rounds=${ROUNDS:-20}
db=vetsync_bench_revoke
dpw="bench-$$"
tmp=$(mktemp -d /tmp/vetsync-bench-revoke.XXXXXX)
chmod 755 "$tmp"
simpid=
daemon=
cleanup() {
	[ -n "$daemon" ] && kill "$daemon" 2>/dev/null
	[ -n "$simpid" ] && kill "$simpid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
sql() { psql -X -q -At -v ON_ERROR_STOP=1 -d $db -c "$*"; }
uuid() { printf '44444444-0000-4000-8000-%012d' "$1"; }

createdb -T template0 $db
"$top_builddir/vetsyncctl" migrate --dir "$top_srcdir/migrations" \
    --conninfo "dbname=$db" >/dev/null
sql "alter role vetsync_daemon login password '$dpw'"
sql "insert into users (id, idexx_sync_enabled) select
    ('44444444-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid, true
    from generate_series(1, $rounds) g"

"$top_builddir/tests/idexx_sim" --port 0 --port-file "$tmp/port" \
    --profile neo --clinics "$rounds" --consultations 10 --latency-ms 2 \
    2>"$tmp/sim.log" &
simpid=$!
i=0
while [ ! -s "$tmp/port" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
url=http://127.0.0.1:$(cat "$tmp/port")

mkdir -p "$tmp/state" "$tmp/creds"
chmod 700 "$tmp/creds"
printf '%s\n' "$dpw" >"$tmp/creds/db-password"
printf 'bench-master-key\n' >"$tmp/creds/encryption-key-b1"
chmod 600 "$tmp/creds"/*
cat >"$tmp/vetsyncd.conf" <<CONF
[idexx]
profile = $top_srcdir/deploy/neo-profile.conf
base_url = $url
[credentials]
key_id = b1
[workers]
binary = $top_builddir/vetsync-worker
policy_dir = $top_srcdir/policy
user = nobody
group = nogroup
[database]
conninfo = host=$PGHOST port=${PGPORT:-5432} dbname=$db user=vetsync_daemon
[instance]
name = bench
CONF
CREDENTIALS_DIRECTORY="$tmp/creds" "$top_builddir/vetsyncd" \
    -c "$tmp/vetsyncd.conf" -S "$tmp/control.sock" -s "$tmp/state" \
    2>"$tmp/vetsyncd.log" &
daemon=$!
i=0
while [ ! -S "$tmp/control.sock" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
ctl() { "$top_builddir/vetsyncctl" -c "$tmp/vetsyncd.conf" \
    -S "$tmp/control.sock" "$@"; }

for n in $(seq "$rounds"); do
	printf 'password-%s\n' "$n" | ctl credentials set --user "$(uuid "$n")" \
	    --username "vet$n@clinic$n.test" >/dev/null 2>&1 ||
	    { echo "bench-revoke: credentials set failed for clinic $n" >&2
	    tail -5 "$tmp/vetsyncd.log" >&2
	    exit 1; }
done
# Every request now takes 2 s: the syncs below are all still running.
curl -s -X POST --data '{"latency_ms": 2000}' "$url/__sim/control" >/dev/null

: >"$tmp/times"
for n in $(seq "$rounds"); do
	u=$(uuid "$n")
	ctl sync --user "$u" >/dev/null
	pid=
	i=0
	while [ -z "$pid" ] && [ $i -lt 400 ]; do
		pid=$(ctl status --json | jq -r --arg c "$u" \
		    '.workers[] | select(.clinic == $c) | .pid' | head -1)
		[ -n "$pid" ] || sleep 0.02
		i=$((i + 1))
	done
	[ -n "$pid" ] || { echo "bench-revoke: no worker for $u" >&2; exit 1; }
	sleep 0.3	# the worker is logging in
	# psql prints the commit time; the loop polls /proc every 1 ms.
	t0=$(sql "update idexx_credentials set encrypted_username = null,
	    encrypted_password = null, encrypted_company_id = null,
	    state = 'revoked', revoked_at = now() where user_id = '$u'
	    returning (extract(epoch from clock_timestamp()) * 1000)::bigint")
	while [ -d "/proc/$pid" ] &&
	    ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; do
		sleep 0.001
	done
	t1=$(date +%s%3N)
	echo $((t1 - t0)) | tee -a "$tmp/times"
done
sort -n "$tmp/times" | awk '{ v[NR] = $1 } END {
	printf "revocation to worker gone, %d rounds: median %d ms, " \
	    "p90 %d ms, max %d ms (target < 1000 ms)\n", NR,
	    v[int((NR + 1) / 2)], v[int(NR * 0.9 + 0.999)], v[NR] }'
