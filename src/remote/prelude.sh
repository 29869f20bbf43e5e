#!/bin/sh
# What every apply script starts with (plan.rs: PRELUDE): the functions its actions call.
# The engine sets ND_RUN (the run id, quoted) before this text.
set -eu
LC_ALL=C; export LC_ALL
ND_BACKUPS=${ND_BACKUPS:-/var/backups/novadock}
nd_um=$(umask)
nd_safe=
# Shared with the writes made as a directory's owner (nd_user): no single quote in here.
# shellcheck disable=SC2016 # the functions' text, expanded where they run
ND_FNS='
nd_fail() { printf "novadock: %s\n" "$*" >&2; exit 3; }
nd_attrs() {
	if [ -n "$2" ] && [ -n "$3" ]; then chown -h -- "$2:$3" "$1"
	elif [ -n "$2" ]; then chown -h -- "$2" "$1"
	elif [ -n "$3" ]; then chgrp -h -- "$3" "$1"; fi
	if [ -n "$4" ]; then chmod -- "$4" "$1"; fi
}
# nd_put PATH OWNER GROUP MODE HOW [ARGS], once the checks are done; the current file, when
# there is one, open on fd 7. The temporary file is created exclusively and private, and used
# through its descriptor (fd 8): whoever can change the directory can rename it, but never
# make this write go elsewhere. It gets its final owner and mode, then its content.
nd_put() {
	nd_t=${1%/*}/.novadock.$ND_RUN
	umask 077
	set -C
	exec 8> "$nd_t"
	set +C
	umask "$nd_um"
	trap "rm -f -- \"\$nd_t\"" EXIT
	[ -f /proc/self/fd/8 ] || nd_fail "$nd_t was there before this run"
	if [ -n "${nd_old:-}" ]; then cp --attributes-only -p -- /proc/self/fd/7 /proc/self/fd/8
	elif [ -z "$4" ]; then chmod 644 /proc/self/fd/8; fi
	if [ -n "$2" ] && [ -n "$3" ]; then chown -- "$2:$3" /proc/self/fd/8
	elif [ -n "$2" ]; then chown -- "$2" /proc/self/fd/8
	elif [ -n "$3" ]; then chgrp -- "$3" /proc/self/fd/8; fi
	if [ -n "$4" ]; then chmod -- "$4" /proc/self/fd/8; fi
	case $5 in
	text) printf %s "$6" >&8 ;;
	b64) base64 -d >&8 ;;
	splice) { head -c "$6" /proc/self/fd/7; printf %s "$8"; tail -c "+$7" /proc/self/fd/7; } >&8 ;;
	splice-b64) { head -c "$6" /proc/self/fd/7; base64 -d; tail -c "+$7" /proc/self/fd/7; } >&8 ;;
	esac
	sync -- /proc/self/fd/8
	exec 8>&- 7<&-
	mv -fT -- "$nd_t" "$1"
	trap - EXIT
}
'
eval "$ND_FNS"
nd_expect() {
	nd_ok=
	case $2 in
	any) nd_ok=1 ;;
	absent) if [ ! -e "$1" ] && [ ! -L "$1" ]; then nd_ok=1; fi ;;
	dir) if [ -d "$1" ] && [ ! -L "$1" ]; then nd_ok=1; fi ;;
	link:*) if [ -L "$1" ] && [ "link:$(readlink -- "$1")" = "$2" ]; then nd_ok=1; fi ;;
	*) if [ -e "$1" ] && [ ! -L "$1" ] && [ ! -d "$1" ]; then
		nd_h=$(sha256sum < "$1")
		if [ "${nd_h%% *}" = "$2" ]; then nd_ok=1; fi
	fi ;;
	esac
	[ -n "$nd_ok" ] || nd_fail "$1 changed since it was planned; run plan again"
}
# nd_dir DIR [USER]: every directory above DIR is a directory (not a symlink) that only root
# or a system account can change (uid < 1000, such as Debian's nova owning /etc/nova; sticky
# ones like /tmp aside), so DIR itself stays where it is; DIR may be anyone's (writes use
# descriptors, not names, there). DIR and the directories nearest it may
# instead be USER's own: then nd_as=USER, and the change is made as USER, who can then hurt no
# one else. One stat per directory and script.
nd_dir() {
	nd_as=
	case $nd_safe in *"
$1
"*) return 0 ;; esac
	nd_d=$1
	nd_u=${2:-}
	set --
	nd_p=$nd_d
	while [ -n "$nd_p" ]; do set -- "$@" "$nd_p"; nd_p=${nd_p%/*}; done
	set -- "$@" /
	nd_st=$(stat -c '%F|%a|%U|%u|%g' -- "$@") || nd_fail "cannot check the directories of $nd_d"
	nd_chain=1
	nd_leaf=1
	nd_mine=
	while IFS='|' read -r nd_f nd_m nd_o nd_ui nd_gi; do
		nd_c=$1; shift
		[ "$nd_f" = directory ] || nd_fail "$nd_c is a $nd_f, not a directory; novadock does not write through symlinks"
		if [ -n "$nd_chain" ] && [ -n "$nd_u" ] && [ "$nd_o" = "$nd_u" ] && [ ! -O "$nd_c" ]; then
			nd_mine=1
		elif [ -n "$nd_leaf" ]; then
			nd_chain=
		elif [ -n "$nd_mine" ] && [ -n "$nd_chain" ]; then
			# Above the user's own directories: root's, as for any other.
			nd_chain=
			nd_as=$nd_u
			nd_root_only "$nd_c"
		else
			nd_chain=
			nd_root_only "$nd_c"
		fi
		nd_leaf=
	done <<ND_ST
$nd_st
ND_ST
	if [ -z "$nd_as" ] && [ -n "$nd_mine" ]; then nd_as=$nd_u; fi
	if [ -z "$nd_as" ]; then nd_safe="$nd_safe
$nd_d
"; fi
}
# nd_root_only DIR, with nd_m nd_o nd_ui nd_gi from its stat line.
nd_root_only() {
	if [ "$nd_ui" -ge 1000 ] && [ ! -O "$1" ]; then
		nd_fail "$1 is owned by $nd_o; novadock writes as root only where no other user can change the path"
	fi
	if [ $((0$nd_m & 01000)) -eq 0 ] && { [ $((0$nd_m & 02)) -ne 0 ] || { [ $((0$nd_m & 020)) -ne 0 ] && [ "$nd_gi" -ge 1000 ]; }; }; then
		nd_fail "$1 can be changed by users other than root (mode $nd_m); novadock does not write below it"
	fi
}
# nd_parent PATH [USER]: nd_dir on the directory holding PATH.
nd_parent() {
	nd_p=${1%/*}
	[ -n "$nd_p" ] || nd_p=/
	[ -d "$nd_p" ] || nd_fail "directory $nd_p does not exist"
	nd_dir "$nd_p" "${2:-}"
}
# nd_user USER SCRIPT [ARGS]: SCRIPT (which may use ND_FNS) run as USER.
nd_user() {
	nd_g=$(id -g -- "$1") || nd_fail "no user $1"
	nd_u=$1
	nd_s=$2
	shift 2
	ND_RUN=$ND_RUN nd_um=$nd_um setpriv --reuid="$nd_u" --regid="$nd_g" --init-groups -- \
		sh -c "set -eu
$ND_FNS
$nd_s" nd "$@"
}
nd_backup() {
	if [ ! -f "$1" ] || [ -L "$1" ]; then return 0; fi
	nd_b="$ND_BACKUPS/$ND_RUN$1"
	# shellcheck disable=SC2174 # only the last directory is private (/var/backups is the system's)
	if [ ! -d "$ND_BACKUPS" ]; then mkdir -p -m 700 -- "$ND_BACKUPS"; fi
	if [ ! -d "${nd_b%/*}" ]; then mkdir -p -- "${nd_b%/*}"; fi
	if [ -z "${nd_pruned:-}" ]; then
		nd_pruned=1
		# keep the last 5 runs, this one included (the glob sorts as `sort` would)
		set -- "$1" "$ND_BACKUPS"/*
		nd_keep=$1; shift
		while [ $# -gt 5 ]; do rm -rf -- "$1"; shift; done
		set -- "$nd_keep"
	fi
	# The old inode leaves the path at the rename: a link keeps it without copying.
	ln -f -- "$1" "$nd_b" 2>/dev/null || cp -p -- "$1" "$nd_b"
}
# nd_write PATH EXPECT OWNER GROUP MODE HOW [ARGS]. HOW: `text CONTENT`; `b64` (base64 on
# stdin); `splice KEEP FROM TEXT` / `splice-b64 KEEP FROM` (stdin): the first KEEP bytes of
# the current file, then the new part, then the current file from byte FROM (1-based) on.
# EXPECT has just been checked, so the old bytes are the planned ones.
nd_write() {
	nd_parent "$1" "$3"
	nd_old=
	case $2 in
	absent|dir|link:*) nd_expect "$1" "$2" ;;
	*)
		# The file checked is the file read: opened once, then only used through fd 7.
		if [ -f "$1" ] && [ ! -L "$1" ]; then exec 7< "$1"; nd_old=1; fi
		if [ "$2" != any ]; then
			nd_h=
			if [ -n "$nd_old" ]; then nd_h=$(sha256sum <&7); fi
			[ "${nd_h%% *}" = "$2" ] || nd_fail "$1 changed since it was planned; run plan again"
		fi ;;
	esac
	nd_backup "$1"
	nd_w=$1
	shift 2
	if [ -n "$nd_as" ]; then
		# The user opens the current file itself: it reads only what it may.
		# shellcheck disable=SC2016 # a script for nd_user's shell, expanded there
		nd_old=$nd_old nd_user "$nd_as" 'if [ -n "$nd_old" ]; then exec 7< "$1"; fi; nd_put "$@"' "$nd_w" "$@" 7<&-
		exec 7<&-
	else
		nd_put "$nd_w" "$@"
	fi
}
# nd_mkdir PATH OWNER GROUP MODE
nd_mkdir() {
	nd_p=${1%/*}
	[ -n "$nd_p" ] || nd_p=/
	[ -d "$nd_p" ] || mkdir -p -- "$nd_p"
	nd_dir "$nd_p" "$2"
	if [ -n "$nd_as" ]; then
		# shellcheck disable=SC2016 # a script for nd_user's shell, expanded there
		nd_user "$nd_as" 'if [ ! -d "$1" ] || [ -L "$1" ]; then mkdir -- "$1"; fi; nd_attrs "$@"' "$@"
	else
		if [ ! -d "$1" ] || [ -L "$1" ]; then mkdir -- "$1"; fi
		nd_attrs "$@"
	fi
}
# nd_setattrs PATH OWNER GROUP MODE
nd_setattrs() {
	nd_parent "$1" "$2"
	if [ -n "$nd_as" ]; then
		nd_user "$nd_as" 'nd_attrs "$@"' "$@"
	else
		[ ! -L "$1" ] || nd_fail "$1 is a symlink; novadock does not change attributes through symlinks"
		nd_attrs "$@"
	fi
}
nd_remove() {
	nd_expect "$1" "$2"
	nd_parent "$1"
	nd_backup "$1"
	rm -rf -- "$1"
}
nd_link() {
	nd_parent "$2"
	nd_backup "$2"
	ln -sfn -- "$1" "$2"
}
nd_pending() {
	nd_f=/var/lib/novadock/pending-handlers
	[ -f "$nd_f" ] || mkdir -p /var/lib/novadock
	nd_new=
	for nd_n in "$@"; do
		if [ -f "$nd_f" ]; then
			while IFS= read -r nd_l; do
				if [ "$nd_l" = "$nd_n" ]; then continue 2; fi
			done < "$nd_f"
		fi
		printf '%s\n' "$nd_n" >> "$nd_f"
		nd_new=1
	done
	if [ -n "$nd_new" ]; then sync -- "$nd_f"; fi
}
