# shellcheck shell=bash
# Common functions of the novadock lab (sourced by host, up, down, status, test).
# A lab host = a systemd-nspawn container booted from a cached, read-only image
# (base rootfs + optional role layer) under its own overlayfs upper layer.

LAB_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The lab's Debian release (README "Releases"): bookworm (OpenStack Zed, the default) or
# trixie (2025.1). Each release is a lab of its own, with its own names, addresses, state
# and cache, so both can run at once. The scripts take --release NAME (lab_release_arg).
LAB_RELEASE=${NOVADOCK_LAB_RELEASE:-bookworm}
case $LAB_RELEASE in
  # LAB_SUFFIX: of the lab's folders, operator namespace and inventory.
  # LAB_HNS: the hosts' namespaces' prefix; LAB_MACHINE: of nspawn machine names (both labs
  # have a ctl). LAB_TUN: the VXLAN endpoints' /24; LAB_PROV, LAB_VX: Neutron's lab-net, lab-vx.
  bookworm) LAB_SUFFIX="" LAB_HNS=nd- LAB_MACHINE="" LAB_NET=10.11.0 LAB_TUN=10.12.0 LAB_PROV=10.20.0 LAB_VX=10.30.0 ;;
  trixie) LAB_SUFFIX=-trixie LAB_HNS=ndt- LAB_MACHINE=trixie- LAB_NET=10.13.0 LAB_TUN=10.14.0 LAB_PROV=10.21.0 LAB_VX=10.31.0 ;;
  *) echo "lab: error: unknown release '$LAB_RELEASE' (known: bookworm, trixie)" >&2; exit 2 ;;
esac
LABDIR=${NOVADOCK_LAB_DIR:-/var/lib/novadock-lab$LAB_SUFFIX}
CACHE=${NOVADOCK_LAB_CACHE:-/var/cache/novadock-lab$LAB_SUFFIX}
KEY=$LABDIR/id_ed25519
KNOWN=$LABDIR/known_hosts
# The cluster's network (README "Topology"): every cluster host runs in its own
# network namespace (nd-NAME) with eth0 on the management bridge labbr0, eth1 on
# the provider bridge labbr1, eth2 on the tunnel bridge labbr2; the bridges live in the lab's own namespace
# LAB_NS, which is also the operator's: ssh, novadock and the Rust lab tests run
# there (lab_ns_exec), from LAB_OPERATOR. Nothing of it is in the VM's root
# namespace: no route off the machine.
LAB_NS=novadock-lab$LAB_SUFFIX
LAB_OPERATOR=$LAB_NET.1
# All lab host names and addresses: written into every host's /etc/hosts.
LAB_ETC_HOSTS="$LAB_NET.11 ctl
$LAB_NET.12 cmp1
$LAB_NET.13 cmp2
$LAB_NET.14 cmp3
$LAB_NET.15 kvm1
$LAB_NET.16 ctl2"
SSH_OPTS=(-i "$KEY" -o UserKnownHostsFile="$KNOWN" -o StrictHostKeyChecking=yes
  -o BatchMode=yes -o ConnectTimeout=5 -o LogLevel=ERROR -o GlobalKnownHostsFile=/dev/null)

die() { echo "lab: error: $*" >&2; exit 1; }
log() { echo "lab [$(date +%H:%M:%S)] $*" >&2; }

require_root() {
  [ "$(id -u)" = 0 ] || die "must run as root (it mounts overlayfs and boots systemd-nspawn containers); try: sudo $0"
}

# Installs what the lab needs on the VM, only when missing.
ensure_tools() {
  local missing=()
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
  command -v ssh >/dev/null || missing+=(openssh-client)
  command -v nsenter >/dev/null || missing+=(util-linux)
  command -v flock >/dev/null || missing+=(util-linux)
  command -v ip >/dev/null || missing+=(iproute2)
  command -v ethtool >/dev/null || missing+=(ethtool)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null ||
      die "cannot install ${missing[*]}"
  fi
  grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null ||
    die "the kernel has no overlayfs (needed for the hosts' copy-on-write layers)"
  mkdir -p "$LABDIR/hosts" "$CACHE"
  if [ ! -f "$KEY" ]; then
    ssh-keygen -q -t ed25519 -N '' -C novadock-lab -f "$KEY" || die "ssh-keygen failed"
  fi
  touch "$KNOWN"
}

# hash_of FILE...: short content hash of the given files (names + contents).
hash_of() {
  local f
  for f in "$@"; do echo "== ${f#"$LAB_SRC"/}"; render "$f"; done | sha256sum | cut -c1-12
}

# render FILE: a recipe file as this release builds it: bookworm's suite name and addresses
# replaced by the release's, a line tagged ` #@RELEASE` kept (untagged) for that release only.
# bookworm's rendering of an untagged file is the file itself: its image hashes stay as they were.
render() {
  sed -E -e "s/ #@$LAB_RELEASE\$//" -e '/ #@[a-z]+$/d' -e "s/bookworm/$LAB_RELEASE/g" \
    -e "s/10\.11\.0\./$LAB_NET./g; s/10\.12\.0\./$LAB_TUN./g" \
    -e "s/10\.20\.0\./$LAB_PROV./g; s/10\.30\.0\./$LAB_VX./g" "$1"
}

# render_dir SRC DST: every file of SRC rendered into DST (modes kept).
render_dir() {
  local f
  mkdir -p "$2"
  for f in "$1"/*; do
    render "$f" >"$2/${f##*/}"
    chmod --reference="$f" "$2/${f##*/}"
  done
}

base_hash() { hash_of "$LAB_SRC/recipe/base/build.sh"; }
base_dir() { echo "$CACHE/base-$(base_hash)"; }

# Builds the base rootfs once per recipe hash (locked: parallel callers wait).
ensure_base() {
  local dir; dir=$(base_dir)
  [ -f "$dir/.complete" ] && return 0
  exec 8>"$CACHE/.base.lock"
  flock 8
  if [ ! -f "$dir/.complete" ]; then
    log "building base image $dir (debootstrap, ~1-2 min)"
    local t0=$SECONDS
    rm -rf "$dir.tmp"
    mkdir -p "$dir.tmp"
    render "$LAB_SRC/recipe/base/build.sh" >"$dir.tmp/build.sh"
    bash "$dir.tmp/build.sh" "$dir.tmp/rootfs" >"$CACHE/base-build.log" 2>&1 ||
      die "base image build failed, see $CACHE/base-build.log"
    rm -rf "$dir"
    mv "$dir.tmp" "$dir"
    touch "$dir/.complete"
    prune_cache base- "$dir"
    log "base image built in $((SECONDS - t0)) s"
  fi
  exec 8>&-
}

# prune_cache PREFIX KEEP: removes cached images PREFIX* other than KEEP that no
# lab host (running or kept) is built on; they are left over from older recipes.
prune_cache() {
  local d
  for d in "$CACHE/$1"*; do
    if [ ! -d "$d" ] || [ "$d" = "$2" ]; then continue; fi
    case $d in *.tmp) continue ;; esac
    if cat "$LABDIR"/hosts/*/lower 2>/dev/null | grep -qF "$d/"; then continue; fi
    log "removing outdated image $d"
    rm -rf "$d"
  done
}

# A role's files: its own and the common ones (recipe/common: Open vSwitch + agent).
role_files() { find "$LAB_SRC/recipe/$1" "$LAB_SRC/recipe/common" -type f | sort; }
role_hash() {
  # shellcheck disable=SC2046
  { base_hash; hash_of $(role_files "$1"); } | sha256sum | cut -c1-12
}
role_dir() { echo "$CACHE/role-$1-$(role_hash "$1")"; }

hdir() { echo "$LABDIR/hosts/$1"; }

# host_pid NAME: prints the PID of the host's systemd-nspawn if it runs.
# Checks the PID's command line, so a recycled PID is never taken for it.
host_pid() {
  local f pid
  f="$(hdir "$1")/nspawn.pid"
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "systemd-nspawn .*-M $LAB_MACHINE$1 " || return 1
  echo "$pid"
}

# host_leader NAME: PID (on the VM) of the host's systemd (PID 1 inside).
host_leader() {
  local pid leader
  pid=$(host_pid "$1") || return 1
  leader=$(ps -o pid= --ppid "$pid" | head -n1 | tr -d ' ')
  [ -n "$leader" ] || return 1
  echo "$leader"
}

# host_exec NAME CMD...: runs CMD inside the host (all its namespaces) with a
# clean environment; no SSH needed, so it works before sshd is up.
host_exec() {
  local name=$1 leader; shift
  leader=$(host_leader "$name") || die "host $name is not running"
  nsenter -t "$leader" -a -- /usr/bin/env -i \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" DEBIAN_FRONTEND=noninteractive "$@"
}

host_ssh() {
  local name=$1; shift
  lab_ssh "$(cat "$(hdir "$name")/addr")" "$@"
}

# Replaces ADDR's lines in known_hosts by the host keys found under ROOT.
known_hosts_set() {
  local addr=$1 root=$2
  (
    flock 9
    grep -v "^$addr " "$KNOWN" >"$KNOWN.tmp" || true
    local k
    for k in "$root"/etc/ssh/ssh_host_*_key.pub; do
      echo "$addr $(cut -d' ' -f1,2 "$k")" >>"$KNOWN.tmp"
    done
    mv "$KNOWN.tmp" "$KNOWN"
  ) 9>"$LABDIR/.known_hosts.lock"
}
known_hosts_del() {
  (
    flock 9
    grep -v "^$1 " "$KNOWN" >"$KNOWN.tmp" || true
    mv "$KNOWN.tmp" "$KNOWN"
  ) 9>"$LABDIR/.known_hosts.lock"
}

# ---- network namespaces (README "Topology") ----
# lab_ns_exec CMD...: runs CMD on the VM inside the lab's namespace (the operator's side).
lab_ns_exec() { ip netns exec "$LAB_NS" "$@"; }
in_lab_net() { [[ $1 == "$LAB_NET".* ]]; }

# lab_ssh ADDR [ARGS...]: ssh root@ADDR with the lab key, from where ADDR is reachable.
lab_ssh() {
  local addr=$1; shift
  # shellcheck disable=SC2029  # the command is meant to run on the host
  if in_lab_net "$addr"; then
    lab_ns_exec ssh "${SSH_OPTS[@]}" "root@$addr" "$@"
  else
    ssh "${SSH_OPTS[@]}" "root@$addr" "$@"
  fi
}

# lab_net_up: the lab's namespace with the management bridge labbr0 (operator
# address LAB_OPERATOR), the provider bridge labbr1 and the tunnel bridge labbr2
# (no addresses). Idempotent.
lab_net_up() {
  (
    flock 9
    [ -e "/run/netns/$LAB_NS" ] || ip netns add "$LAB_NS" || exit 1
    ip -n "$LAB_NS" link set lo up || exit 1
    for br in labbr0 labbr1 labbr2; do
      ip -n "$LAB_NS" link show "$br" >/dev/null 2>&1 ||
        ip -n "$LAB_NS" link add "$br" type bridge || exit 1
      ip -n "$LAB_NS" link set "$br" up || exit 1
    done
    ip -n "$LAB_NS" addr replace "$LAB_OPERATOR/24" dev labbr0 || exit 1
  ) 9>"$LABDIR/.net.lock" || die "cannot set up the lab's network namespace $LAB_NS"
}

# host_net_up NAME ADDR: a fresh network namespace nd-NAME (LAB_HNS NAME) for the host: eth0
# (ADDR/24) on labbr0, eth1 (no address: Neutron's provider network) on labbr1,
# eth2 (no address: the VXLAN underlay, see recipe/common/lab-ovs-bridges) on labbr2.
host_net_up() {
  local name=$1 addr=$2 ns=$LAB_HNS$1 i peer
  lab_net_up
  ip netns del "$ns" 2>/dev/null || true # left over from a crash; its veths go with it
  ip netns add "$ns" || die "cannot create network namespace $ns"
  ip -n "$ns" link set lo up
  for i in 0 1 2; do
    peer="${name:0:12}-$i"
    ip -n "$LAB_NS" link del "$peer" 2>/dev/null || true
    if ! { ip -n "$LAB_NS" link add "$peer" type veth peer name "eth$i" netns "$ns" &&
      ip -n "$LAB_NS" link set "$peer" master "labbr$i" up && ip -n "$ns" link set "eth$i" up; }; then
      die "cannot plug $name's eth$i into labbr$i"
    fi
    # OVS's userspace datapath sends what the kernel left to TX checksum
    # offload with bad checksums: offload off on both ends (issue 12).
    if ! { lab_ns_exec ethtool -K "$peer" tx off && ip netns exec "$ns" ethtool -K "eth$i" tx off; } >/dev/null 2>&1; then
      die "ethtool -K tx off failed for $name's eth$i"
    fi
  done
  ip -n "$ns" addr add "$addr/24" dev eth0 || die "cannot address $name's eth0"
}

host_net_down() {
  ip netns del "$LAB_HNS$1" 2>/dev/null || true
}

# Writes the per-host identity into the mounted root (host not booted).
host_prep() {
  local root=$1 name=$2 addr=$3 hostname=$4 docker=$5
  echo "$hostname" >"$root/etc/hostname"
  {
    echo "127.0.0.1 localhost"
    echo "$LAB_ETC_HOSTS"
    # Other hosts (build hosts, the core's) resolve their own name too (postinsts run hostname -f).
    grep -qE " $hostname\$" <<<"$LAB_ETC_HOSTS" || echo "127.0.1.1 $hostname"
  } >"$root/etc/hosts"
  # sshd listens on this host's own address only: all hosts share one network.
  mkdir -p "$root/etc/ssh/sshd_config.d"
  cat >"$root/etc/ssh/sshd_config.d/00-lab.conf" <<EOF
ListenAddress $addr
PermitRootLogin prohibit-password
PasswordAuthentication no
UseDNS no
EOF
  # Copies of one image would share host keys: make this host's own.
  if ! ls "$root"/etc/ssh/ssh_host_*_key >/dev/null 2>&1; then
    ssh-keygen -A -f "$root" >/dev/null
  fi
  install -d -m 700 "$root/root/.ssh"
  # A kept layer is a host powered on again: what was configured on it since (keys authorized,
  # daemon.json) stays, as on a real reboot; only the lab's own access is ensured.
  if [ -f "$root/../prepped" ]; then
    touch "$root/root/.ssh/authorized_keys"
    grep -qxF "$(cat "$KEY.pub")" "$root/root/.ssh/authorized_keys" ||
      cat "$KEY.pub" >>"$root/root/.ssh/authorized_keys"
    return 0
  fi
  install -m 600 "$KEY.pub" "$root/root/.ssh/authorized_keys"
  if [ "$docker" = 1 ]; then
    # nspawn mounts the cgroup controllers read-only; dockerd/runc must
    # create cgroups in them, so remount them rw before docker starts.
    cat >"$root/etc/systemd/system/lab-cgroup-rw.service" <<'EOF'
[Unit]
Description=novadock lab: cgroup controllers writable for dockerd
DefaultDependencies=no
Before=containerd.service docker.service docker.socket
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'for d in /sys/fs/cgroup/*/; do [ -L "$${d%%/}" ] || mount -o remount,bind,rw "$$d"; done'
[Install]
WantedBy=sysinit.target
EOF
    mkdir -p "$root/etc/systemd/system/sysinit.target.wants"
    ln -sf ../lab-cgroup-rw.service "$root/etc/systemd/system/sysinit.target.wants/lab-cgroup-rw.service"
    # No docker0 bridge, no iptables rules (as inventories/lab.yml's docker_daemon).
    mkdir -p "$root/etc/docker"
    cat >"$root/etc/docker/daemon.json" <<EOF
{ "bridge": "none", "iptables": false, "ip6tables": false, "ip-forward": false, "ip-masq": false,
  "insecure-registries": ["$LAB_NET.14:5000"] }
EOF
    # If the image has docker, this host runs it.
    if [ -f "$root/lib/systemd/system/docker.service" ]; then
      rm -f "$root/etc/systemd/system/docker.service" "$root/etc/systemd/system/docker.socket" \
        "$root/etc/systemd/system/containerd.service"
      systemctl --root="$root" enable docker.service containerd.service >/dev/null 2>&1 ||
        die "cannot enable docker in $root"
    fi
  fi
  touch "$root/../prepped"
}

# host_up NAME ADDR [--docker] [--hostname H] [--layer DIR]... [--bind SRC:DST]... [--prep FUNC]
# Boots the host (if not running) and waits until root SSH with the lab key works.
host_up() {
  local name=$1 addr=$2; shift 2
  local docker=0 hostname=$name layers=() binds=() prep=""
  while [ $# -gt 0 ]; do
    case $1 in
      --docker) docker=1 ;;
      --hostname) hostname=$2; shift ;;
      --layer) layers+=("$2"); shift ;;
      --bind) binds+=("--bind=$2"); shift ;;
      --prep) prep=$2; shift ;;
      *) die "host up: unknown option $1" ;;
    esac
    shift
  done
  [[ $name =~ ^[a-z][a-z0-9-]{0,30}$ ]] || die "bad host name '$name' (use [a-z][a-z0-9-]*)"
  # 127.x: the host shares the VM's network (the core's tests); $LAB_NET.x: its own namespace.
  [[ $addr =~ ^(127\.[0-9]+\.[0-9]+|${LAB_NET//./\\.})\.[0-9]+$ ]] ||
    die "bad address '$addr': lab hosts use 127.0.0.0/8 (VM's network) or $LAB_NET.0/24 (own namespace)"
  local d; d=$(hdir "$name")
  if host_pid "$name" >/dev/null; then
    [ "$(cat "$d/addr")" = "$addr" ] || die "host $name already runs with address $(cat "$d/addr")"
    wait_ssh "$name" "$addr"
    log "host $name already up"
    return 0
  fi
  local lower="" l
  for l in "${layers[@]}"; do lower+="$l:"; done
  lower+="$(base_dir)/rootfs"
  [[ $lower == *,* ]] && die "lab paths must not contain commas: $lower"
  mkdir -p "$d"
  mountpoint -q "$d/root" 2>/dev/null && { umount "$d/root" || die "cannot unmount stale $d/root"; }
  # An upper layer only makes sense on the lower layers it was made on.
  if [ -f "$d/lower" ] && [ "$(cat "$d/lower")" != "$lower" ]; then
    log "host $name: image changed, resetting its layer"
    rm -rf "$d/upper" "$d/work"
  fi
  mkdir -p "$d/upper" "$d/work" "$d/root"
  echo "$lower" >"$d/lower"
  echo "$addr" >"$d/addr"
  mount -t overlay overlay -o "lowerdir=$lower,upperdir=$d/upper,workdir=$d/work" "$d/root" ||
    die "cannot mount overlayfs for $name"
  host_prep "$d/root" "$name" "$addr" "$hostname" "$docker"
  [ -n "$prep" ] && "$prep" "$d/root" "$name" "$addr"
  known_hosts_set "$addr" "$d/root"
  local flags=()
  if in_lab_net "$addr"; then
    host_net_up "$name" "$addr"
    # Own network namespace; OVS's userspace datapath makes its internal ports
    # as tap devices (/dev/net/tun); Neutron's agents make namespaces (mount, setns).
    flags+=("--network-namespace-path=/run/netns/$LAB_HNS$name" --bind=/dev/net/tun --capability=all
      "--system-call-filter=@mount @keyring bpf add_key keyctl")
  fi
  if [ "$docker" = 1 ]; then
    # dockerd needs a plain directory (not overlayfs) for its own overlay2.
    mkdir -p "$d/docker" "$d/containerd"
    flags+=(--capability=all "--system-call-filter=@mount @keyring bpf add_key keyctl"
      "--bind=$d/docker:/var/lib/docker" "--bind=$d/containerd:/var/lib/containerd")
  fi
  # --keep-unit: there is no system bus to register a scope with.
  # setsid: the host outlives this script; the wrapper records the exact PID.
  # shellcheck disable=SC2016  # $$ and $@ belong to the inner bash
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$d/nspawn.pid" \
    systemd-nspawn -D "$d/root" -M "$LAB_MACHINE$name" --register=no --keep-unit \
    "${flags[@]}" "${binds[@]}" -b </dev/null >"$d/console.log" 2>&1 &
  for _ in $(seq 50); do host_pid "$name" >/dev/null && break; sleep 0.1; done
  host_pid "$name" >/dev/null || die "host $name: systemd-nspawn did not start; see $d/console.log"
  wait_ssh "$name" "$addr"
}

wait_ssh() {
  local name=$1 addr=$2
  for _ in $(seq 240); do
    host_pid "$name" >/dev/null || die "host $name stopped while booting; see $(hdir "$name")/console.log"
    if lab_ssh "$addr" true 2>/dev/null; then
      log "host $name up: ssh ${SSH_OPTS[*]:0:6} root@$addr"
      return 0
    fi
    sleep 0.5
  done
  die "host $name: no SSH on $addr after 120 s; see $(hdir "$name")/console.log"
}

# host_down NAME [--keep]: orderly poweroff (SIGTERM to its nspawn, by PID),
# SIGKILL after 60 s, unmount; removes the host's layer unless --keep.
host_down() {
  local name=$1 keep=${2:-} d pid
  d=$(hdir "$name")
  [ -d "$d" ] || return 0
  if pid=$(host_pid "$name"); then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 600); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
    if [ -d "/proc/$pid" ]; then
      log "host $name: no poweroff after 60 s, killing nspawn $pid"
      kill -KILL "$pid" 2>/dev/null || true
      for _ in $(seq 100); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
    fi
  fi
  rm -f "$d/nspawn.pid"
  # A power cycle (--keep) leaves the host's namespace, so its address refuses connections
  # at once (RST) until it is back, as a 127.0.0.x host did; otherwise the namespace goes.
  [ "$keep" = --keep ] || host_net_down "$name"
  if mountpoint -q "$d/root" 2>/dev/null; then
    for _ in $(seq 50); do umount "$d/root" 2>/dev/null && break; sleep 0.2; done
    mountpoint -q "$d/root" && die "host $name: $d/root is still mounted (busy?)"
  fi
  [ -f "$d/addr" ] && known_hosts_del "$(cat "$d/addr")"
  if [ "$keep" != --keep ]; then
    rm -rf "$d"
  fi
  log "host $name down"
}

# Per-role build host: name, address, hostname. ctl's image binds its
# services to ctl's address, so it must be built as ctl on that address.
role_build_addr() { case $1 in ctl) echo "$LAB_NET.11" ;; *) echo "$LAB_NET.19" ;; esac; }
role_build_hostname() { case $1 in ctl) echo ctl ;; *) echo "build-$1" ;; esac; }

role_build_prep() { # ROOT NAME ADDR: copy the role's recipe into the build host
  rm -rf "$1/root/lab-role"
  render_dir "$LAB_SRC/recipe/$ROLE_BUILDING" "$1/root/lab-role"
  render_dir "$LAB_SRC/recipe/common" "$1/root/lab-role/common"
  # For the package download only (host_exec_vmnet); emptied before the image is kept.
  rm -f "$1/etc/resolv.conf"
  cat /etc/resolv.conf >"$1/etc/resolv.conf"
}

# host_exec_vmnet NAME CMD...: like host_exec, but in the VM's network namespace
# (everything else the host's): a build host downloads its packages this way,
# the only time a lab host reaches beyond the lab's own networks.
host_exec_vmnet() {
  local name=$1 leader; shift
  leader=$(host_leader "$name") || die "host $name is not running"
  nsenter -t "$leader" -m -u -i -p -C -- /usr/bin/env -i \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 TERM=dumb DEBIAN_FRONTEND=noninteractive "$@"
}

# ensure_role ROLE: builds the role's image layer once per hash: boots a build
# host on the base image, runs recipe/ROLE/setup.sh in it, powers it off and
# keeps its upper layer (cleaned of per-host identity) as the role layer.
ensure_role() {
  local role=$1 dir name addr
  dir=$(role_dir "$role")
  [ -f "$dir/.complete" ] && return 0
  exec 7>"$CACHE/.role-$role.lock"
  flock 7
  if [ ! -f "$dir/.complete" ]; then
    name=build-$role addr=$(role_build_addr "$role")
    local t0=$SECONDS logf=$CACHE/role-$role-build.log
    log "building image for role $role ($dir), log: $logf"
    : >"$logf"
    host_down "$name"
    # Own package cache per role: parallel builds would fight over apt's lock.
    mkdir -p "$CACHE/apt-archives/$role/partial"
    ROLE_BUILDING=$role host_up "$name" "$addr" --hostname "$(role_build_hostname "$role")" \
      --bind "$CACHE/apt-archives/$role:/var/cache/apt/archives" --prep role_build_prep 2>>"$logf"
    # Packages are downloaded with the VM's network; setup.sh installs them offline.
    local pkgs
    pkgs=$(render "$LAB_SRC/recipe/$role/packages" | grep -v '^#' | tr '\n' ' ')
    # shellcheck disable=SC2086  # a word list
    host_exec_vmnet "$name" apt-get install -d -y -q $pkgs >>"$logf" 2>&1 ||
      die "role $role: package download failed (log: $logf)"
    # The build itself has no network: no resolver to wait for.
    host_exec "$name" sh -c ': >/etc/resolv.conf'
    if ! host_exec "$name" bash /root/lab-role/setup.sh >>"$logf" 2>&1; then
      tail -n 25 "$logf" >&2
      die "role $role build failed (log: $logf). The build host is left running for inspection:
  $LAB_SRC/host exec $name bash      # look around
  $LAB_SRC/host down $name           # discard it"
    fi
    host_down "$name" --keep
    host_net_down "$name"
    local up; up=$(hdir "$name")/upper
    # Per-host identity is not part of an image.
    : >"$up/etc/resolv.conf"
    rm -rf "$up/root/lab-role" "$up/root/.ssh" "$up"/etc/ssh/ssh_host_* \
      "$up/etc/ssh/sshd_config.d/00-lab.conf" "$up/var/lib/systemd/random-seed" "$up"/var/log/journal/*
    [ -f "$up/etc/machine-id" ] && : >"$up/etc/machine-id"
    rm -rf "$dir"
    mkdir -p "$dir"
    mv "$up" "$dir/layer"
    rm -rf "$(hdir "$name")"
    touch "$dir/.complete"
    prune_cache "role-$role-" "$dir"
    log "role $role image built in $((SECONDS - t0)) s ($(du -sh "$dir/layer" | cut -f1))"
  fi
  exec 7>&-
}

# ---- the cluster of issue 3 ----
# shellcheck disable=SC2034  # used by up/status/test
CLUSTER_COMPUTES="cmp1:$LAB_NET.12:docker cmp2:$LAB_NET.13:docker cmp3:$LAB_NET.14:docker kvm1:$LAB_NET.15:nodocker"
# shellcheck disable=SC2034
CTL_ADDR=$LAB_NET.11
REPO_ROOT=$(cd "$LAB_SRC/../.." && pwd)
INVENTORY=$REPO_ROOT/inventories/lab$LAB_SUFFIX.yml

# ROOT NAME ADDR: no periodic cells discovery on ctl (the image's nova.conf has it every 20 s):
# a new compute is mapped only by `nova-manage cell_v2 discover_hosts`, which add-compute
# runs (issue 15). Done at boot, not in the recipe, so the cached image stays valid.
ctl_prep() {
  sed -i 's/^discover_hosts_in_cells_interval = .*/discover_hosts_in_cells_interval = -1/' "$1/etc/nova/nova.conf"
}

# The HA lab (`up --ha`): ctl2 is a second controller with glance-api, nova-api and
# nova-scheduler against ctl's MariaDB, RabbitMQ, Keystone and memcached (an HA pair without a
# load balancer: the catalog names ctl). It boots ctl's image; what ctl alone runs is masked,
# the services bind ctl2's address. Both Glances store images in one directory (GLANCE_SHARED,
# bound into both: the shared store an HA Glance needs).
CTL2_ADDR=$LAB_NET.16
GLANCE_SHARED=$LABDIR/glance-images
ctl2_prep() { # ROOT NAME ADDR
  local u
  ctl_prep "$@"
  for u in epmd.service epmd.socket haproxy.service keystone.service mariadb.service mariadb.socket \
    memcached.service rabbitmq-server.service placement-api.service nova-conductor.service \
    nova-api-metadata.service neutron-api.service neutron-rpc-server.service neutron-dhcp-agent.service \
    neutron-metadata-agent.service neutron-openvswitch-agent.service openvswitch-switch.service \
    ovsdb-server.service ovs-vswitchd.service lab-ovs-bridges.service; do
    ln -sf /dev/null "$1/etc/systemd/system/$u"
  done
  # (the image's nova.conf names its host `ctl`: ctl2's scheduler would be ctl's service record)
  sed -i -E "s/^(my_ip|osapi_compute_listen) = .*/\1 = $3/; s/^host = .*/host = $2/" "$1/etc/nova/nova.conf"
  sed -i -E "s/^bind_host = .*/bind_host = $3/" "$1/etc/glance/glance-api.conf"
  sed -i -E "s|--http-socket [0-9.]+:|--http-socket $3:|" "$1/etc/default/nova-api"
  # One nova-api process: no client uses this API (the catalog names ctl's).
  sed -i -E 's/^processes = .*/processes = 1/' "$1/etc/nova/nova-api-uwsgi.ini"
}

# glance_shared_up: the Glance store both controllers share, owned as the image's glance.
glance_shared_up() {
  local owner
  owner=$(stat -c %u:%g "$(role_dir ctl)/layer/var/lib/glance/images") ||
    die "ctl's image has no /var/lib/glance/images"
  install -d -m 750 -o "${owner%:*}" -g "${owner#*:}" "$GLANCE_SHARED"
}

compute_prep() { # ROOT NAME ADDR: this compute's own nova identity
  sed -i "s/@HOST@/$2/; s/@IP@/$3/" "$1/etc/nova/nova.conf"
  # At boot nova-compute waits for ctl's conductor, which the loaded lab brings up in 1.5-2
  # min: past systemd's default 90 s start timeout, which killed and restarted every
  # compute's nova-compute (its Python start paid twice, on the CPUs ctl needs meanwhile).
  mkdir -p "$1/etc/systemd/system/nova-compute.service.d"
  printf '[Service]\nTimeoutStartSec=300\n' >"$1/etc/systemd/system/nova-compute.service.d/lab-start.conf"
  # Packages the image holds but does not install (trixie: docker-cli, which the bootstrap
  # installs): in apt's cache, where `apt-get install` finds them with no network.
  if [ -d "$1/var/lib/lab-debs" ]; then
    cp -n "$1"/var/lib/lab-debs/*.deb "$1/var/cache/apt/archives/"
  fi
}

# docker_ping HOST: dockerd answers on its socket (its API, not the CLI: trixie's computes
# have no `docker` command before the bootstrap installs docker-cli).
docker_ping() {
  host_exec "$1" python3 -c 'import socket
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect("/run/docker.sock")
s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
raise SystemExit(0 if b" 200 " in s.recv(4096).split(b"\r\n")[0] else 1)' >/dev/null 2>&1
}

# ctl_os ARGS...: the openstack CLI on ctl as admin.
# A hung API request must not hang the caller: 120 s timeout per call.
ctl_os() {
  host_exec ctl timeout 120 bash -c '. /root/admin-openrc && exec openstack "$@"' _ "$@"
}

# Names of running lab hosts.
lab_hosts() {
  local d
  for d in "$LABDIR"/hosts/*/; do
    [ -d "$d" ] || continue
    host_pid "$(basename "$d")" >/dev/null && basename "$d"
  done
  return 0
}

# PIDs (on the VM) of every process of the running lab: nspawn + all inside.
# One find over /proc (a readlink per process is slow on a loaded machine).
lab_pids() {
  local n pid leader ns expr=()
  for n in $(lab_hosts); do
    pid=$(host_pid "$n") || continue
    echo "$pid"
    leader=$(host_leader "$n") || continue
    ns=$(readlink "/proc/$leader/ns/pid") || continue
    [ ${#expr[@]} = 0 ] || expr+=(-o)
    expr+=(-lname "pid:\\[${ns//[^0-9]/}\\]")
  done
  [ ${#expr[@]} -gt 0 ] || return 0
  # (find exits 1 when processes vanish during the walk, or on unreadable entries)
  { find /proc -mindepth 3 -maxdepth 3 -path '/proc/[0-9]*/ns/pid' \( "${expr[@]}" \) -printf '%h\n' 2>/dev/null || true; } |
    cut -d/ -f3
}

# Lab memory in MiB: sum of the proportional set size (Pss) of its processes.
lab_mem_mib() {
  # (cat, not awk, reads the files: a process may exit meanwhile)
  lab_pids | sed 's|.*|/proc/&/smaps_rollup|' | { xargs -r cat 2>/dev/null || true; } |
    awk '/^Pss:/ {s += $2} END {print int(s / 1024)}'
}

# Lab disk in MiB: image cache + hosts' layers (-x: not through the overlay mounts).
lab_disk_mib() {
  du -smx "$CACHE" "$LABDIR" 2>/dev/null | awk '{s += $1} END {print s + 0}'
}

# both_labs FUNC: FUNC's figure summed over both releases' labs (each with its own paths).
both_labs() {
  local r
  for r in bookworm trixie; do
    NOVADOCK_LAB_RELEASE=$r bash -c '. "$1/lib.sh"; "$2"' _ "$LAB_SRC" "$1"
  done | awk '{s += $1} END {print s + 0}'
}

# What of the cluster reaches beyond the lab's own networks (should print nothing):
# a cluster host in the VM's network namespace, a lab process listening there, a
# route in a host's namespace other than its own lab links (no default route).
lab_bad_listeners() {
  local root h leader pids out
  root=$(readlink /proc/1/ns/net)
  for h in ctl ctl2 cmp1 cmp2 cmp3 kvm1; do
    leader=$(host_leader "$h") || continue
    [ "$(readlink "/proc/$leader/ns/net")" != "$root" ] || echo "$h: runs in the VM's network namespace"
    out=$(ip -n "$LAB_HNS$h" route show default 2>&1; ip -n "$LAB_HNS$h" -6 route show default 2>&1)
    [ -z "$out" ] || echo "$h: default route: $out"
  done
  pids=" $(lab_pids | tr '\n' ' ') "
  ss -ltunpH | while read -r _ _ _ _ local _ procs; do
    local p
    while read -r p; do
      case $pids in *" $p "*) echo "in the VM's network namespace: $local $procs"; break ;; esac
    done < <(grep -o 'pid=[0-9]*' <<<"$procs" | cut -d= -f2)
  done
}

write_inventory() {
  local ctl2=""
  # The HA lab's second controller (up --ha), after ctl: the first controller runs the prefetch timer.
  host_pid ctl2 >/dev/null && ctl2="
  ctl2: { address: $CTL2_ADDR, groups: [controllers] }"
  mkdir -p "$(dirname "$INVENTORY")"
  cat >"$INVENTORY.tmp" <<EOF
# Written by tests/lab/up: the local lab (cmp3 is left out on purpose: it is
# added later to test "add a compute node").
ssh:
  user: root
  port: 22
  identity_file: $KEY
  known_hosts: $KNOWN
hosts:
  ctl:  { address: $LAB_NET.11, groups: [controllers] }$ctl2
  cmp1: { address: $LAB_NET.12, groups: [docker_computes] }
  cmp2: { address: $LAB_NET.13, groups: [docker_computes] }
  kvm1: { address: $LAB_NET.15, groups: [kvm_computes] }
vars:
  openstack_release: $(case $LAB_RELEASE in bookworm) echo zed ;; *) echo "auto   # detected from the installed nova: 2025.1 on trixie" ;; esac)
  # The Docker driver is novadock's own (docker_driver_source: bundled, the default).
  # No docker0 bridge, no iptables rules: the hosts' networking is Neutron's (Open vSwitch).
  # The prefetch test's registry on $LAB_NET.14 speaks plain http; docker trusts that
  # on 127.0.0.0/8 only.
  docker_daemon: { bridge: none, iptables: false, ip6tables: false, ip-forward: false, ip-masq: false, insecure-registries: ["$LAB_NET.14:5000"] }
EOF
  mv "$INVENTORY.tmp" "$INVENTORY"
}

# make_tiny_image HOST: builds docker image lab/tiny:latest on HOST offline
# (dash, sleep and their libraries; CMD sleep infinity), no registry needed.
make_tiny_image() {
  # shellcheck disable=SC2016  # runs on the host
  host_ssh "$1" 'set -e
rm -rf /root/tiny && mkdir -p /root/tiny
for f in /bin/dash /bin/sleep $(ldd /bin/dash /bin/sleep | grep -o "/[^ :]*\.so[^ :]*"); do cp --parents -L "$f" /root/tiny/; done
ln -s dash /root/tiny/bin/sh
tar -C /root/tiny -cf /root/tiny-rootfs.tar .
docker rmi -f lab/tiny:latest >/dev/null 2>&1 || true
docker import --change "CMD [\"/bin/sleep\", \"infinity\"]" /root/tiny-rootfs.tar lab/tiny:latest >/dev/null'
}

# make_big_image HOST NAME SIZE_MB: builds docker image NAME (repo:tag) on HOST offline,
# of at least SIZE_MB: make_tiny_image's rootfs plus SIZE_MB of random bytes. Random, so
# that no compression along the way (Glance, docker save/load) makes the image smaller than
# it claims: boot-time without prefetch must really move SIZE_MB.
make_big_image() {
  local host=$1 name=$2 size=$3
  [[ $name =~ ^[a-z0-9][a-z0-9._/-]*:[A-Za-z0-9._-]+$ ]] || die "make_big_image: bad image name '$name' (want repo:tag)"
  [[ $size =~ ^[1-9][0-9]*$ ]] || die "make_big_image: bad size '$size' (MB, a positive integer)"
  # shellcheck disable=SC2016  # runs on the host
  host_ssh "$host" "set -e; name='$name'; size='$size'"'
d=$(mktemp -d /root/big-image.XXXXXX)
trap "rm -rf \"\$d\"" EXIT
mkdir "$d/root"
for f in /bin/dash /bin/sleep $(ldd /bin/dash /bin/sleep | grep -o "/[^ :]*\.so[^ :]*"); do cp --parents -L "$f" "$d/root/"; done
ln -s dash "$d/root/bin/sh"
head -c "${size}M" /dev/urandom >"$d/root/payload.bin"
tar -C "$d/root" -cf "$d/rootfs.tar" .
docker rmi -f "$name" >/dev/null 2>&1 || true
docker import --change "CMD [\"/bin/sleep\", \"infinity\"]" "$d/rootfs.tar" "$name" >/dev/null'
}
