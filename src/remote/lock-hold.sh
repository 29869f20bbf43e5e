#!/bin/sh
# The apply lock, held for a whole run (engine/lock.rs): answers LOCKED, or HELD and the
# holder's line, then lives as long as its stdin is open. The engine sets nd_owner (who
# applies, quoted) and sends lock-dir.sh first.
: "${nd_owner:?}"
exec 9>>/run/novadock/lock
if ! flock -n 9; then
	printf 'HELD %s\n' "$(head -n 1 /run/novadock/lock)"
	exit 0
fi
printf '%s\n' "$nd_owner" >/run/novadock/lock
echo LOCKED
cat >/dev/null
