#!/bin/sh
# After a handler's own actions succeeded (the script runs with set -e): it is no longer
# pending. The engine sets nd_name (the handler's name, quoted).
: "${nd_name:?}"
nd_f=/var/lib/novadock/pending-handlers
if [ -f "$nd_f" ]; then
	while IFS= read -r nd_l; do
		if [ "$nd_l" != "$nd_name" ]; then printf '%s\n' "$nd_l"; fi
	done <"$nd_f" >"$nd_f.tmp"
	mv -f "$nd_f.tmp" "$nd_f"
fi
