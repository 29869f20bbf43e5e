#!/bin/sh
# Reading files for the facts (facts.rs). The engine sets nd_m (the marker) and calls
# nd_files with every path, or nd_file with one.
: "${nd_m:?}"

# All the files in two processes whatever their number (on a busy host each process costs
# about a millisecond): which exist ("e"/"a"), the stat lines of those, the regular files'
# bytes, the links' targets. A file that changes in between shows as a mismatch, and the
# engine reads the files one by one (nd_file) instead.
nd_files() {
	printf '%s files\n' "$nd_m"
	nd_stat "$@"
	printf '%s cat\n' "$nd_m"
	nd_cat "$@"
	printf '\n%s links\n' "$nd_m"
	for p in "$@"; do if [ -L "$p" ]; then readlink -- "$p" || echo; fi; done
	printf '%s end\n' "$nd_m"
}

# Which of the paths exist (one line of e and a), then `stat` of those. The loop's words are
# fixed when it starts: each path leaves the front of "$@", and an existing one goes back at
# the end.
nd_stat() {
	for p in "$@"; do
		shift
		if [ -L "$p" ] || [ -e "$p" ]; then printf e; set -- "$@" "$p"; else printf a; fi
	done
	printf '\n'
	if [ $# -gt 0 ]; then stat -c '%f %U %G %a %s' -- "$@" || printf '%s raced\n' "$nd_m"; fi
}

# The bytes of the regular files among the paths, one after the other.
nd_cat() {
	for p in "$@"; do
		shift
		if [ -f "$p" ] && [ ! -L "$p" ]; then set -- "$@" "$p"; fi
	done
	if [ $# -gt 0 ]; then cat -- "$@" || printf '%s raced\n' "$nd_m"; fi
}

# One path: its kind (and owner, group, mode) on a line, then a file's bytes or a link's
# target.
nd_file() {
	if [ -L "$1" ]; then printf 'link\n'; readlink "$1"
	elif [ -f "$1" ]; then printf 'file %s\n' "$(stat -c '%U %G %a' "$1")" && cat "$1"
	elif [ -d "$1" ]; then printf 'dir %s\n' "$(stat -c '%U %G %a' "$1")"
	elif [ -e "$1" ]; then printf 'other\n'
	else printf 'absent\n'; fi
}
