#!/bin/bash
# Builds the lab compute image (cmp1-3, kvm1). Runs INSIDE a booted build host.
# nova-compute with nova's fake driver (nova-compute-ironic satisfies the
# hypervisor dependency without libvirt/qemu) and docker.io and docker-registry, left disabled:
# `host up --docker` enables docker on the hosts that run it.
# Per-host values (@HOST@, @IP@ in /etc/nova/nova.conf) are set by tests/lab/up.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
CTL=10.11.0.11
step() { echo "compute-setup [$(date +%T)] $*"; }

printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
chmod +x /usr/sbin/policy-rc.d
printf '%s\n' "nova-common nova/configure_db boolean false" \
  "neutron-common neutron/configure_db boolean false" | debconf-set-selections

step "apt install"
# docker-cli: kept for the hosts' apt cache, not installed (packages; lib.sh compute_prep). #@trixie
mkdir -p /var/lib/lab-debs && cp /var/cache/apt/archives/docker-cli_*.deb /var/lib/lab-debs/ #@trixie
sed -i '/^docker-cli$/d' /root/lab-role/packages #@trixie
# shellcheck disable=SC2046  # a word list; downloaded beforehand, installed offline
apt-get install -y -q -o Dpkg::Options::=--force-confold \
  $(grep -v '^#' /root/lab-role/packages) >/root/compute-apt.log 2>&1 ||
  { tail -30 /root/compute-apt.log; exit 1; }
rm -f /usr/sbin/policy-rc.d

step "configure"
for u in iscsid.socket iscsid.service open-iscsi.service; do
  ln -sf /dev/null "/etc/systemd/system/$u"
done
systemctl disable docker.service docker.socket containerd.service docker-registry.service >/dev/null 2>&1
[ -f /etc/nova/nova.conf.orig ] || cp /etc/nova/nova.conf /etc/nova/nova.conf.orig
auth() { # user
  cat <<EOF
auth_url = http://$CTL:5000
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = $1
password = ${1}pass
region_name = RegionOne
EOF
}
cat >/etc/nova/nova.conf <<EOF
[DEFAULT]
host = @HOST@
my_ip = @IP@
state_path = /var/lib/nova
compute_driver = fake.FakeDriver #@bookworm
compute_driver = fake.FakeDriverWithoutFakeNodes #@trixie
transport_url = rabbit://openstack:rabbitpass@$CTL:5672/
[placement]
$(auth placement)
[neutron]
$(auth neutron)
[glance]
api_servers = http://$CTL:9292
[vnc]
enabled = false
[spice]
enabled = false
[oslo_concurrency]
lock_path = /var/lib/nova/tmp
EOF
# Neutron's Open vSwitch agent: RabbitMQ and rootwrap; the rest is common (neutron-ovs.sh).
[ -f /etc/neutron/neutron.conf.orig ] || cp /etc/neutron/neutron.conf /etc/neutron/neutron.conf.orig
cat >/etc/neutron/neutron.conf <<EOF
[DEFAULT]
transport_url = rabbit://openstack:rabbitpass@$CTL:5672/
[agent]
root_helper = sudo /usr/bin/neutron-rootwrap /etc/neutron/rootwrap.conf
[oslo_concurrency]
lock_path = /var/lib/neutron/lock
EOF
chown root:neutron /etc/neutron/neutron.conf
chmod 640 /etc/neutron/neutron.conf
bash /root/lab-role/common/neutron-ovs.sh
# nova-compute-ironic's nova-compute.conf is read after nova.conf and would
# set compute_driver = ironic.IronicDriver (lab-notes F9).
printf '[DEFAULT]\ncompute_driver = fake.FakeDriver\n' >/etc/nova/nova-compute.conf #@bookworm
# Nova >= 27 refuses to start a compute whose service record exists but which has no node #@trixie
# identity (/var/lib/nova/compute_id): FakeDriver writes none, so the Docker driver installed #@trixie
# later could not start. This fake driver writes it and keeps node name = host, as a real one. #@trixie
printf '[DEFAULT]\ncompute_driver = fake.FakeDriverWithoutFakeNodes\n' >/etc/nova/nova-compute.conf #@trixie
chown root:nova /etc/nova/nova.conf /etc/nova/nova-compute.conf
chmod 640 /etc/nova/nova.conf /etc/nova/nova-compute.conf
systemctl enable nova-compute >/dev/null 2>&1
step "done"
