#!/bin/sh
# STYLE §1, "rooms and doors": which folder may include what.  Each program
# also links only its row's libraries (see the *_LDADD in each include.am),
# so a forbidden call fails to link; this catches the include first.
. "$top_srcdir/tests/integration/lib.sh"
cd "$top_srcdir" || exit 1

# folder  forbidden-include-pattern  what
rules='
common	^#include "(proto|policy|worker|supervisor)/|^#include <(event2|libpq|curl|openssl|protobuf-c|libxml|jansson|ini|seccomp)	common/ uses libc only
proto	^#include "(policy|worker|supervisor)/|^#include <(event2|libpq|curl|openssl|libxml|jansson|ini|seccomp)	proto/ is bytes in, messages out
policy	^#include "(proto|worker|supervisor)/|^#include <(event2|libpq|curl|openssl|protobuf-c|libxml|jansson|ini)	policy/ uses libseccomp and kernel headers only
worker	^#include "supervisor/|^#include <(event2|libpq|openssl|ini|seccomp)	the worker never sees the database, the loop or the supervisor
supervisor	^#include "worker/|^#include <libxml	the supervisor never parses pages
'
n=$(printf '%s\n' "$rules" | grep -c .)
tap_plan "$((n + 1))"
while IFS='	' read -r dir pattern what; do
	[ -n "$dir" ] || continue
	bad=$(grep -nE "$pattern" "$dir"/*.c "$dir"/*.h 2>/dev/null)
	if [ -z "$bad" ]; then
		ok "$dir/: $what"
	else
		not_ok "$dir/: $what"
		printf '%s\n' "$bad" | sed 's/^/# /'
	fi
done <<EOF_RULES
$rules
EOF_RULES
# The child half of policy/ must not pull in libseccomp.
if grep -lE '^#include <seccomp.h>' policy/sandbox.c policy/landlock.c >/dev/null 2>&1; then
	not_ok "policy/ child half (sandbox.c, landlock.c) does not use libseccomp"
else
	ok "policy/ child half (sandbox.c, landlock.c) does not use libseccomp"
fi
