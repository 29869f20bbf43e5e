#!/bin/sh
# The apply lock, held for a whole run (engine/lock.rs): after lock-take.sh (its nd_held is
# HELD, its nd_held_exit 0), answers LOCKED, then lives as long as its stdin is open.
echo LOCKED
cat >/dev/null
