# shellcheck shell=bash
# Shared code of tests/hosts/{up,down,start,stop,exec}. Sourced, never run.
#
# A "host" is one `/usr/sbin/sshd -D` in its own mount+UTS namespace where
# the top-level dirs in OVERLAY_DIRS are copy-on-write overlays of the VM's
# dirs (upper layer under DIR/hN/ovl/) and /tmp, /run, /run/lock are private
# tmpfs. Everything about a host is found again from DIR alone:
#   DIR/hN/pid       pid of the listening sshd (written by the namespace init)
#   DIR/hN/sshd.pid  sshd's own PidFile, written once it listens
# and every process of a host (sessions, daemons, nsenter'd commands) is found
# by its /proc/PID/mountinfo naming the host's overlay upper dir, so stop and
# down never kill by process name and never touch a recycled pid.
# Loops over hosts avoid forks (N may be 100 on 2 cores).

HOSTS_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Top-level dirs each host sees as its own writable copy. etc var usr opt root
# are the contract; home and srv are cheap extras so `useradd -m` or /srv
# writes do not leak into the VM either.
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
  for t in /usr/sbin/sshd ssh ssh-keygen unshare nsenter setsid mount umount flock; do
    command -v "$t" >/dev/null || die "$t not found; run $HOSTS_LIB_DIR/install-deps"
  done
}

# Print DIR absolute and normalised; reject what the mounts cannot handle.
resolve_dir() {
  local d o
  [[ -n ${1:-} ]] || die "DIR missing"
  d=$(realpath -m -- "$1")
  # DIR ends up in overlay options and fstab lines (',' ':' spaces break them).
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

# host_addr NAME: sets ADDR.
host_addr() { read -r ADDR <"$DIR/$1/address"; }

# proc_state PID: sets PSTATE to the state letter (R S D Z ...), or "" if gone.
proc_state() {
  local line
  PSTATE=
  { read -r line <"/proc/$1/stat"; } 2>/dev/null || return 0
  line=${line##*) } # comm may contain spaces; the state follows ") "
  PSTATE=${line%% *}
}

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

# scan_running: RUNNING[hN]=pid for every host of DIR that is up (same test
# as is_running, one grep for all hosts).
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
    # line: /proc/PID/mountinfo:upperdir=DIR/hN/ovl/
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

# kill_hosts NAME... : stop these hosts: TERM the listening sshds (pid files),
# then TERM (KILL after 1.5 s) every process still inside their namespaces,
# and wait until all have really exited (a dying process stays in D state
# while the kernel tears its namespace and mounts down).
kill_hosts() {
  local name pid pids start pattern
  local -a patterns=() seen=()
  scan_running
  for name in "$@"; do
    patterns+=(-e "upperdir=$DIR/$name/ovl/")
    if [[ -n ${RUNNING[$name]:-} ]]; then
      kill -TERM "${RUNNING[$name]}" 2>/dev/null || true
      seen+=("${RUNNING[$name]}")
    fi
  done
  ((${#patterns[@]})) || return 0
  now_ms
  start=$NOW_MS
  while :; do
    pids=$(grep -lsF "${patterns[@]}" /proc/[0-9]*/mountinfo 2>/dev/null |
      sed -n 's|^/proc/\([0-9]*\)/mountinfo$|\1|p' || true)
    # shellcheck disable=SC2206 # pids are plain numbers
    seen+=($pids)
    # Still exiting (not yet a zombie or gone) counts as alive.
    for pid in "${seen[@]}"; do
      proc_state "$pid"
      [[ -z $PSTATE || $PSTATE == Z ]] || pids+=" $pid"
    done
    [[ -n ${pids// /} ]] || return 0
    now_ms
    if ((NOW_MS - start > 15000)); then
      pattern="${patterns[*]}"
      die "processes of ${pattern//-e upperdir=/} still alive: $pids"
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

# Runs as the future sshd process inside the fresh namespaces (bash -c).
# Args: DIR NAME OVERLAY_DIRS... Few forks: it runs N times in parallel.
ns_init() {
  set -euo pipefail
  local dir=$1 name=$2 hd=$1/$2 d line mp
  local -a sub=() mi=()
  shift 2
  printf '=== %(%FT%T%z)T start %s\n' -1 "$name" >>"$hd/sshd.log"
  echo $$ >"$hd/pid"
  # Handle on the real DIR: the tmpfs on /tmp (or /run) may hide it, and sshd
  # needs its config, keys and log there; it is bound back via this fd.
  exec 3<"$dir"
  # Mounts below the dirs covered next are invisible in the host anyway, but
  # the namespace would pin them while it lives (e.g. another tool's
  # container overlay under /var/lib): detach them, except what holds DIR.
  mapfile -t mi </proc/self/mountinfo
  for line in "${mi[@]}"; do
    read -r _ _ _ _ mp _ <<<"$line"
    for d in "$@" tmp run; do
      if [[ $mp == /"$d"/* && $dir/ != "$mp"/* ]]; then
        sub+=("$mp")
      fi
    done
  done
  if ((${#sub[@]})); then umount -l "${sub[@]}" 2>/dev/null || true; fi
  # All mounts with one mount(8) run. -c (no canonicalisation): the DIR
  # bind source /proc/self/fd/3 must not be resolved to the hidden path name.
  {
    for d in "$@"; do
      printf 'nd-%s-%s /%s overlay lowerdir=/%s,upperdir=%s,workdir=%s 0 0\n' \
        "$name" "$d" "$d" "$d" "$hd/ovl/$d/upper" "$hd/ovl/$d/work"
    done
    printf 'nd-%s-tmp /tmp tmpfs mode=1777,nosuid,nodev 0 0\n' "$name"
    printf '/proc/self/fd/3 %s none bind,X-mount.mkdir 0 0\n' "$dir"
    printf 'nd-%s-run /run tmpfs mode=755,nosuid,nodev 0 0\n' "$name"
    printf 'nd-%s-lock /run/lock tmpfs mode=1777,nosuid,nodev,noexec,size=5m,X-mount.mkdir 0 0\n' "$name"
    # sshd's privilege separation dir (root-owned, not writable by others).
    printf '%s /run/sshd none bind,ro,X-mount.mkdir 0 0\n' "$hd/empty"
  } >"$hd/fstab"
  mount -a -c -T "$hd/fstab"
  exec 3<&-
  echo "$name" >/proc/sys/kernel/hostname
  exec /usr/sbin/sshd -D -f "$hd/sshd_config" -E "$hd/sshd.log"
}

# Launch the namespaces + sshd of one host, detached: own session (no SIGINT/
# SIGHUP from the caller's terminal) and none of the caller's fds (a caller
# reading up's stdout must see EOF when up exits). One fork per host here.
NS_INIT_SRC="$(declare -f ns_init); ns_init \"\$@\""
spawn_host() {
  local hd=$DIR/$1
  # Stale pid files: the wait in start_hosts must only see the new ones.
  : >"$hd/pid"
  : >"$hd/sshd.pid"
  rm -f "$hd/probe.err"
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
# deadline (absolute ms). The last failure's output stays in hN/probe.err.
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

# start_hosts NAME...: start those not running, wait until each accepts a
# real ssh login (READY_TIMEOUT_MS from its own start), print one line per
# host. Returns non-zero, after waiting for all, if any failed (logs on
# stderr; hosts that did start are left running, `down` cleans up).
start_hosts() {
  local name hd pid spid rc=0 waiting laddr o1 o2 o3 o4 hex
  local -a lines=()
  local -A deadline=() status=() probes=() listening=()
  local -a todo=()
  ssh_opts
  scan_running
  for name in "$@"; do
    [[ -n ${RUNNING[$name]:-} ]] || todo+=("$name")
  done
  # A host whose sshd died may still have sessions or daemons holding its
  # overlays; a second overlay on the same upper dir would be undefined.
  if ((${#todo[@]})); then kill_hosts "${todo[@]}"; fi
  for name in "$@"; do
    if [[ -n ${RUNNING[$name]:-} ]]; then
      status[$name]=running
    else
      spawn_host "$name"
      now_ms
      deadline[$name]=$((NOW_MS + READY_TIMEOUT_MS))
      status[$name]=waiting
    fi
  done
  # Poll pid files (no fork per host); as soon as a host listens, its ssh
  # probe starts in the background, so early hosts are not held up by
  # later ones.
  while :; do
    waiting=0
    now_ms
    for name in "$@"; do
      [[ ${status[$name]} == waiting ]] || continue
      hd=$DIR/$name
      pid=
      [[ -s $hd/pid ]] && read -r pid <"$hd/pid"
      if [[ -n $pid && -s $hd/sshd.pid ]]; then
        read -r spid <"$hd/sshd.pid"
        # sshd writes its PidFile once it listens; it must be the process our
        # namespace init became, not an older sshd of the same host.
        if [[ $spid == "$pid" ]]; then
          status[$name]=probing
          probe_host "$name" "${deadline[$name]}" {LOCK_FD}>&- &
          probes[$name]=$!
          continue
        fi
      fi
      if [[ -n $pid ]]; then
        proc_state "$pid"
        if [[ -z $PSTATE || $PSTATE == Z ]]; then
          status[$name]=failed
          host_failed "$name" "sshd (pid $pid) exited during start"
          rc=1
          continue
        fi
      fi
      if ((NOW_MS > deadline[$name])); then
        status[$name]=failed
        host_failed "$name" "sshd not listening after $((READY_TIMEOUT_MS / 1000))s"
        rc=1
        continue
      fi
      waiting=1
    done
    ((waiting)) || break
    sleep 0.05
  done
  for name in "$@"; do
    [[ ${status[$name]} == probing ]] || continue
    if wait "${probes[$name]}"; then
      status[$name]=started
    else
      status[$name]=failed
      host_failed "$name" "no ssh login within $((READY_TIMEOUT_MS / 1000))s"
      rc=1
    fi
  done
  # Hosts already running get no login (keeps a re-up fast), only a check
  # that something listens on their address:22, from one read of
  # /proc/net/tcp (a test connect would make each sshd fork a session).
  mapfile -t lines </proc/net/tcp
  for laddr in "${lines[@]}"; do
    read -r _ laddr _ o1 _ <<<"$laddr"
    [[ $o1 == 0A && $laddr == *:0016 ]] && listening[$laddr]=1
  done
  for name in "$@"; do
    host_addr "$name"
    pid=
    [[ -s $DIR/$name/pid ]] && read -r pid <"$DIR/$name/pid"
    case ${status[$name]} in
      running)
        IFS=. read -r o1 o2 o3 o4 <<<"$ADDR"
        printf -v hex '%02X%02X%02X%02X:0016' "$o4" "$o3" "$o2" "$o1"
        if [[ -n ${listening[$hex]:-} ]]; then
          echo "$name $ADDR running pid=$pid"
        else
          host_failed "$name" "process alive but nothing listens on $ADDR:22"
          echo "$name $ADDR FAILED (see $DIR/$name/sshd.log)"
          rc=1
        fi
        ;;
      started) echo "$name $ADDR started pid=$pid" ;;
      *) echo "$name $ADDR FAILED (see $DIR/$name/sshd.log)" ;;
    esac
  done
  return "$rc"
}
