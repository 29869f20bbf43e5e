#!/bin/sh
# Before the apply lock is taken (engine/lock.rs): /run/novadock (0700), checked to be root's
# own directory. In a directory only root can enter: /run/lock is world-writable, so any
# local user could hold a lock there (or plant a symlink in its place). The error goes to
# stdout too, where the engine reads the lock's answer.
[ -d /run/novadock ] || mkdir -m 700 /run/novadock
if [ -L /run/novadock ] || [ ! -O /run/novadock ]; then
	nd_e='/run/novadock is not a directory of root only; remove it'
	printf 'novadock: %s\n' "$nd_e"
	printf 'novadock: %s\n' "$nd_e" >&2
	exit 3
fi
