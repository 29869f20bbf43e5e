#!/bin/sh
# The installed nova and glance versions, "python3-NAME VERSION" per line (openstack.rs:
# RELEASE_PROBE): the Debian packages, else the Python distributions (pip or source installs).
# Read-only; a host with neither prints nothing.
# shellcheck disable=SC2016 # dpkg-query's format, not the shell's
dpkg-query -W -f='${Package} ${Version}\n' python3-nova python3-glance 2>/dev/null | grep -v ' $'
for m in nova glance; do
	python3 -c "import importlib.metadata as m; print('python3-$m', m.version('$m'))" 2>/dev/null
done
true
