#!/bin/sh
# Containment: real vetsyncd, real sandboxed workers (tests/hostile_worker,
# which enters the exact worker policy), real cgroups.  Each misbehaviour
# must be stopped, classified and audited while a well-behaved clinic's
# worker completes its job; the supervisor must keep serving throughout.
. "$top_srcdir/tests/integration/lib.sh"

tap_plan 35

skip_all() {
	for i in $(seq 35); do skip "containment case $i" "$1"; done
	exit 0
}
[ "$(id -u)" -eq 0 ] || skip_all "needs root (cgroups, worker identity)"
# ASan reserves terabytes of address space, which the worker's RLIMIT_AS
# floor refuses by design; the plain build runs this test for real.
grep -q '^#define VS_SANITIZERS 1' "$top_builddir/config.h" &&
    skip_all "sanitizer build: the worker policy's address-space limit refuses ASan"
command -v jq >/dev/null || skip_all "jq is not installed (./setup.sh installs it)"

tmp=$(mktemp -d /tmp/vetsync-containment.XXXXXX)
chmod 755 "$tmp"
name="ct$$"
sock="$tmp/control.sock"
spool="$tmp/state/audit.spool"
mkdir -p "$tmp/state" "$tmp/creds"
chmod 700 "$tmp/creds"
printf 'profile placeholder for the tests\n' > "$tmp/profile.conf"

cat > "$tmp/vetsyncd.conf" <<CONF
[idexx]
profile = $tmp/profile.conf
base_url = http://127.0.0.1:18443
[workers]
binary = $top_builddir/tests/hostile_worker
policy_dir = $top_srcdir/policy
user = nobody
group = nogroup
max_concurrent = 4
memory_max = 64M
cpu_max = 0.5
tasks_max = 16
job_timeout = 10s
silence_timeout = 2s
stop_timeout = 2s
backoff_initial = 1s
backoff_max = 2s
failure_threshold = 3
[instance]
name = $name
CONF

creds() {
	for c in "$@"; do
		printf 'user-%s\nsecret-password-%s\n' "$c" "$c" > "$tmp/creds/idexx-$c"
		chmod 600 "$tmp/creds/idexx-$c"
	done
}

ctl() { "$top_builddir/vetsyncctl" -c "$tmp/vetsyncd.conf" -S "$sock" "$@"; }

# exit_class CLINIC [N]: the class of the Nth (default 1st) worker_exit
exit_class() {
	jq -r --arg c "$1" 'select(.event=="worker_exit" and .clinic==$c) | .class' \
	    "$spool" 2>/dev/null | sed -n "${2:-1}p"
}
has_exit() { [ -n "$(exit_class "$1" "${2:-1}")" ]; }
count_event() {
	jq -r --arg c "$2" --arg e "$1" 'select(.event==$e and .clinic==$c) | .event' \
	    "$spool" 2>/dev/null | wc -l
}
field() {
	jq -r --arg c "$1" --arg f "$2" 'select(.event=="worker_exit" and .clinic==$c) | .[$f]' \
	    "$spool" 2>/dev/null | head -1
}

cleanup() {
	[ -n "${daemon:-}" ] && kill -KILL "$daemon" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

creds ok-1 ok-2 ok-3 crash-1 exit3-1 execve-1 forkbomb-1 ptrace-1 shadow-1 \
    pgconnect-1 membomb-1 cpuburn-1 garbage-1 oversize-1 outofstate-1 \
    wrongjob-1 silent-1 slow-1 invalid-1 slowkill-1

CREDENTIALS_DIRECTORY="$tmp/creds" "$top_builddir/vetsyncd" -d \
    -c "$tmp/vetsyncd.conf" -S "$sock" -s "$tmp/state" 2>"$tmp/vetsyncd.log" &
daemon=$!
if ! wait_for 10 test -S "$sock"; then
	not_ok "vetsyncd starts"
	cat "$tmp/vetsyncd.log" | sed 's/^/# /'
	exit 1
fi
ok "vetsyncd starts and listens"

mech=$(ctl status --json | jq -r .mechanism)
case "$mech" in
cgroup*) ok "status shows the cgroup mechanism ($mech)" ;;
*) not_ok "status shows the cgroup mechanism (got '$mech')" ;;
esac

spares() { ctl status --json | jq -r '.workers[] | select(.state=="spare") | .pid' | sort; }
nspares() { [ "$(spares | wc -l)" -eq 2 ]; }
wait_for 10 nspares
before=$(spares)
check "two spare workers wait ready and sandboxed (workers.prespawn)" nspares

# One well-behaved job first: it takes a spare.
ctl sync --user ok-1 >/dev/null
wait_for 10 has_exit ok-1
check "a well-behaved worker completes cleanly" [ "$(exit_class ok-1)" = clean ]
pid1=$(field ok-1 pid)
pooled=$(jq -r 'select(.event=="sync_started" and .clinic=="ok-1") | .pooled' "$spool")
if [ "$pooled" = true ] && printf '%s\n' "$before" | grep -qx "$pid1"; then
	ok "the job ran in one of the spares (pid $pid1)"
else
	not_ok "the job ran in one of the spares (pid '$pid1', pooled '$pooled', spares: $before)"
fi

# Bad requests on the control socket are refused, and name the problem.
if ! ctl sync --user _spares 2>"$tmp/err" &&
    grep -q "invalid clinic id '_spares'" "$tmp/err" &&
    ! ctl sync --user 'a/b' 2>/dev/null; then
	ok "invalid clinic ids are refused with a message"
else
	not_ok "invalid clinic ids are refused with a message"
fi

# A spare killed from outside is replaced.
wait_for 10 nspares
victim=$(spares | head -1)
kill -KILL "$victim"
replaced() { nspares && ! spares | grep -qx "$victim"; }
wait_for 10 replaced
check "a spare killed from outside is replaced" replaced

# Every misbehaviour at once, with a good clinic among them.
for c in crash-1 exit3-1 execve-1 forkbomb-1 ptrace-1 shadow-1 pgconnect-1 \
    membomb-1 garbage-1 oversize-1 outofstate-1 wrongjob-1 silent-1 ok-2 \
    invalid-1; do
	ctl sync --user "$c" >/dev/null || not_ok "sync $c accepted"
done
for c in crash-1 exit3-1 execve-1 forkbomb-1 ptrace-1 shadow-1 pgconnect-1 \
    membomb-1 garbage-1 oversize-1 outofstate-1 wrongjob-1 silent-1 ok-2 \
    invalid-1; do
	wait_for 20 has_exit "$c" || diag "no exit recorded for $c"
done

check "SIGSEGV is classified as a signal" [ "$(exit_class crash-1)" = signal ]
check "exit code 3 is classified as an error exit" [ "$(exit_class exit3-1)" = error_exit ]
check "execve is a seccomp violation" [ "$(exit_class execve-1)" = seccomp_violation ]
detail=$(field execve-1 detail)
case "$detail" in
*execve*) ok "the violation names the syscall ($detail)" ;;
*"not logged"*) skip "the violation names the syscall" "kernel log not readable" ;;
*) not_ok "the violation names the syscall (got '$detail')" ;;
esac
check "fork is a seccomp violation" [ "$(exit_class forkbomb-1)" = seccomp_violation ]
check "ptrace is a seccomp violation" [ "$(exit_class ptrace-1)" = seccomp_violation ]
if [ "$(exit_class shadow-1)" = clean ] &&
    grep -q 'open /etc/shadow: EACCES' "$tmp/vetsyncd.log"; then
	ok "opening /etc/shadow is refused (EACCES), the worker reports it"
else
	not_ok "opening /etc/shadow is refused (EACCES), the worker reports it"
fi
check "connecting to 127.0.0.1:5432 is refused (EACCES)" \
    grep -q 'connect 127.0.0.1:5432: EACCES' "$tmp/vetsyncd.log"
check "a memory bomb is OOM-killed by the cgroup" [ "$(exit_class membomb-1)" = out_of_memory ]
peak=$(field membomb-1 memory_peak)
check "its peak memory is within the 64M cap (peak $peak)" \
    sh -c "[ -n '$peak' ] && [ '$peak' != null ] && [ '$peak' -le 67108864 ] && [ '$peak' -gt 33554432 ]"
check "a garbage frame is a protocol violation" [ "$(exit_class garbage-1)" = protocol_violation ]
check "an oversized frame is a protocol violation" [ "$(exit_class oversize-1)" = protocol_violation ]
check "a message out of state is a protocol violation" [ "$(exit_class outofstate-1)" = protocol_violation ]
check "a frame for another job is a protocol violation" [ "$(exit_class wrongjob-1)" = protocol_violation ]
check "a silent worker is killed by the silence timeout" [ "$(exit_class silent-1)" = silence_timeout ]
check "a good clinic completes among them" [ "$(exit_class ok-2)" = clean ]
if [ "$(count_event credentials_suspended invalid-1)" -eq 1 ] &&
    [ "$(field invalid-1 result)" = INVALID_CREDENTIALS ] &&
    ctl status | grep -q 'invalid-1 held'; then
	ok "invalid credentials hold the clinic at once"
else
	not_ok "invalid credentials hold the clinic at once"
fi

# The job timeout, with progress flowing (so silence never fires).
ctl sync --user slow-1 >/dev/null
wait_for 20 has_exit slow-1
check "a chatty job past its wall-clock limit is killed (timeout)" [ "$(exit_class slow-1)" = timeout ]

# Failures back off and retry; three in a row open the circuit.
wait_for 20 has_exit exit3-1 3
check "a failing clinic is retried after backoff" [ "$(exit_class exit3-1 2)" = error_exit ]
wait_for 10 sh -c "[ \$(jq -r 'select(.event==\"circuit_open\" and .clinic==\"exit3-1\") | .event' '$spool' | wc -l) -ge 1 ]"
check "three consecutive failures open the circuit breaker" [ "$(count_event circuit_open exit3-1)" -eq 1 ]

# SIGKILL from outside mid-job: classified, then retried.
ctl sync --user slowkill-1 >/dev/null
pid=""
wait_for 10 sh -c "$top_builddir/vetsyncctl -S '$sock' status --json | jq -e '.workers[] | select(.clinic==\"slowkill-1\" and .state==\"running\")' >/dev/null" || true
pid=$(ctl status --json | jq -r '.workers[] | select(.clinic=="slowkill-1") | .pid')
[ -n "$pid" ] && kill -KILL "$pid"
wait_for 10 has_exit slowkill-1
check "SIGKILL of a worker mid-job is classified as a signal" [ "$(exit_class slowkill-1)" = signal ]
wait_for 10 sh -c "[ \$(jq -r 'select(.event==\"sync_started\" and .clinic==\"slowkill-1\") | .event' '$spool' | wc -l) -ge 2 ]"
check "the killed clinic is retried" [ "$(count_event sync_started slowkill-1)" -ge 2 ]

# The CPU cap: a burner gets about half a CPU.
ctl sync --user cpuburn-1 >/dev/null
wait_for 15 has_exit cpuburn-1
cpu=$(field cpuburn-1 cpu_usec)
dur=$(field cpuburn-1 duration_ms)
if [ -n "$cpu" ] && [ "$cpu" != null ] && [ "$dur" -gt 0 ]; then
	share=$((cpu / dur))	# usec per ms = thousandths of a CPU
	check "a CPU burner gets at most ~0.5 CPU (measured $share/1000)" [ "$share" -le 600 ] 
else
	not_ok "a CPU burner's CPU time is measured (cpu '$cpu', duration '$dur')"
fi

# The supervisor is still serving after all of that, and does real work.
ctl sync --user ok-3 >/dev/null
wait_for 10 has_exit ok-3
check "the supervisor still serves after every violation" [ "$(exit_class ok-3)" = clean ]

# A reload with a bad configuration is refused; the daemon keeps running.
cp "$tmp/vetsyncd.conf" "$tmp/good.conf"
sed -i 's/^memory_max = 64M/memory_max = lots/' "$tmp/vetsyncd.conf"
kill -HUP "$daemon"
wait_for 5 grep -q 'reload refused' "$tmp/vetsyncd.log"
check "SIGHUP with a bad configuration is refused and names the problem" \
    sh -c "grep 'reload refused' '$tmp/vetsyncd.log' | grep -q 'memory_max' && kill -0 $daemon"
cp "$tmp/good.conf" "$tmp/vetsyncd.conf"

# SIGTERM with a running job: cancelled, then exit 0.
creds silent-2
ctl sync --user silent-2 >/dev/null 2>&1
kill -TERM "$daemon"
rc=0
wait "$daemon" || rc=$?
daemon=
check "SIGTERM stops vetsyncd with exit status 0" [ "$rc" -eq 0 ]
# Only this test's workers: other builds may run the suite at the same time.
ours() {
	for p in $(pgrep -x hostile_worker); do
		readlink "/proc/$p/exe"
	done | grep -qx "$top_builddir/tests/hostile_worker"
}
if ours; then
	not_ok "no worker process is left behind"
else
	ok "no worker process is left behind"
fi
if grep -q 'secret-password' "$tmp/vetsyncd.log" "$spool"; then
	not_ok "no password in the log or the audit spool"
else
	ok "no password in the log or the audit spool"
fi
[ "$tap_failed" -eq 0 ] || sed 's/^/# log: /' "$tmp/vetsyncd.log" | tail -60
exit 0
