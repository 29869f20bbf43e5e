#!/bin/bash
# What a Nova driver does for an instance's Neutron port, done by hand on a lab
# compute (run there as root: tests/lab/test pipes it into `host exec HOST bash -s`):
#   plug NAME PORT_ID MAC   network namespace NAME ("the instance") with eth0 = MAC,
#                           whose veth peer is an OVS port of br-int carrying the port's
#                           iface-id, attached-mac and iface-status (the agent binds it);
#                           then a DHCP lease on eth0; prints eth0's IPv4 address
#   unplug NAME             removes the namespace, the OVS port and the DHCP client
set -euo pipefail
die() { echo "fake-vm: $*" >&2; exit 1; }
[ $# -ge 2 ] || die "usage: plug NAME PORT_ID MAC | unplug NAME"
cmd=$1 name=$2
[[ $name =~ ^[a-z][a-z0-9]{0,7}$ ]] || die "bad name '$name'"
tap=tap-$name # the host end (<= 15 characters)
case $cmd in
  plug)
    [ $# = 4 ] || die "usage: plug NAME PORT_ID MAC"
    id=$3 mac=$4
    [[ $id =~ ^[0-9a-f-]{36}$ ]] || die "bad port id '$id'"
    [[ $mac =~ ^([0-9a-f]{2}:){5}[0-9a-f]{2}$ ]] || die "bad MAC '$mac'"
    ip netns add "$name"
    ip -n "$name" link set lo up
    ip link add "$tap" type veth peer name eth0 netns "$name"
    ip -n "$name" link set eth0 address "$mac"
    # The userspace datapath forwards what TX checksum offload left unfinished.
    ethtool -K "$tap" tx off >/dev/null
    ip netns exec "$name" ethtool -K eth0 tx off >/dev/null
    ovs-vsctl --timeout=10 add-port br-int "$tap" -- set Interface "$tap" \
      "external-ids:iface-id=$id" "external-ids:attached-mac=$mac" external-ids:iface-status=active
    ip link set "$tap" up
    ip -n "$name" link set eth0 up
    # One DHCP exchange with Neutron's dnsmasq (-1: no retries forever). Our own
    # dhclient-script only sets the address: Debian's would rewrite this host's resolv.conf.
    cat >/run/fake-vm-dhcp-script <<'X'
#!/bin/sh
case $reason in
  BOUND | RENEW | REBIND | REBOOT) ip -4 addr replace "$new_ip_address/$new_subnet_mask" dev "$interface" ;;
esac
exit 0
X
    chmod 755 /run/fake-vm-dhcp-script
    ip netns exec "$name" timeout 60 dhclient -1 -4 -sf /run/fake-vm-dhcp-script \
      -pf "/run/fake-vm-$name.pid" -lf "/run/fake-vm-$name.leases" eth0 ||
      die "no DHCP lease for $name (port $id) on eth0"
    ip -n "$name" -4 -o addr show dev eth0 | awk '{ split($4, a, "/"); print a[1] }'
    ;;
  unplug)
    if [ -f "/run/fake-vm-$name.pid" ]; then kill "$(cat "/run/fake-vm-$name.pid")" 2>/dev/null || true; fi
    rm -f "/run/fake-vm-$name.pid" "/run/fake-vm-$name.leases"
    ovs-vsctl --timeout=10 --if-exists del-port br-int "$tap"
    # What the test started in the instance (a TCP listener) ends with it.
    pids=$(ip netns pids "$name" 2>/dev/null || true)
    # shellcheck disable=SC2086  # a list of PIDs
    [ -z "$pids" ] || kill $pids 2>/dev/null || true
    ip netns del "$name" 2>/dev/null || true
    ;;
  *) die "unknown command '$cmd'" ;;
esac
