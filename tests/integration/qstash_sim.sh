#!/bin/sh
# Self-test of the simulator's QStash and VAPI stand-ins (tests/sim/qstash.c,
# tests/sim/vapi.c) with curl(1), jq and tests/hook_receiver, which logs each
# delivery and checks its Upstash-Signature with supervisor/qstash_verify.c:
# publish and its refusals, delays on a clock the test moves, dedup, signed
# deliveries and their headers, cancel, retries and 489, duplicates, the
# publish failure knobs, key rolling and bad signatures, and VAPI's
# create-call validation and listing.
. "$top_srcdir/tests/integration/lib.sh"

SIM=$top_builddir/tests/idexx_sim
RECV=$top_builddir/tests/hook_receiver
TOKEN=qstash-test-token-4f2a
CK=sig_test_current_Vb3n
NK=sig_test_next_Qw8e
VAPI=vapi-test-key-77
tmp=$(mktemp -d)
pid=
rpids=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null
	for p in $rpids; do kill "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

for tool in curl jq base64; do
	if ! command -v $tool >/dev/null 2>&1; then
		echo "1..0 # SKIP $tool not installed"
		exit 0
	fi
done

tap_plan 62

# --- helpers ---------------------------------------------------------------
mkdir -p "$tmp/bin"
printf '#!/bin/sh\nexec curl -s --max-time 30 "$@"\n' >"$tmp/bin/C"
chmod +x "$tmp/bin/C"
PATH=$tmp/bin:$PATH

"$SIM" --port 0 --port-file "$tmp/port" --qstash-token "$TOKEN" \
    --qstash-current-key "$CK" --qstash-next-key "$NK" --vapi-key "$VAPI" \
    2>>"$tmp/sim.log" &
pid=$!
if wait_for 10 test -s "$tmp/port"; then
	U=http://127.0.0.1:$(cat "$tmp/port")
	ok "simulator starts with QStash and VAPI"
else
	not_ok "simulator starts with QStash and VAPI"
	exit 1
fi

# recv NAME [ARGS...]: start a receiver; sets RU (its base URL).
recv() {
	name=$1
	shift
	"$RECV" --port-file "$tmp/$name.port" --log "$tmp/$name.jsonl" \
	    --current-key "$CK" --next-key "$NK" "$@" 2>>"$tmp/recv.log" &
	rpids="$rpids $!"
	touch "$tmp/$name.jsonl"
	wait_for 10 test -s "$tmp/$name.port" || return 1
	RU=http://127.0.0.1:$(cat "$tmp/$name.port")
}
lines() { wc -l <"$tmp/$1.jsonl" | tr -d ' '; }
has_lines() { [ "$(lines "$1")" -ge "$2" ]; }
# line NAME N JQ: apply JQ to the Nth request NAME received.
line() { sed -n "$2p" "$tmp/$1.jsonl" | jq -r "$3"; }

ctl() { C -X POST --data "$1" "$U/__sim/control"; }
ctl_code() {
	C -o /dev/null -w '%{http_code}' -X POST --data "$1" "$U/__sim/control"
}
qs() { C "$U/__sim/qstash" | jq -r "$1"; }
msg() { C -G --data-urlencode "id=$1" "$U/__sim/qstash" | jq -r ".messages[0] | $2"; }
simnow() { qs .now; }

# pub DEST [curl args...]: publish with the token; prints "code body".
pub() {
	dest=$1
	shift
	C -o "$tmp/pub.out" -D "$tmp/pub.h" -w '%{http_code}' -X POST \
	    -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
	    "$@" "$U/v2/publish/$dest"
	printf ' '
	cat "$tmp/pub.out"
}
id_of() { printf '%s' "$1" | sed 's/^[0-9]* //' | jq -r .messageId; }
code_of() { printf '%s' "${1%% *}"; }

# b64url_json PART: decode one JWT part.
b64url_json() {
	s=$(printf '%s' "$1" | tr '_-' '/+')
	case $(( ${#s} % 4 )) in 2) s="$s==" ;; 3) s="$s=" ;; esac
	printf '%s' "$s" | base64 -d
}

recv r1 || { not_ok "receiver starts"; exit 1; }
R1=$RU
ok "receiver starts"

# --- publish: refusals -------------------------------------------------------
r=$(C -o "$tmp/o" -w '%{http_code}' -X POST --data '{}' "$U/v2/publish/$R1/a")
check "publish without a token: 401 with an error body" sh -c \
    "[ $r = 401 ] && jq -e '.error | length > 0' '$tmp/o' >/dev/null"
r=$(C -o /dev/null -w '%{http_code}' -X POST -H 'Authorization: Bearer nope' \
    --data '{}' "$U/v2/publish/$R1/a")
check "publish with a wrong token: 401" [ "$r" = 401 ]
r=$(pub "ftp://example.test/x" --data '{}')
check "publish to a destination without http(s): 400 naming it ($r)" sh -c \
    "[ '$(code_of "$r")' = 400 ] && grep -q 'destination' '$tmp/pub.out'"
r=$(pub "$R1/a" -H 'Upstash-Delay: 10x' --data '{}')
check "bad Upstash-Delay: 400 naming the header" sh -c \
    "[ '$(code_of "$r")' = 400 ] && grep -q 'Upstash-Delay' '$tmp/pub.out'"
r=$(pub "$R1/a" -H 'Upstash-Not-Before: soon' --data '{}')
check "bad Upstash-Not-Before: 400" [ "$(code_of "$r")" = 400 ]
r=$(pub "$R1/a" -H 'Upstash-Retries: -1' --data '{}')
check "bad Upstash-Retries: 400" [ "$(code_of "$r")" = 400 ]

# --- a delayed, deduplicated, forwarded message -------------------------------
nb=$(( $(simnow) + 2 * 86400 ))
body='{"hello":"world"}'
r=$(pub "$R1/hooks/discharge?case=7" -H "Upstash-Not-Before: $nb" \
    -H 'Upstash-Deduplication-Id: discharge-7' -H 'Upstash-Forward-X-Case: 7' \
    -H 'Upstash-Retries: 2' --data "$body")
id=$(id_of "$r")
check "publish: 200 with a msg_ id ($r)" sh -c \
    "[ '$(code_of "$r")' = 200 ] && expr '$id' : 'msg_' >/dev/null"
r=$(pub "$R1/hooks/discharge?case=7" -H "Upstash-Not-Before: $nb" \
    -H 'Upstash-Deduplication-Id: discharge-7' --data "$body")
check "same dedup id: 202 with the first message's id" sh -c \
    "[ '$(code_of "$r")' = 202 ] && [ '$(id_of "$r")' = '$id' ]"
check "the listing: pending, not_before, dedup id, retries" [ \
    "$(msg "$id" '[.state, .not_before, .dedup_id, .retries] | join(" ")')" \
    = "pending $nb discharge-7 2" ]
check "the listing keeps headers received, Authorization redacted" [ \
    "$(msg "$id" '.headers.Authorization + " " + .headers["Upstash-Forward-X-Case"]')" \
    = "[redacted] 7" ]
check "counts: 1 enqueued, 1 deduplicated" [ \
    "$(qs '[.stats.published, .stats.deduplicated] | join(" ")')" = "1 1" ]
sleep 0.5
check "not delivered before its time" [ "$(lines r1)" = 0 ]

ctl '{"qstash_advance": 172800}' >/dev/null
if wait_for 10 has_lines r1 1; then
	ok "delivered once the clock passes Upstash-Not-Before"
else
	not_ok "delivered once the clock passes Upstash-Not-Before"
fi
check "delivery: POST to the destination with its query and the body" [ \
    "$(line r1 1 '.method + " " + .uri + " " + .body')" = \
    "POST /hooks/discharge?case=7 $body" ]
check "delivery headers: User-Agent, Message-Id, Retried 0, Content-Type" [ \
    "$(line r1 1 '.headers | [.["User-Agent"], .["Upstash-Message-Id"], .["Upstash-Retried"], .["Content-Type"]] | join(" ")')" \
    = "Upstash-QStash $id 0 application/json" ]
check "forwarded header arrives without its prefix" [ \
    "$(line r1 1 '.headers["X-Case"]')" = 7 ]
check "Upstash-Signature verifies with qstash_verify" [ \
    "$(line r1 1 .verify)" = ok ]
jwt=$(line r1 1 '.headers["Upstash-Signature"]')
b64url_json "$(echo "$jwt" | cut -d. -f2)" >"$tmp/claims"
check "claims: iss Upstash, sub = destination, exp = iat + 300" [ \
    "$(jq -r '[.iss, .sub, (.exp - .iat), (.nbf == .iat), (.jti | length > 0)] | join(" ")' "$tmp/claims")" \
    = "Upstash $R1/hooks/discharge?case=7 300 true true" ]
check "body claim: CONTRACTS §1 vector for {\"hello\":\"world\"}" [ \
    "$(jq -r .body "$tmp/claims")" = \
    "k6I5cakU5erL8KjSUVTNownDwccvu5kU1Hxg88toFYg=" ]
b64url_json "$(echo "$jwt" | cut -d. -f1)" >"$tmp/hdr"
check "JWT header: HS256, JWT" [ \
    "$(jq -r '.alg + " " + .typ' "$tmp/hdr")" = "HS256 JWT" ]
check "listing: delivered after 1 attempt" [ \
    "$(msg "$id" '.state + " " + (.attempts | tostring)')" = "delivered 1" ]

# --- cancel -----------------------------------------------------------------
r=$(C -o /dev/null -w '%{http_code}' -X DELETE -H "Authorization: Bearer $TOKEN" \
    "$U/v2/messages/$id")
check "cancel after delivery: 404" [ "$r" = 404 ]
r=$(pub "$R1/c" -H 'Upstash-Delay: 1d10h30m' --data '{}')
cid=$(id_of "$r")
check "Upstash-Delay 1d10h30m: due 124200 s later" [ \
    "$(msg "$cid" '.not_before - .created')" = 124200 ]
d1=$(C -o /dev/null -w '%{http_code}' -X DELETE -H "Authorization: Bearer $TOKEN" "$U/v2/messages/$cid")
d2=$(C -o /dev/null -w '%{http_code}' -X DELETE -H "Authorization: Bearer $TOKEN" "$U/v2/messages/$cid")
d3=$(C -o /dev/null -w '%{http_code}' -X DELETE "$U/v2/messages/$cid")
check "cancel: 200, then 404; without the token 401 ($d1 $d2 $d3)" \
    [ "$d1 $d2 $d3" = "200 404 401" ]
a=$(id_of "$(pub "$R1/b1" -H 'Upstash-Delay: 1d' --data '{}')")
b=$(id_of "$(pub "$R1/b2" -H 'Upstash-Delay: 1d' --data '{}')")
r=$(C -X DELETE -H "Authorization: Bearer $TOKEN" \
    "$U/v2/messages?messageIds=$a&messageIds=$b" | jq -r .cancelled)
check "bulk cancel by ids: {\"cancelled\":2}" [ "$r" = 2 ]
ctl '{"qstash_advance": 200000}' >/dev/null
sleep 0.5
check "cancelled messages are never delivered" sh -c \
    "[ $(lines r1) = 1 ] && [ '$(msg "$cid" .state)' = cancelled ]"

# --- dedup: content based, and the window -----------------------------------
r1=$(pub "$R1/cb" -H 'Upstash-Content-Based-Deduplication: true' -H 'Upstash-Delay: 1h' --data '{"n":1}')
r2=$(pub "$R1/cb" -H 'Upstash-Content-Based-Deduplication: true' -H 'Upstash-Delay: 1h' --data '{"n":1}')
r3=$(pub "$R1/cb" -H 'Upstash-Content-Based-Deduplication: true' -H 'Upstash-Delay: 1h' --data '{"n":2}')
check "content-based dedup: same content 202, other content 200" [ \
    "$(code_of "$r1") $(code_of "$r2") $(code_of "$r3")" = "200 202 200" ]
ctl '{"qstash_advance": 601}' >/dev/null
r=$(pub "$R1/late" -H 'Upstash-Deduplication-Id: discharge-7' -H 'Upstash-Delay: 1d' --data '{}')
check "dedup window (10 min) over: the same id is enqueued again" sh -c \
    "[ '$(code_of "$r")' = 200 ] && [ '$(id_of "$r")' != '$id' ]"

# --- retries, on a fast clock ---------------------------------------------------
ctl '{"qstash_clock_scale": 1000}' >/dev/null
recv r2 --answers 500,502,200 || not_ok "receiver r2 starts"
R2=$RU
id2=$(id_of "$(pub "$R2/retry" --data '{"r":2}')")
wait_for 20 has_lines r2 3
check "non-2xx retried: Upstash-Retried 0, 1, 2, then delivered" [ \
    "$(jq -r '.headers["Upstash-Retried"]' "$tmp/r2.jsonl" | tr '\n' ' ')$(msg "$id2" .state)" \
    = "0 1 2 delivered" ]
gap=$(( $(line r2 3 .at_ms) - $(line r2 2 .at_ms) ))
check "backoff grows: 2nd retry waited e^5 s = 148 s of clock ($gap ms at 1000x)" \
    [ "$gap" -ge 140 ]
recv r3 --answers 500 || not_ok "receiver r3 starts"
R3=$RU
id3=$(id_of "$(pub "$R3/fail" -H 'Upstash-Retries: 1' --data '{}')")
wait_for 20 sh -c "[ \"\$(C -G --data-urlencode id=$id3 $U/__sim/qstash | jq -r .messages[0].state)\" = failed ]"
check "Upstash-Retries 1: 2 attempts, then failed" [ \
    "$(lines r3) $(msg "$id3" '.state + " " + (.attempts | tostring)')" = "2 failed 2" ]
recv r4 --answers 489,200 || not_ok "receiver r4 starts"
R4=$RU
id4=$(id_of "$(pub "$R4/nr" --data '{}')")
sleep 1
check "489 + Upstash-NonRetryable-Error: no retry, failed" [ \
    "$(lines r4) $(msg "$id4" .state)" = "1 failed" ]
port=$(cat "$tmp/r3.port")
kill $(echo $rpids | awk '{print $3}') 2>/dev/null
id5=$(id_of "$(pub "http://127.0.0.1:$port/gone" -H 'Upstash-Retries: 1' --data '{}')")
wait_for 20 sh -c "[ \"\$(C -G --data-urlencode id=$id5 $U/__sim/qstash | jq -r .messages[0].state)\" = failed ]"
check "a refused connection is a failed attempt, retried (status 0 twice)" [ \
    "$(msg "$id5" '[.history[].status] | join(",")')" = "0,0" ]
ctl '{"qstash_clock_scale": 1}' >/dev/null

# --- duplicates ---------------------------------------------------------------
recv r5 || not_ok "receiver r5 starts"
R5=$RU
ctl '{"qstash_duplicate": 1}' >/dev/null
id6=$(id_of "$(pub "$R5/dup" --data '{"d":1}')")
wait_for 10 has_lines r5 2
check "duplicate knob: the message arrives twice with one message id" [ \
    "$(jq -r '.headers["Upstash-Message-Id"]' "$tmp/r5.jsonl" | sort -u)" = "$id6" ]
ctl '{"qstash_duplicate": 1, "qstash_duplicate_concurrent": true}' >/dev/null
recv r6 --delay-ms 300 || not_ok "receiver r6 starts"
R6=$RU
pub "$R6/dup2" --data '{"d":2}' >/dev/null
wait_for 10 has_lines r6 2
gap=$(( $(line r6 2 .at_ms) - $(line r6 1 .at_ms) ))
check "concurrent duplicates arrive together (${gap} ms apart, receiver takes 300)" \
    [ "$gap" -lt 250 ]
check "stats count 2 duplicates" [ "$(qs .stats.duplicates)" = 2 ]

# --- publish failure knobs ------------------------------------------------------
ctl '{"qstash_fail_next": 1, "qstash_fail_code": 429, "qstash_retry_after": 7}' >/dev/null
r=$(pub "$R5/x" -H 'Upstash-Delay: 1d' --data '{}')
check "429 with Retry-After and Burst-RateLimit-Remaining 0" sh -c "
    [ '$(code_of "$r")' = 429 ] && grep -qi '^Retry-After: 7' '$tmp/pub.h' &&
    grep -qi '^Burst-RateLimit-Remaining: 0' '$tmp/pub.h' &&
    grep -qi '^Burst-RateLimit-Reset: [0-9]' '$tmp/pub.h'"
ctl '{"qstash_fail_next": 2, "qstash_fail_code": 503}' >/dev/null
c1=$(code_of "$(pub "$R5/x" -H 'Upstash-Delay: 1d' --data '{}')")
c2=$(code_of "$(pub "$R5/x" -H 'Upstash-Delay: 1d' --data '{}')")
c3=$(code_of "$(pub "$R5/x" -H 'Upstash-Delay: 1d' --data '{}')")
check "fail next 2 with 503: 503 503 200 ($c1 $c2 $c3)" [ "$c1 $c2 $c3" = "503 503 200" ]
ctl '{"qstash_rate_5xx": 1.0}' >/dev/null
c1=$(code_of "$(pub "$R5/x" -H 'Upstash-Delay: 1d' --data '{}')")
ctl '{"qstash_rate_5xx": 0}' >/dev/null
check "rate_5xx 1.0: every publish 500" [ "$c1" = 500 ]
ctl '{"qstash_down": "503"}' >/dev/null
c1=$(code_of "$(pub "$R5/x" -H 'Upstash-Delay: 1d' --data '{}')")
ctl '{"qstash_down": "close"}' >/dev/null
curl -s --max-time 10 -o /dev/null -X POST -H "Authorization: Bearer $TOKEN" \
    --data '{}' "$U/v2/publish/$R5/x"
c2=$?
ctl '{"qstash_down": false}' >/dev/null
c3=$(code_of "$(pub "$R5/x" -H 'Upstash-Delay: 1d' --data '{}')")
check "down: 503; closed without an answer (curl exit $c2); back up: 200" \
    [ "$c1 $c2 $c3" = "503 52 200" ]
ctl '{"qstash_slow_ms": 600}' >/dev/null
t=$(C -o /dev/null -w '%{time_total}' -X POST -H "Authorization: Bearer $TOKEN" \
    -H 'Upstash-Delay: 1d' --data '{}' "$U/v2/publish/$R5/x")
ctl '{"qstash_slow_ms": 0}' >/dev/null
check "slow knob: publish answered after ${t}s" awk -v t="$t" 'BEGIN { exit !(t >= 0.55) }'
r=$(ctl_code '{"qstash_fail_next": 1, "latency_ms": "x"}')
c1=$(code_of "$(pub "$R5/x" -H 'Upstash-Delay: 1d' --data '{}')")
check "a control request bad anywhere changes nothing ($r, then $c1)" [ "$r $c1" = "400 200" ]
r=$(ctl_code '{"qstash_nonsense": 1}')
check "unknown qstash knob: 400" [ "$r" = 400 ]
check "messages=0: counters and knobs only, no key among them" sh -c "
    C '$U/__sim/qstash?messages=0' >'$tmp/k' &&
    jq -e '(.messages | length) == 0 and .knobs.sign == \"current\" and
    .knobs.dedup_window_s == 600 and .stats.publishes > 0' '$tmp/k' >/dev/null &&
    ! grep -q -e '$CK' -e '$NK' -e '$TOKEN' '$tmp/k'"

# --- signatures -------------------------------------------------------------------
recv r7 || not_ok "receiver r7 starts"
R7=$RU
ctl '{"qstash_sign": "next"}' >/dev/null
pub "$R7/s1" --data '{"s":1}' >/dev/null
ctl '{"qstash_sign": "corrupt"}' >/dev/null
pub "$R7/s2" --data '{"s":2}' >/dev/null
ctl '{"qstash_sign": "unknown"}' >/dev/null
pub "$R7/s3" --data '{"s":3}' >/dev/null
ctl '{"qstash_sign": "current", "qstash_sign_skew": -600}' >/dev/null
pub "$R7/s4" --data '{"s":4}' >/dev/null
ctl '{"qstash_sign_skew": 0, "qstash_roll_keys": "sig_test_after_roll"}' >/dev/null
pub "$R7/s5" --data '{"s":5}' >/dev/null
wait_for 10 has_lines r7 5
v() { jq -r "select(.uri == \"/$1\") | .verify" "$tmp/r7.jsonl"; }
check "signed with the next key: verifies" [ "$(v s1)" = ok ]
check "corrupted signature: refused" sh -c "jq -r 'select(.uri == \"/s2\") | .verify' '$tmp/r7.jsonl' | grep -q 'does not match'"
check "signed with an unknown key: refused" sh -c "jq -r 'select(.uri == \"/s3\") | .verify' '$tmp/r7.jsonl' | grep -q 'does not match'"
check "signed 10 min in the past: expired" sh -c "jq -r 'select(.uri == \"/s4\") | .verify' '$tmp/r7.jsonl' | grep -q 'expired'"
check "after a key roll the old next key signs, and verifies" [ "$(v s5)" = ok ]

# --- VAPI ---------------------------------------------------------------------------
call() {
	C -o "$tmp/call.out" -w '%{http_code}' -X POST \
	    -H "Authorization: Bearer ${KEY:-$VAPI}" \
	    -H 'Content-Type: application/json' --data "$1" "$U/call"
}
good='{"assistantId":"asst_1","phoneNumberId":"pn_1","customer":{"number":"+15551234567","name":"Ann Lee"},"assistantOverrides":{"variableValues":{"petName":"Rex","clinicName":"Clinic 1"}},"name":"discharge 7"}'
r=$(KEY=wrong call "$good")
check "VAPI: wrong key 401" [ "$r" = 401 ]
r=$(call "$good")
check "VAPI: create-call 201, queued outboundPhoneCall with an id" sh -c "
    [ $r = 201 ] && jq -e '.status == \"queued\" and .type == \"outboundPhoneCall\" and (.id | length == 36) and .orgId and .createdAt and .assistantOverrides.variableValues.petName == \"Rex\"' '$tmp/call.out' >/dev/null"
r=$(call '{"assistantId":"a","phoneNumberId":"p","customer":{}}')
check "VAPI: no customer.number: 400 naming it" sh -c \
    "[ $r = 400 ] && jq -e '.message[0] | test(\"customer.number\")' '$tmp/call.out' >/dev/null"
r1=$(call '{"assistantId":"a","phoneNumberId":"p","customer":{"number":"555-1234"}}')
r2=$(call '{"assistantId":"a","phoneNumberId":"p","customer":{"number":"555-1234","numberE164CheckEnabled":false}}')
check "VAPI: non-E.164 400, unless numberE164CheckEnabled false ($r1 $r2)" [ "$r1 $r2" = "400 201" ]
r=$(call '{"assistantId":"a","phoneNumberId":"p","customer":{"number":"+15551234567"},"metadata":{"case":7}}')
check "VAPI: top-level metadata refused (not in CreateCallDTO)" sh -c \
    "[ $r = 400 ] && grep -q 'metadata should not exist' '$tmp/call.out'"
r1=$(call '{"phoneNumberId":"p","customer":{"number":"+15551234567"}}')
r2=$(call "{\"assistantId\":\"a\",\"phoneNumberId\":\"p\",\"customer\":{\"number\":\"+15551234567\"},\"name\":\"$(printf '%041d' 0)\"}")
r3=$(call 'not json')
check "VAPI: no assistant, a 41-char name, not JSON: 400 ($r1 $r2 $r3)" [ "$r1 $r2 $r3" = "400 400 400" ]
ctl '{"vapi_fail_next": 2, "vapi_fail_code": 429}' >/dev/null
r1=$(call "$good")
ctl '{"vapi_fail_next": 0, "vapi_rate_5xx": 1.0}' >/dev/null
r2=$(call "$good")
ctl '{"vapi_rate_5xx": 0}' >/dev/null
r3=$(call "$good")
check "VAPI knobs: 429, 500, then 201 ($r1 $r2 $r3)" [ "$r1 $r2 $r3" = "429 500 201" ]
check "/__sim/vapi lists each accepted call: 2 to +15551234567" [ \
    "$(C "$U/__sim/vapi" | jq -r '[.calls[] | select(.customer.number == "+15551234567")] | length')" = 2 ]

ctl '{"vapi_slow_ms": 500}' >/dev/null
t=$(C -o /dev/null -w '%{time_total}' -X POST -H "Authorization: Bearer $VAPI" \
    --data "$good" "$U/call")
ctl '{"vapi_slow_ms": 0}' >/dev/null
check "VAPI slow knob: answered after ${t}s" awk -v t="$t" 'BEGIN { exit !(t >= 0.45) }'
ctl '{"qstash_reset": true, "vapi_reset": true}' >/dev/null
check "qstash_reset and vapi_reset forget messages, calls and counters" [ \
    "$(qs '[(.messages | length), .stats.publishes] | join(" ")') $(C "$U/__sim/vapi" | jq -r '.calls | length')" \
    = "0 0 0" ]

if kill "$pid" && wait "$pid"; then
	ok "simulator shuts down cleanly"
else
	not_ok "simulator shuts down cleanly"
fi
pid=
exit 0
