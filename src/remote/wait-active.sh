#!/bin/sh
# After a `serial` handler restarted nd_unit: wait until it is active again, at most nd_wait
# seconds, so a rolling restart goes on to the next host only then. The engine sets nd_unit
# and nd_wait (quoted) before this text, in the handler's part of the batch script (set -eu).
: "${nd_unit:?}" "${nd_wait:?}"
nd_waited=0
while :; do
	nd_state=$(systemctl is-active "$nd_unit") && break
	# `failed`: it gave up (no automatic restart pending); waiting longer changes nothing.
	if [ "$nd_state" = failed ] || [ "$nd_waited" -ge "$nd_wait" ]; then
		printf 'novadock: %s is not active %s s after the handler ran (systemctl is-active: %s); the rolling restart stops here\n' \
			"$nd_unit" "$nd_waited" "$nd_state" >&2
		exit 1
	fi
	sleep 1
	nd_waited=$((nd_waited + 1))
done
