#!/bin/sh
# Credentials at rest against the product's own code: stored text that the
# PRD's AESEncryption (tests/crypto/aes-node.js, run by Node's crypto)
# wrote decrypts with credcrypt_tool (supervisor/credcrypt.c), and what the
# tool writes decrypts in Node, for empty, ASCII, multi-byte UTF-8, 1 KiB
# and 4 KiB plaintexts under two key ids.  Failures (tampering, a wrong or
# missing key, a refused key file, garbage) exit 1 with a message that
# names what failed and shows neither the secret nor any plaintext.  A
# thousand rows derive the key once.
. "$top_srcdir/tests/integration/lib.sh"

tool="$top_builddir/tests/credcrypt_tool"
js="$top_srcdir/tests/crypto/aes-node.js"
nplain=6
tap_plan $((2 * nplain + 14))

if ! command -v node >/dev/null 2>&1; then
	i=0
	while [ $i -lt $((2 * nplain + 14)) ]; do
		skip "credcrypt against Node's crypto" \
		    "node is not installed (Debian package nodejs)"
		i=$((i + 1))
	done
	exit 0
fi

tmp=$(mktemp -d /tmp/vetsync-credcrypt.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
unset CREDENTIALS_DIRECTORY
secret1="it-master-secret-one-$$"
secret2="it-master-secret-two-$$-ünï"
pw="correct-horse-battery-$$"
export ENCRYPTION_KEY_itk1="$secret1"
export ENCRYPTION_KEY_IT_k2="$secret2"

# The plaintexts, as files: exact bytes, no trailing newline added.
: > "$tmp/p1"
printf '%s' "$pw" > "$tmp/p2"
printf 'Ünïcödé пароль 密码 🐾 "q" \\ tab\there\nline two' > "$tmp/p3"
awk 'BEGIN { for (i = 0; i < 1024; i++) printf "%c", 33 + (i * 7) % 94 }' \
    > "$tmp/p4"
awk 'BEGIN { for (i = 0; i < 1365; i++) printf "€"; printf "x" }' \
    > "$tmp/p5"
awk 'BEGIN { for (i = 0; i < 4096; i++) printf "x" }' > "$tmp/p6"
names="empty ASCII UTF-8 1KiB 4KiB-UTF-8 4KiB"

# node_to_c N KEYID: Node encrypts pN, the tool decrypts it.
node_to_c() {
	node "$js" encrypt "$2" < "$tmp/p$1" > "$tmp/n$1.json" &&
	    "$tool" decrypt < "$tmp/n$1.json" > "$tmp/nc$1" &&
	    cmp -s "$tmp/p$1" "$tmp/nc$1"
}

# c_to_node N KEYID: the tool encrypts pN, Node decrypts it.
c_to_node() {
	"$tool" encrypt "$2" < "$tmp/p$1" > "$tmp/c$1.json" &&
	    node "$js" decrypt < "$tmp/c$1.json" > "$tmp/cn$1" &&
	    cmp -s "$tmp/p$1" "$tmp/cn$1"
}

# Even texts Node encrypts under IT_k2 and credcrypt under itk1, odd ones
# the other way round.
i=1
for name in $names; do
	k=itk1 o=IT_k2
	[ $((i % 2)) -eq 0 ] && k=IT_k2 o=itk1
	check "Node encrypts $name under $k, credcrypt decrypts it" \
	    node_to_c $i $k
	check "credcrypt encrypts $name under $o, Node decrypts it" \
	    c_to_node $i $o
	i=$((i + 1))
done

# The same text as JSON.stringify() makes of EncryptedData: member order,
# lowercase hex, a 16-byte IV and tag.
shape='^\{"encrypted":"([0-9a-f]{2})*","iv":"[0-9a-f]{32}","authTag":"[0-9a-f]{32}","keyId":"itk1"\}$'
check "credcrypt's stored text has the shape Node's has" \
    sh -c "grep -Eq '$shape' '$tmp/c2.json' && grep -Eq '$shape' '$tmp/n1.json'"

# fails NAME OUTPUT-PREFIX EXPECTED-MESSAGE command...: the command exits
# 1, prints nothing on stdout, says EXPECTED-MESSAGE on stderr, and neither
# output holds a secret or the plaintext.
fails() {
	desc=$1 out=$2 want=$3
	shift 3
	"$@" > "$out.out" 2> "$out.err"
	rc=$?
	if [ $rc -eq 1 ] && [ ! -s "$out.out" ] &&
	    grep -qF -- "$want" "$out.err" &&
	    ! grep -qF -e "$secret1" -e "$secret2" -e "$pw" \
	    "$out.out" "$out.err"; then
		ok "$desc"
	else
		not_ok "$desc"
		diag "exit $rc, stderr: $(cat "$out.err")"
	fi
}

# flip MEMBER: change the first hex digit of MEMBER (stdin to stdout).
flip() {
	sed -e "s/\"$1\":\"0/\"$1\":\"Z/" \
	    -e "s/\"$1\":\"[0-9a-f]/\"$1\":\"0/" \
	    -e "s/\"$1\":\"Z/\"$1\":\"1/"
}

flip encrypted < "$tmp/n2.json" > "$tmp/t-ct.json"
fails "a changed ciphertext is refused as an authentication failure" \
    "$tmp/t-ct" "authentication failed" "$tool" decrypt < "$tmp/t-ct.json"

sed 's/"keyId":"IT_k2"/"keyId":"itk1"/' "$tmp/n2.json" > "$tmp/t-id.json"
fails "a keyId changed to another key's is refused" \
    "$tmp/t-id" "stored credential under key 'itk1': authentication failed" \
    "$tool" decrypt < "$tmp/t-id.json"

fails "a wrong master secret is refused" "$tmp/t-wrong" \
    "authentication failed" \
    env ENCRYPTION_KEY_IT_k2="not-$secret2" "$tool" decrypt < "$tmp/n2.json"

fails "a missing key is named, not guessed at" "$tmp/t-missing" \
    "encryption key 'IT_k2': neither \$CREDENTIALS_DIRECTORY/encryption-key-IT_k2 nor ENCRYPTION_KEY_IT_k2 is set" \
    env -u ENCRYPTION_KEY_IT_k2 "$tool" decrypt < "$tmp/n2.json"

fails "garbage is refused as not JSON" "$tmp/t-garbage" \
    "stored credential: not valid JSON" \
    "$tool" decrypt < "$top_srcdir/tests/fixtures/garbage.bin"

sed 's/"iv":"\(..\)/"iv":"/' "$tmp/n2.json" > "$tmp/t-iv.json"
fails "an IV of 15 bytes is refused" "$tmp/t-iv" \
    "stored credential: 'iv' is 15 bytes, not 16" \
    "$tool" decrypt < "$tmp/t-iv.json"

# Node, too, refuses our text once tampered with: the tag is a real GCM
# tag, not something only credcrypt checks.
flip authTag < "$tmp/c2.json" > "$tmp/t-tag.json"
if node "$js" decrypt < "$tmp/t-tag.json" > "$tmp/t-tag.out" 2>&1; then
	not_ok "Node refuses credcrypt's text with a changed tag"
else
	ok "Node refuses credcrypt's text with a changed tag"
fi

# The master key from systemd's credentials directory, refused when
# others may read it, and the message names the file, not its content.
mkdir "$tmp/creds"
printf '%s\n' "$secret1" > "$tmp/creds/encryption-key-itk1"
chmod 600 "$tmp/creds/encryption-key-itk1"
check "a key in \$CREDENTIALS_DIRECTORY decrypts what Node wrote" \
    sh -c "env -u ENCRYPTION_KEY_itk1 CREDENTIALS_DIRECTORY='$tmp/creds' \
    '$tool' decrypt < '$tmp/n3.json' | cmp -s - '$tmp/p3'"
chmod 644 "$tmp/creds/encryption-key-itk1"
fails "a key file others may read is refused" "$tmp/t-mode" \
    "refusing secret file '$tmp/creds/encryption-key-itk1': readable by group or others (mode 0644)" \
    env CREDENTIALS_DIRECTORY="$tmp/creds" "$tool" decrypt < "$tmp/n3.json"

fails "a plaintext over 4096 bytes is refused" "$tmp/t-big" \
    "plaintext of 4097 bytes is more than 4096" \
    sh -c "{ cat '$tmp/p6'; printf y; } | '$tool' encrypt itk1"

fails "a bad key id is refused" "$tmp/t-badid" \
    "encryption key id 'it.k1': not valid" \
    "$tool" encrypt it.k1 < "$tmp/p2"

# A thousand rows, one derivation (the tool counts them).
"$tool" bench itk1 1000 > "$tmp/bench.out" 2>&1
sed 's/^/# /' "$tmp/bench.out"
check "a thousand rows encrypted and decrypted derive the key once" \
    grep -qx "derivations: 1" "$tmp/bench.out"

"$tool" > "$tmp/usage.out" 2>&1
rc=$?
check "the tool's usage error exits 2" [ $rc -eq 2 ]
