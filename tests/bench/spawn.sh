#!/bin/sh
# Benchmark (not a test): worker spawn-to-ready time and supervisor memory.
#
#   make bench            (from the build directory, as root)
#   BENCH_WORKER=$PWD/vetsync-worker BENCH_CLINICS=200 make bench
#   BENCH_PRESPAWN=0 make bench    (every worker started on demand)
#                         (the real worker: it answers "unsupported")
#
# Starts vetsyncd with tests/hostile_worker (which enters the exact worker
# sandbox and behaves: "ok" clinics), queues N clinics (default 1000), and
# reports, from the audit spool, the median and 90th percentile of
# spawn_to_ready_us (fork -> exec -> sandbox -> Hello received), and the
# supervisor's peak RSS with every clinic known.
set -eu
: "${top_srcdir:?}" "${top_builddir:?}"
n=${BENCH_CLINICS:-1000}
tmp=$(mktemp -d /tmp/vetsync-bench.XXXXXX)
chmod 755 "$tmp"
trap 'kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
mkdir -p "$tmp/state" "$tmp/creds"
chmod 700 "$tmp/creds"
echo profile > "$tmp/profile.conf"
cat > "$tmp/vetsyncd.conf" <<CONF
[idexx]
profile = $tmp/profile.conf
base_url = http://127.0.0.1:18443
[workers]
binary = ${BENCH_WORKER:-$top_builddir/tests/hostile_worker}
policy_dir = $top_srcdir/policy
user = nobody
group = nogroup
max_concurrent = ${BENCH_CONCURRENT:-8}
prespawn = ${BENCH_PRESPAWN:-2}
[instance]
name = bench$$
CONF
i=1
while [ $i -le "$n" ]; do
	printf 'u\np\n' > "$tmp/creds/idexx-ok-$i"
	chmod 600 "$tmp/creds/idexx-ok-$i"
	i=$((i + 1))
done
CREDENTIALS_DIRECTORY="$tmp/creds" "$top_builddir/vetsyncd" \
    -c "$tmp/vetsyncd.conf" -S "$tmp/sock" -s "$tmp/state" 2>"$tmp/log" &
pid=$!
while [ ! -S "$tmp/sock" ]; do sleep 0.05; done
start=$(date +%s.%N)
i=1
while [ $i -le "$n" ]; do
	"$top_builddir/vetsyncctl" -S "$tmp/sock" sync --user "ok-$i" >/dev/null
	i=$((i + 1))
done
while [ "$(grep -c '"event":"worker_exit"' "$tmp/state/audit.spool")" -lt "$n" ]; do
	sleep 0.2
done
end=$(date +%s.%N)
rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
# spawn_to_ready_us: fork to Hello for a worker started on demand; job
# assignment to Job sent for one taken from the spares (its own fork to
# Hello happened earlier, off the job's path).
jq -r 'select(.event=="sync_started") | "\(.job) \(.pooled)"' \
    "$tmp/state/audit.spool" | sort > "$tmp/pooled"
jq -r 'select(.event=="worker_exit") | "\(.job) \(.spawn_to_ready_us)"' \
    "$tmp/state/audit.spool" | sort > "$tmp/times"
join "$tmp/pooled" "$tmp/times" > "$tmp/joined"
stats() {
	awk -v p="$1" '$2 == p { print $3 }' "$tmp/joined" | sort -n > "$tmp/ready"
	cnt=$(wc -l < "$tmp/ready")
	[ "$cnt" -gt 0 ] || { echo "none"; return; }
	med=$(sed -n "$(( (cnt + 1) / 2 ))p" "$tmp/ready")
	p90=$(sed -n "$(( (cnt * 9 + 9) / 10 ))p" "$tmp/ready")
	echo "$cnt jobs, median $med us, p90 $p90 us"
}
ok=$(jq -r 'select(.event=="worker_exit" and .class=="clean") | .class' "$tmp/state/audit.spool" | wc -l)
echo "clinics: $n, clean exits: $ok, wall: $(echo "$end - $start" | bc) s"
echo "ready for the job, from a spare:     $(stats true)"
echo "ready for the job, started on demand: $(stats false)"
echo "supervisor peak RSS with $n clinics known: $rss kB"
