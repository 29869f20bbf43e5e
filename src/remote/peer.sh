#!/bin/sh
# Another host's files a step needs (facts.rs: peer_script): a header line and the content of
# each one that exists. The engine sets the paths as "$@".
for p in "$@"; do
	if [ -f "$p" ]; then
		echo ND_PEER_FILE
		cat "$p"
		echo
	fi
done
