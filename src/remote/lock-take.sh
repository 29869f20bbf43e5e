#!/bin/sh
# The apply lock (engine/lock.rs), taken the same way whether a process of its own holds it
# for the run (lock-hold.sh follows) or the run's only script does, until it exits: flock on
# /run/novadock/lock, then the owner's line in it. Held by another apply: prints nd_held and
# the holder's line, exits nd_held_exit. The engine sets nd_owner (who applies), nd_held and
# nd_held_exit (quoted), and sends lock-dir.sh first.
: "${nd_owner:?}" "${nd_held:?}" "${nd_held_exit:?}"
exec 9>>/run/novadock/lock
if ! flock -n 9; then
	printf '%s %s\n' "$nd_held" "$(head -n 1 /run/novadock/lock)"
	exit "$nd_held_exit"
fi
printf '%s\n' "$nd_owner" >/run/novadock/lock
