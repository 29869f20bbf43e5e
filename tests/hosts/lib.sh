# shellcheck shell=bash
# Shared code of tests/hosts/{up,down,start,stop,exec}. Sourced, never run.
#
# A "host" is one `/usr/sbin/sshd -D` in its own mount+UTS namespace where
# the top-level dirs below are copy-on-write overlays of the VM's dirs (upper
# layer under DIR/hN/ovl/) and /tmp, /run, /run/lock are private tmpfs.
# Everything a host owns is found again from DIR alone:
#   DIR/hN/pid       pid of the listening sshd (written by the namespace init)
#   DIR/hN/sshd.pid  sshd's own PidFile, appears once it listens
# and every process of a host (sessions, daemons, nsenter'd commands) is found
# by its /proc/PID/mountinfo naming the host's overlay upper dir, so stop/down
# never kill by process name.

HOSTS_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Top-level dirs each host sees as its own writable copy.
# (etc var usr opt root are the contract; home and srv are cheap extras so
# useradd/-m or /srv writes do not leak into the VM either.)
OVERLAY_DIRS=(etc var usr opt root home srv)
# shellcheck disable=SC2034 # used by the scripts sourcing this file
MARKER=.novadock-hosts
READY_TIMEOUT_MS=10000

die() {
  echo "${0##*/}: $*" >&2
  exit 1
}

need_root() {
  [[ $(id -u) -eq 0 ]] || die "must run as root (mount namespaces, port 22)"
}

need_tools() {
  local t
  for t in /usr/sbin/sshd ssh ssh-keygen unshare nsenter setsid mount flock; do
    command -v "$t" >/dev/null || die "$t not found; run $HOSTS_LIB_DIR/install-deps"
  done
}

# Print DIR absolute and normalised; reject what the mounts cannot handle.
resolve_dir() {
  local d o
  [[ -n ${1:-} ]] || die "DIR missing"
  d=$(realpath -m -- "$1")
  # DIR ends up inside overlay mount options (',' ':' and spaces break them).
  [[ $d =~ ^/[A-Za-z0-9._/+-]*$ ]] || die "DIR '$d' may only contain [A-Za-z0-9._/+-]"
  [[ $d != / ]] || die "DIR must not be /"
  for o in "${OVERLAY_DIRS[@]}"; do
    # An upper layer inside its own lower dir is not a sane overlay.
    case $d/ in
      /"$o"/*) die "DIR must not be under /$o (every host overlays /$o); use e.g. /tmp/..." ;;
    esac
  done
  printf '%s\n' "$d"
}

# Serialise up/down/start/stop on one DIR. The fd must not leak into sshd.
LOCK_FD=
lock_dir() {
  exec {LOCK_FD}>>"$DIR/.lock"
  flock "$LOCK_FD"
}

now_ms() { NOW_MS=$((${EPOCHREALTIME//[!0-9]/} / 1000)); }

# host_addr NAME: sets ADDR (no subshell: this runs per host, N may be 100).
host_addr() { read -r ADDR <"$DIR/$1/address"; }

# Hosts configured in DIR, in numeric order (h1 h2 ... h10).
list_hosts() {
  local d
  for d in "$DIR"/h[0-9]*/address; do
    [[ -e $d ]] || continue
    d=${d%/address}
    printf '%s\n' "${d##*/}"
  done | sort -t h -k 2 -n
}

# True if the pid in DIR/hN/pid is alive and really is that host's process
# (its mount table holds the host's overlays), so a recycled pid is ignored.
is_running() {
  local hd=$DIR/$1 pid
  [[ -s $hd/pid ]] || return 1
  read -r pid <"$hd/pid"
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  grep -qsF "upperdir=$hd/ovl/" "/proc/$pid/mountinfo"
}

# scan_running: RUNNING[hN]=pid for every host of DIR that is up, with one
# grep over the recorded pids (per-host checks cost a fork each; N may be 100).
declare -A RUNNING=()
scan_running() {
  local f pid files=() re line
  RUNNING=()
  for f in "$DIR"/h[0-9]*/pid; do
    [[ -s $f ]] || continue
    read -r pid <"$f"
    [[ $pid =~ ^[0-9]+$ ]] && files+=("/proc/$pid/mountinfo")
  done
  ((${#files[@]})) || return 0
  # DIR as a basic regex: only '.' needs escaping ('+' is literal in BRE).
  re="upperdir=${DIR//./\\.}/h[0-9]*/ovl/"
  while IFS= read -r line; do
    # /proc/PID/mountinfo:upperdir=DIR/hN/ovl/
    pid=${line#/proc/}
    pid=${pid%%/*}
    f=${line#*:upperdir="$DIR"/}
    f=${f%%/*}
    read -r line <"$DIR/$f/pid" && [[ $line == "$pid" ]] && RUNNING[$f]=$pid
  done < <(grep -soH -m1 -- "$re" "${files[@]}" || true)
}

# PIDs of every process whose mount namespace holds overlays matching $1.
procs_with_mounts() {
  grep -lsF -- "$1" /proc/[0-9]*/mountinfo 2>/dev/null |
    sed -n 's|^/proc/\([0-9]*\)/mountinfo$|\1|p' || true
}

# Kill every process of the hosts whose overlay paths start with $1
# ("upperdir=DIR/" for all hosts, "upperdir=DIR/hN/ovl/" for one), the
# listening sshds (from pid files) first. Once none is left, their namespaces
# and with them all overlay/tmpfs mounts are gone.
kill_hosts() {
  local pattern=$1 name pid pids start
  for name in $(list_hosts); do
    if [[ "upperdir=$DIR/$name/ovl/" == "$pattern"* ]] && is_running "$name"; then
      kill -TERM "$(<"$DIR/$name/pid")" 2>/dev/null || true
    fi
  done
  now_ms
  start=$NOW_MS
  while :; do
    pids=$(procs_with_mounts "$pattern")
    [[ -n $pids ]] || return 0
    now_ms
    if ((NOW_MS - start > 10000)); then
      die "processes still hold mounts of $pattern: $(echo "$pids" | tr '\n' ' ')"
    elif ((NOW_MS - start > 1500)); then
      # shellcheck disable=SC2086 # word splitting of the pid list is wanted
      kill -KILL $pids 2>/dev/null || true
    else
      # shellcheck disable=SC2086
      kill -TERM $pids 2>/dev/null || true
    fi
    sleep 0.05
  done
}

# Runs as the future sshd process inside the fresh namespaces (via bash -c).
# Args: DIR NAME OVERLAY_DIRS...
ns_init() {
  set -euo pipefail
  local dir=$1 name=$2 hd=$1/$2 d
  shift 2
  rm -f "$hd/sshd.pid" "$hd/mntns"
  printf '=== %(%FT%T%z)T start %s\n' -1 "$name" >>"$hd/sshd.log"
  echo $$ >"$hd/pid"
  # Handle on the real DIR: /tmp or /run may hide it below, and sshd needs its
  # config, keys and log there. Bound back at the end.
  exec 3<"$dir"
  # Mounts below the dirs covered next are invisible in the host anyway, but
  # the namespace would pin them while it lives (e.g. someone's container
  # overlay under /var/lib): detach them, except what holds DIR itself.
  local re sub
  re="^/($(IFS='|'; echo "$*"))/|^/(tmp|run)/"
  mapfile -t sub < <(awk -v re="$re" -v dir="$dir/" \
    '$5 ~ re && index(dir, $5 "/") != 1 { print $5 }' /proc/self/mountinfo | sort -r)
  if ((${#sub[@]})); then umount -l "${sub[@]}" 2>/dev/null || true; fi
  for d in "$@"; do
    mount -t overlay "nd-$name-$d" \
      -o "lowerdir=/$d,upperdir=$hd/ovl/$d/upper,workdir=$hd/ovl/$d/work" "/$d"
  done
  mount -t tmpfs -o mode=1777,nosuid,nodev "nd-$name-tmp" /tmp
  mount -t tmpfs -o mode=755,nosuid,nodev "nd-$name-run" /run
  mkdir -m 755 /run/sshd /run/lock
  mount -t tmpfs -o mode=1777,nosuid,nodev,noexec,size=5m "nd-$name-lock" /run/lock
  mkdir -p "$dir"
  # --no-canonicalize: otherwise mount resolves the fd link to the (now
  # hidden) path name and binds the wrong directory.
  mount --no-canonicalize --bind "/proc/$$/fd/3" "$dir"
  exec 3<&-
  hostname "$name"
  readlink /proc/self/ns/mnt >"$hd/mntns"
  exec /usr/sbin/sshd -D -f "$hd/sshd_config" -E "$hd/sshd.log"
}

# Launch the namespace + sshd of one host, detached (own session, no fds of
# the caller, so a caller reading our stdout sees EOF when up exits). Only one
# fork here per host: everything else happens in the child.
NS_INIT_SRC="$(declare -f ns_init); ns_init \"\$@\""
spawn_host() {
  local hd=$DIR/$1
  # Stale pid files: the phase-1 wait below must only see the new ones.
  : >"$hd/pid"
  : >"$hd/sshd.pid"
  setsid unshare --mount --uts --propagation private \
    bash -c "$NS_INIT_SRC" ns_init "$DIR" "$1" "${OVERLAY_DIRS[@]}" \
    </dev/null >"$hd/console.log" 2>&1 {LOCK_FD}>&- &
}

ssh_opts() {
  SSH_OPTS=(-F /dev/null -i "$DIR/id_ed25519" -o IdentitiesOnly=yes
    -o UserKnownHostsFile="$DIR/known_hosts" -o GlobalKnownHostsFile=/dev/null
    -o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=5
    -o LogLevel=ERROR -p 22)
}

host_failed() {
  local name=$1 hd=$DIR/$1
  host_addr "$name"
  {
    echo "ERROR: $name ($ADDR): $2"
    echo "--- $hd/console.log"
    tail -n 20 "$hd/console.log" 2>/dev/null || true
    echo "--- $hd/sshd.log"
    tail -n 20 "$hd/sshd.log" 2>/dev/null || true
    if [[ -s $hd/probe.err ]]; then
      echo "--- last ssh error"
      tail -n 5 "$hd/probe.err"
    fi
  } >&2
}

# Real login with the client key and strict known_hosts, retried until the
# deadline (absolute ms). Output of the last failure kept in hN/probe.err.
probe_host() {
  local name=$1 deadline=$2
  host_addr "$name"
  while :; do
    if ssh "${SSH_OPTS[@]}" "root@$ADDR" true </dev/null 2>"$DIR/$name/probe.err"; then
      rm -f "$DIR/$name/probe.err"
      return 0
    fi
    now_ms
    ((NOW_MS < deadline)) || return 1
    sleep 0.1
  done
}

# Start the given hosts unless running, wait until each accepts ssh, print
# one line per host. Returns non-zero (after all have been waited for) if any
# host failed, with its logs on stderr.
start_hosts() {
  local name hd pid state rc=0
  local -A deadline=() status=() probes=()
  ssh_opts
  scan_running
  for name in "$@"; do
    if [[ -n ${RUNNING[$name]:-} ]]; then
      status[$name]="running"
    else
      spawn_host "$name"
      now_ms
      deadline[$name]=$((NOW_MS + READY_TIMEOUT_MS))
      status[$name]="waiting"
    fi
  done
  # Phase 1: wait for sshd's PidFile (written once it listens) without
  # forking per host, so 100 hosts on 2 cores stay cheap.
  while :; do
    local waiting=0
    now_ms
    for name in "$@"; do
      [[ ${status[$name]} == waiting ]] || continue
      hd=$DIR/$name
      # sshd writes its PidFile once it listens; it must be the pid our
      # namespace init recorded (not an older sshd of the same host).
      if [[ -s $hd/sshd.pid && -s $hd/pid ]]; then
        read -r pid <"$hd/pid"
        read -r state <"$hd/sshd.pid"
        if [[ $pid == "$state" ]]; then
          status[$name]="listening"
          continue
        fi
      fi
      if [[ -s $hd/pid ]]; then
        read -r pid <"$hd/pid"
        state=
        [[ -r /proc/$pid/stat ]] && read -r _ _ state _ <"/proc/$pid/stat" 2>/dev/null
        if [[ -z $state || $state == Z ]]; then
          status[$name]="failed"
          host_failed "$name" "sshd (pid $pid) exited during start"
          rc=1
          continue
        fi
      fi
      if ((NOW_MS > deadline[$name])); then
        status[$name]="failed"
        host_failed "$name" "sshd not listening after $((READY_TIMEOUT_MS / 1000))s"
        rc=1
        continue
      fi
      waiting=1
    done
    ((waiting)) || break
    sleep 0.05
  done
  # Phase 2: one real ssh login per new host, all in parallel.
  for name in "$@"; do
    [[ ${status[$name]} == listening ]] || continue
    probe_host "$name" "${deadline[$name]}" {LOCK_FD}>&- &
    probes[$name]=$!
  done
  for name in "$@"; do
    if [[ -n ${probes[$name]:-} ]]; then
      if wait "${probes[$name]}"; then
        status[$name]="started"
      else
        status[$name]="failed"
        host_failed "$name" "no ssh login within $((READY_TIMEOUT_MS / 1000))s"
        rc=1
      fi
    fi
  done
  # Sockets listening on port 22, from one read of /proc/net/tcp (a test
  # connect per host would make every sshd fork a session just to say hi).
  local -A listening=()
  local laddr
  while read -r laddr; do
    listening[$laddr]=1
  done < <(awk '$4 == "0A" && $2 ~ /:0016$/ { print $2 }' /proc/net/tcp)
  for name in "$@"; do
    host_addr "$name"
    pid=
    [[ -s $DIR/$name/pid ]] && read -r pid <"$DIR/$name/pid"
    case ${status[$name]} in
      running)
        # Already up: only check it still listens (no login, keeps re-up fast).
        local o1 o2 o3 o4 hex
        IFS=. read -r o1 o2 o3 o4 <<<"$ADDR"
        printf -v hex '%02X%02X%02X%02X:0016' "$o4" "$o3" "$o2" "$o1"
        if [[ -n ${listening[$hex]:-} ]]; then
          echo "$name $ADDR running pid=$pid"
        else
          host_failed "$name" "process alive but port 22 closed"
          rc=1
        fi
        ;;
      started) echo "$name $ADDR started pid=$pid" ;;
      *) echo "$name $ADDR FAILED (see $DIR/$name/sshd.log)" ;;
    esac
  done
  return "$rc"
}
