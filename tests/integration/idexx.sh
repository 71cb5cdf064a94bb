#!/bin/sh
# The worker's IDEXX Neo client end to end: tests/worker_drive runs the
# real vetsync-worker, inside its sandbox (the shipped policy), on one job
# against tests/idexx_sim, and each case checks the exact records (against
# the simulator's /__sim/expected ground truth: consultation ids, notes'
# SHA-256, UTC times) or the exact error class.  TAP output.
#
# Needs jq, curl, openssl(1) and sha256sum.  Sanitizer builds run it too:
# the worker's sandbox allows their runtimes (seccomp-sanitizers.policy).

. "$top_srcdir/tests/integration/lib.sh"

sim=$top_builddir/tests/idexx_sim
drive=$top_builddir/tests/worker_drive
policy=$top_srcdir/policy
tz=America/Denver

for tool in jq curl openssl sha256sum; do
	command -v $tool >/dev/null 2>&1 ||
	    { echo "1..0 # SKIP $tool not installed"; exit 0; }
done
[ -x "$sim" ] && [ -x "$drive" ] ||
    { echo "1..0 # SKIP idexx_sim or worker_drive not built"; exit 0; }

tmp=$(mktemp -d)
simpid=
cleanup() {
	[ -n "$simpid" ] && kill "$simpid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

# start_sim [options...]: a fresh simulator on a free port ($port, $url)
start_sim() {
	stop_sim
	rm -f "$tmp/port"
	"$sim" --port 0 --port-file "$tmp/port" --timezone $tz "$@" \
	    >>"$tmp/sim.log" 2>&1 &
	simpid=$!
	wait_for 10 test -s "$tmp/port" || { diag "simulator did not start"; return 1; }
	port=$(cat "$tmp/port")
	scheme=http
	case " $* " in *" --tls-cert "*) scheme=https ;; esac
	url=$scheme://127.0.0.1:$port
	# The window: the last 48 h, clinic-local, as the supervisor sends it.
	wstart=$(TZ=$tz date -d '48 hours ago' '+%Y-%m-%d %H:%M:%S')
	wend=$(TZ=$tz date '+%Y-%m-%d %H:%M:%S')
}

stop_sim() {
	[ -n "$simpid" ] && kill "$simpid" 2>/dev/null && wait "$simpid" 2>/dev/null
	simpid=
}

# stats FIELD [CLINIC]: the simulator's count; CLINIC "total" counts the
# requests no session names a clinic for (the login page)
stats() {
	if [ "${2:-1}" = total ]; then
		curl -sk "$url/__sim/stats" | jq -r ".total.$1 // 0"
	else
		curl -sk "$url/__sim/stats" | jq -r ".clinics[\"${2:-1}\"].$1 // 0"
	fi
}

# drive NAME PROFILE [worker_drive options...]: run one job for clinic 1
# (later options win); output in $tmp/NAME.out, its stderr in NAME.err.
drive() {
	name=$1 prof=$2
	shift 2
	"$drive" --policy "$policy" --url "$url" \
	    --profile-file "$top_srcdir/deploy/$prof-profile.conf" \
	    --timezone $tz --user vet1@clinic1.test --password password-1 \
	    --company c1 --window-start "$wstart" --window-end "$wend" \
	    --request-timeout-ms 5000 --job-timeout-ms 120000 --timeout-s 150 \
	    "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"
	out=$tmp/$name.out
}

result() { jq -r "select(.type == \"job_result\") | .$1 // empty" "$out"; }
count() { jq -r "select(.type == \"$1\") | .type" "$out" | wc -l; }
events() { jq -r "select(.type == \"event\") | .kind" "$out" | grep -c "^$1\$"; }

# expected_ids FILE: the simulator's consultations in the window: "id sha"
expected() {
	curl -sk -G "$url/__sim/expected" --data-urlencode clinic=1 \
	    --data-urlencode "start=$wstart" --data-urlencode "end=$wend" \
	    >"$tmp/expected.json"
	jq -r '.consultations[] | "\(.id) \(.notes_sha256)"' \
	    "$tmp/expected.json" | sort >"$tmp/expected.txt"
}

# got: the worker's consultations: "id sha256(notes)"
got() {
	jq -r 'select(.type == "consultation") |
	    [.consultation_id, (.notes // "" | @base64)] | @tsv' "$out" |
	while IFS="$(printf '\t')" read -r id b64; do
		echo "$id $(printf '%s' "$b64" | base64 -d | sha256sum | cut -c1-64)"
	done | sort >"$tmp/got.txt"
}

# records_match: the same ids, each note byte for byte, and K of them
records_match() {
	want=${1:-50}
	expected
	got
	n=$(wc -l <"$tmp/got.txt")
	if ! cmp -s "$tmp/expected.txt" "$tmp/got.txt"; then
		diag "records differ from /__sim/expected:"
		diff "$tmp/expected.txt" "$tmp/got.txt" | head -5 | sed 's/^/# /'
		return 1
	fi
	[ "$n" -eq "$want" ] || { diag "$n records, want $want"; return 1; }
}

# utc_ok: every consultation's date_utc is its date in the clinic's zone
utc_ok() {
	jq -r 'select(.type == "consultation") | "\(.date)|\(.date_utc // "")"' \
	    "$out" >"$tmp/utc.txt"
	[ -s "$tmp/utc.txt" ] || return 1
	while IFS='|' read -r d u; do
		want=$(date -u -d "@$(TZ=$tz date -d "$d" +%s)" +%Y-%m-%dT%H:%M:%SZ)
		[ "$u" = "$want" ] || { diag "date $d: utc '$u', want $want"; return 1; }
	done <"$tmp/utc.txt"
}

is_status() {
	got_st=$(result status)
	got_cl=$(result error_class)
	if [ "$got_st" = "$1" ] && [ "${2:-}" = "$got_cl" ]; then
		return 0
	fi
	diag "status '$got_st' class '$got_cl' ($(result error_message)), want '$1' '${2:-}'"
	return 1
}

# A case: a line of TAP from a list of conditions that must all hold.
case_ok() {
	desc=$1
	shift
	if "$@"; then ok "$desc"; else not_ok "$desc"; fi
}

all() {
	for c in "$@"; do
		eval "$c" || { diag "failed: $c"; return 1; }
	done
}

tap_plan 31

# --- clean runs --------------------------------------------------------
start_sim --profile neo --consultations 50
drive neo-clean neo
case_ok "neo: 48 h reconciliation gives exactly the 50 consultations, notes byte for byte" \
    all 'is_status OK' records_match '[ "$(result consultations)" -eq 50 ]'
case_ok "neo: date_utc is each date in America/Denver (zoneinfo readable in the sandbox)" utc_ok
case_ok "neo: progress, LOGIN_OK, LOGGED_OUT and one fingerprint per response kind" \
    all '[ "$(events LOGIN_OK)" -eq 1 ]' '[ "$(events LOGGED_OUT)" -eq 1 ]' \
    '[ "$(count progress)" -gt 50 ]' \
    '[ "$(jq -r "select(.type == \"ui_fingerprint\") | .response_kind" "$out" | sort | tr "\n" " ")" = "calendar login page_data " ]'

# Tomorrow's schedule, blocks and rosters left out.
day=$(TZ=$tz date -d tomorrow +%Y-%m-%d)
wstart="$day 00:00:00" wend="$day 23:59:59"
drive neo-schedule neo --kind schedule
curl -sk -G "$url/__sim/expected" --data-urlencode clinic=1 \
    --data-urlencode "start=$wstart" --data-urlencode "end=$wend" |
    jq -r '.appointments[] | select(.is_block == false and .is_roster == false) | .id | tostring' |
    sort >"$tmp/want-appts.txt"
jq -r 'select(.type == "appointment") | .appointment_id' "$out" | sort >"$tmp/got-appts.txt"
case_ok "neo: schedule sync gives tomorrow's appointments, no blocks or rosters" \
    all 'is_status OK' '[ -s "$tmp/want-appts.txt" ]' \
    'cmp -s "$tmp/want-appts.txt" "$tmp/got-appts.txt"' \
    '[ "$(jq -r "select(.type == \"appointment\") | select(.start_utc == null)" "$out" | wc -l)" -eq 0 ]'

start_sim --profile neo
drive neo-validate neo --kind validate
case_ok "neo: credential validation logs in and out, nothing else" \
    all 'is_status OK' '[ "$(events LOGIN_OK)" -eq 1 ]' '[ "$(events LOGGED_OUT)" -eq 1 ]' \
    '[ "$(result requests)" -eq 3 ]' '[ "$(count consultation)" -eq 0 ]'

start_sim --profile prd-html --consultations 50
drive html-clean prd-html
case_ok "prd-html: 48 h reconciliation gives exactly the 50 consultations, notes byte for byte" \
    all 'is_status OK' records_match
case_ok "prd-html: date_utc is each date in America/Denver" utc_ok

# --- sessions ----------------------------------------------------------
start_sim --profile neo --session-max-requests 20
drive neo-expiry neo
case_ok "neo: session expiry mid-run (401) is renewed: all 50, SESSION_EXPIRED and SESSION_RENEWED" \
    all 'is_status OK' records_match '[ "$(events SESSION_EXPIRED)" -ge 1 ]' \
    '[ "$(events SESSION_RENEWED)" -eq "$(events SESSION_EXPIRED)" ]'

start_sim --profile neo --session-max-requests 20 --expiry 302
drive neo-expiry302 neo
case_ok "neo: session expiry by 302 to /login is renewed: all 50" \
    all 'is_status OK' records_match '[ "$(events SESSION_RENEWED)" -ge 1 ]'

start_sim --profile prd-html --session-max-requests 15 --expiry 401
drive html-expiry prd-html
case_ok "prd-html: the .session-expired page is renewed: all 50" \
    all 'is_status OK' records_match '[ "$(events SESSION_RENEWED)" -ge 1 ]'

# A 1 ms session: the calendar may still slip through on the first one, so
# at most two logins and one parallel batch of 8 in between.
start_sim --profile neo --session-ttl-ms 1
drive neo-expiry-always neo
case_ok "neo: expiry right after every login is FAILED 'session', no loop" \
    all 'is_status FAILED session' '[ "$(stats logins)" -le 2 ]' \
    '[ "$(stats requests total)" -le 16 ]'

# --- overload and faults -----------------------------------------------
start_sim --profile neo --rate-429 0.3 --retry-after 1
drive neo-429 neo
case_ok "neo: bursts of 429 with Retry-After: all 50, RATE_LIMITED events" \
    all 'is_status OK' records_match '[ "$(events RATE_LIMITED)" -ge 1 ]'

start_sim --profile neo --rate-5xx 0.1
drive neo-5xx neo
case_ok "neo: occasional 5xx: all 50 after retries" all 'is_status OK' records_match

start_sim --profile neo --rate-5xx 1
drive neo-5xx-always neo
case_ok "neo: a permanent 5xx is FAILED 'http' after 4 attempts, with a snapshot" \
    all 'is_status FAILED http' '[ "$(stats requests total)" -eq 4 ]' '[ "$(count snapshot)" -eq 1 ]'

start_sim --profile neo --slow-ms 3000
drive neo-slow neo --request-timeout-ms 400
# Only data endpoints are slow: login, 4 calendar attempts, logout.
case_ok "neo: answers slower than the request timeout are FAILED 'timeout' after 4 attempts" \
    all 'is_status FAILED timeout' 'result error_message | grep -q "calendar.*4 attempt"' \
    '[ "$(stats requests total)" -le 7 ]'

# --- credentials -------------------------------------------------------
start_sim --profile neo --locked 2
drive neo-badpw neo --password wrong-password
case_ok "neo: a bad password is INVALID_CREDENTIALS after exactly one login attempt" \
    all 'is_status INVALID_CREDENTIALS invalid_credentials' \
    '[ "$(stats failed_logins)" -eq 1 ]' '[ "$(events LOGIN_FAILED)" -eq 1 ]' \
    '[ "$(count consultation)" -eq 0 ]'
drive neo-locked neo --user vet2@clinic2.test --password password-2 --company c2
case_ok "neo: a locked account is INVALID_CREDENTIALS, saying so" \
    all 'is_status INVALID_CREDENTIALS account_locked' \
    'result error_message | grep -q locked' '[ "$(stats failed_logins 2)" -le 1 ]'

# --- markup ------------------------------------------------------------
for v in 1 2; do
	start_sim --profile neo --variant $v
	drive neo-variant$v neo
	case_ok "neo: markup variant $v through the profile's alternatives: all 50" \
	    all 'is_status OK' records_match
	start_sim --profile prd-html --variant $v
	drive html-variant$v prd-html
	case_ok "prd-html: markup variant $v through the locators' fallbacks: all 50" \
	    all 'is_status OK' records_match
done

start_sim --profile neo --ui-changed
drive neo-ui neo
snap=$(jq -r 'select(.type == "snapshot") | .body | if type == "string" then . else .hex end' "$out")
case_ok "neo: a UI change is UI_CHANGED naming the field, with a redacted snapshot" \
    all 'is_status UI_CHANGED ui_changed' '[ "$(count snapshot)" -eq 1 ]' \
    'result error_message | grep -Eq "[a-z_]+\.[a-z_]+"' \
    '! printf "%s" "$snap" | grep -q password-1' \
    '! printf "%s" "$snap" | grep -Eq "neo_session=[A-Za-z0-9]"'

# --- hostile bodies ----------------------------------------------------
start_sim --profile neo --body truncated
drive neo-truncated neo
case_ok "neo: a truncated body is UI_CHANGED, no crash" \
    all 'is_status UI_CHANGED ui_changed' '[ "$(count snapshot)" -eq 1 ]'
start_sim --profile neo --body garbage
drive neo-garbage neo
# Random bytes are not UTF-8 before they are not JSON.
case_ok "neo: a garbage body is FAILED 'encoding', with a snapshot, no crash" \
    all 'is_status FAILED encoding' '[ "$(count snapshot)" -eq 1 ]'
start_sim --profile neo --body huge
drive neo-huge neo --response-max 1048576
case_ok "neo: a huge body is FAILED 'too_large' within the 1 MiB cap" \
    all 'is_status FAILED too_large' \
    '[ "$(jq -r "select(.type == \"worker\") | .maxrss_kb" "$out")" -lt 65536 ]'
start_sim --profile neo --body non-utf8
drive neo-nonutf8 neo
case_ok "neo: a JSON body that is not UTF-8 is FAILED 'encoding', not records silently dropped" \
    all 'is_status FAILED encoding' '[ "$(count snapshot)" -eq 1 ]' \
    '[ "$(count consultation)" -eq 0 ]'
start_sim --profile prd-html --body non-utf8
drive html-nonutf8 prd-html
case_ok "prd-html: non-UTF-8 pages are UI_CHANGED naming the field, no crash" \
    all 'is_status UI_CHANGED ui_changed' '[ "$(count snapshot)" -eq 1 ]'

# --- TLS ---------------------------------------------------------------
(
	cd "$tmp" &&
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=vetsync-test-ca \
	    -keyout ca.key -out ca.pem -addext basicConstraints=critical,CA:TRUE \
	    -addext keyUsage=critical,keyCertSign,cRLSign &&
	openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 \
	    -keyout srv.key -out srv.csr &&
	printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >ext.cnf &&
	openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
	    -days 2 -extfile ext.cnf -out srv.pem
) >"$tmp/openssl.log" 2>&1
start_sim --profile neo --tls-cert "$tmp/srv.pem" --tls-key "$tmp/srv.key"
drive tls-untrusted neo
case_ok "TLS: a certificate from an untrusted CA is refused: FAILED 'tls'" \
    all 'is_status FAILED tls' '[ "$(count consultation)" -eq 0 ]'
drive tls-trusted neo --ca-bundle "$tmp/ca.pem"
case_ok "TLS: the same server with the test CA as the job's ca_bundle: all 50" \
    all 'is_status OK' records_match

# --- cancel ------------------------------------------------------------
start_sim --profile neo --latency-ms 200
drive neo-cancel neo --cancel-after-ms 600 --max-parallel 2
case_ok "cancel mid-job: CANCELLED, the worker exits cleanly" \
    all 'is_status CANCELLED cancelled' \
    '[ "$(jq -r "select(.type == \"worker\") | .exit" "$out")" -eq 0 ]'
stop_sim

# --- everything, everywhere --------------------------------------------
leak=0
for f in "$tmp"/*.out "$tmp"/*.err; do
	if grep -q -e password-1 -e password-2 -e wrong-password "$f"; then
		diag "a password in $(basename "$f")"
		leak=1
	fi
done
sigs=$(cat "$tmp"/*.out | jq -r 'select(.type == "worker") | select(.signal != 0) | .signal' | wc -l)
case_ok "no password in any message or log line; no worker killed by a signal ($sigs)" \
    all '[ $leak -eq 0 ]' '[ "$sigs" -eq 0 ]'
