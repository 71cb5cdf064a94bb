#!/bin/sh
# Benchmark (not a test; "make bench-idexx"): one clinic's notes
# reconciliation, 50 consultations over the last 48 h, against
# tests/idexx_sim with 20 ms of latency on every request, run by the real,
# sandboxed vetsync-worker through tests/worker_drive.  Prints wall time,
# the worker's peak RSS (wait4 ru_maxrss) and the bytes transferred, with
# the targets of DESIGN §8.  RUNS=N repeats it (default 5) and prints the
# median; PARALLEL and RATE set the job's limits (default 8, 100/s).

: "${top_srcdir:?}" "${top_builddir:?}"
sim=$top_builddir/tests/idexx_sim
drive=$top_builddir/tests/worker_drive
tz=America/Denver
runs=${RUNS:-5}

tmp=$(mktemp -d)
simpid=
trap '[ -n "$simpid" ] && kill $simpid 2>/dev/null; rm -rf "$tmp"' EXIT

"$sim" --port 0 --port-file "$tmp/port" --timezone $tz --consultations 50 \
    --latency-ms 20 >"$tmp/sim.log" 2>&1 &
simpid=$!
i=0
while [ ! -s "$tmp/port" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
url=http://127.0.0.1:$(cat "$tmp/port")

i=0
while [ $i -lt "$runs" ]; do
	i=$((i + 1))
	curl -s "$url/__sim/stats" | jq -r '.clinics["1"].bytes // 0' >"$tmp/before"
	"$drive" --policy "$top_srcdir/policy" --url "$url" \
	    --profile-file "$top_srcdir/deploy/neo-profile.conf" --timezone $tz \
	    --user vet1@clinic1.test --password password-1 --company c1 \
	    --window-start "$(TZ=$tz date -d '48 hours ago' '+%Y-%m-%d %H:%M:%S')" \
	    --window-end "$(TZ=$tz date '+%Y-%m-%d %H:%M:%S')" \
	    --max-parallel "${PARALLEL:-8}" --request-rate "${RATE:-100}" \
	    >"$tmp/run.out" 2>"$tmp/run.err" || { cat "$tmp/run.err"; exit 1; }
	sent=$(( $(curl -s "$url/__sim/stats" | jq -r '.clinics["1"].bytes // 0') - $(cat "$tmp/before") ))
	jq -r --arg sent "$sent" '
	    select(.type == "job_result" or .type == "worker") |
	    if .type == "job_result" then
	        "\(.status) \(.consultations) \(.requests) \(.bytes_received) \($sent) \(.total_ms)"
	    else "\(.wall_ms) \(.maxrss_kb) \(.pss_kb) \(.private_kb)" end' "$tmp/run.out" |
	    tr '\n' ' ' >>"$tmp/all"
	echo >>"$tmp/all"
done

# status consultations requests bytes_recv sim_bytes job_ms wall_ms rss_kb
# pss_kb private_kb
sort -n -k7 "$tmp/all" | awk -v n="$runs" '
	{ row[NR] = $0 }
	END {
		split(row[int((n + 1) / 2)], f, " ")
		printf "idexx bench: one clinic, 50 consultations, 20 ms latency, %d runs (median by wall time)\n", n
		printf "  status %s, %d consultations, %d requests\n", f[1], f[2], f[3]
		printf "  wall time (spawn to exit)   %6.3f s   target < 2 s\n", f[7] / 1000
		printf "  job time (JobResult)        %6.3f s\n", f[6] / 1000
		printf "  worker peak RSS             %6.1f MB  target < 12 MB (RSS counts shared library pages)\n", f[8] / 1024
		printf "  worker PSS at the end       %6.1f MB  (DESIGN: < 8 MB charged)\n", f[9] / 1024
		printf "  worker private at the end   %6.1f MB\n", f[10] / 1024
		printf "  bytes received (worker)     %6.2f MB  target < 2 MB\n", f[4] / 1048576
		printf "  bytes sent (simulator)      %6.2f MB\n", f[5] / 1048576
	}'
