#!/bin/sh
# The main job on a built-in default, as far as vetsync goes today:
# validate the example configuration, start vetsyncd with sandboxed
# workers for three clinics, show what confines them, run a job for each
# and show the audit trail, then stop it.
#
# What is not there yet (see README): the IDEXX Neo client and its
# simulator, the database, discharge calls.  The workers started here are
# the real vetsync-worker in its real sandbox; they answer every job with
# "unsupported" because the IDEXX client has not landed, and the
# supervisor treats that as the failure it is (backoff, circuit breaker).
set -eu
top=$(cd "$(dirname "$0")" && pwd)
b="$top/build"
[ -x "$b/vetsyncd" ] || { echo "demo: build first (./setup.sh)" >&2; exit 1; }

echo "== vetsyncd --check-config on deploy/vetsyncd.conf"
"$b/vetsyncd" --check-config -c "$top/deploy/vetsyncd.conf" | grep -v '^#' | grep -v '^$' | head -20
echo "   ..."

tmp=$(mktemp -d /tmp/vetsync-demo.XXXXXX)
chmod 755 "$tmp"
trap 'kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
mkdir -p "$tmp/state" "$tmp/creds"
chmod 700 "$tmp/creds"
printf '# site profile: arrives with the IDEXX client\n' > "$tmp/profile.conf"
user=nobody; group=nogroup
cat > "$tmp/vetsyncd.conf" <<CONF
[idexx]
profile = $tmp/profile.conf
base_url = http://127.0.0.1:18443
[workers]
binary = $b/vetsync-worker
policy_dir = $top/policy
user = $user
group = $group
backoff_initial = 2s
[instance]
name = demo
CONF
for c in clinic-a clinic-b clinic-c; do
	printf 'demo-user\ndemo-password\n' > "$tmp/creds/idexx-$c"
	chmod 600 "$tmp/creds/idexx-$c"
done

echo "== starting vetsyncd"
CREDENTIALS_DIRECTORY="$tmp/creds" "$b/vetsyncd" -c "$tmp/vetsyncd.conf" \
    -S "$tmp/control.sock" -s "$tmp/state" &
pid=$!
i=0
while [ ! -S "$tmp/control.sock" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
ctl() { "$b/vetsyncctl" -c "$tmp/vetsyncd.conf" -S "$tmp/control.sock" "$@"; }

echo "== vetsyncctl policy show (head)"
ctl policy show | head -25
echo "   ..."
for c in clinic-a clinic-b clinic-c; do ctl sync --user "$c"; done
sleep 1
echo "== vetsyncctl status"
ctl status
echo "== audit trail"
cat "$tmp/state/audit.spool"
kill -TERM "$pid"
wait "$pid" && echo "== vetsyncd stopped cleanly"
