#!/bin/sh
# The systemd unit: valid, and hardened to an exposure of at most 2.0
# (DESIGN §7) as systemd-analyze scores it.
. "$top_srcdir/tests/integration/lib.sh"

tap_plan 2
unit="$top_builddir/tests/vetsyncd.service"
sed -e 's|%sbindir%|/usr/sbin|g' -e 's|%sysconfdir%|/etc|g' \
    "$top_srcdir/deploy/vetsyncd.service.in" > "$unit"
if ! command -v systemd-analyze >/dev/null; then
	skip "unit is hardened" "systemd-analyze is not installed"
	skip "unit names no unknown setting" "systemd-analyze is not installed"
	exit 0
fi
score=$(systemd-analyze security --offline=yes "$unit" 2>/dev/null |
    sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
if [ -n "$score" ] && awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }'; then
	ok "unit exposure $score is at most 2.0"
else
	not_ok "unit exposure '$score' is at most 2.0"
fi
# verify complains about the binary not being installed here; anything
# else (an unknown key, a bad value) is a mistake in the unit.
if systemd-analyze verify "$unit" 2>&1 | grep -v 'is not executable' |
    grep -v '^$' | grep -q .; then
	not_ok "unit names no unknown setting"
	systemd-analyze verify "$unit" 2>&1 | sed 's/^/# /'
else
	ok "unit names no unknown setting"
fi
rm -f "$unit"
