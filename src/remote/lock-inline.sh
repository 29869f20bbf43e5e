#!/bin/sh
# The apply lock taken by the only script of a run, held by its shell until it exits
# (engine/lock.rs). Held by another apply: its line after `novadock-lock-held`, exit 75
# (LOCK_HELD, LOCK_HELD_CODE there). The engine sets nd_owner (who applies, quoted) and
# sends lock-dir.sh first.
: "${nd_owner:?}"
exec 9>>/run/novadock/lock
if ! flock -n 9; then
	printf 'novadock-lock-held %s\n' "$(head -n 1 /run/novadock/lock)"
	exit 75
fi
printf '%s\n' "$nd_owner" >/run/novadock/lock
