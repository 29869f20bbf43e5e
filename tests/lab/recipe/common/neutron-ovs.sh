#!/bin/bash
# Open vSwitch (userspace datapath) and Neutron's Open vSwitch agent, on every lab
# host that runs the agent (ctl for its DHCP port, the computes). Runs INSIDE a
# build host, from the role's setup.sh, after the packages are installed.
# The host's neutron.conf (RabbitMQ, rootwrap) is the role's own.
set -euo pipefail
install -m 755 /root/lab-role/common/lab-ovs-bridges /usr/local/sbin/lab-ovs-bridges
cat >/etc/systemd/system/lab-ovs-bridges.service <<'X'
[Unit]
Description=novadock lab: OVS bridges br-provider (eth1) and br-tnl (eth2) on the userspace datapath
Requires=openvswitch-switch.service
After=openvswitch-switch.service
Before=neutron-openvswitch-agent.service
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/lab-ovs-bridges
[Install]
WantedBy=multi-user.target
X
mkdir -p /etc/systemd/system/neutron-openvswitch-agent.service.d
cat >/etc/systemd/system/neutron-openvswitch-agent.service.d/lab.conf <<'X'
[Unit]
Requires=lab-ovs-bridges.service
After=lab-ovs-bridges.service
X
f=/etc/neutron/plugins/ml2/openvswitch_agent.ini
[ -f "$f.orig" ] || cp "$f" "$f.orig"
# local_ip is set at boot by lab-ovs-bridges (per host).
cat >"$f" <<'X'
[ovs]
datapath_type = netdev
integration_bridge = br-int
tunnel_bridge = br-tun
bridge_mappings = physnet1:br-provider
local_ip = 0.0.0.0
[agent]
tunnel_types = vxlan
[securitygroup]
enable_security_group = true
firewall_driver = openvswitch
X
chown root:neutron "$f"
chmod 640 "$f"
systemctl enable openvswitch-switch lab-ovs-bridges neutron-openvswitch-agent >/dev/null 2>&1
