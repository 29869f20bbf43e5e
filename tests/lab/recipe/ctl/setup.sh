#!/bin/bash
# Builds the lab controller image. Runs INSIDE a booted build host whose
# hostname is ctl and which owns 10.11.0.11 (the image is only for ctl).
# Keystone, Glance (file store), Placement, Nova API/conductor/scheduler,
# Neutron (server with ML2/OVS, DHCP, metadata and Open vSwitch agents) and its
# networks lab-net and lab-vx, RabbitMQ, MariaDB, memcached, the openstack CLI,
# /root/admin-openrc.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
IP=10.11.0.11
RABBIT=rabbitpass ADMINPW=labadmin
step() { echo "ctl-setup [$(date +%T)] $*"; }

# Keep packages from starting daemons during install: they would run with
# default (all-address) binds and an unconfigured database.
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
chmod +x /usr/sbin/policy-rc.d

step "bind config before install"
# Their socket units ignore the daemons' bind settings (lab-notes F2, F3).
mkdir -p /etc/systemd/system/mariadb.socket.d /etc/systemd/system/epmd.socket.d /etc/mysql/mariadb.conf.d /etc/rabbitmq
cat >/etc/systemd/system/mariadb.socket.d/bind.conf <<EOF
[Socket]
ListenStream=
ListenStream=@mariadb
ListenStream=/run/mysqld/mysqld.sock
ListenStream=$IP:3306
EOF
cat >/etc/systemd/system/epmd.socket.d/bind.conf <<EOF
[Socket]
ListenStream=
ListenStream=127.0.0.1:4369
ListenStream=$IP:4369
BindIPv6Only=default
EOF
cat >/etc/mysql/mariadb.conf.d/99-lab.cnf <<EOF
[mysqld]
bind-address = $IP
max_connections = 500
innodb_buffer_pool_size = 64M
performance_schema = off
EOF
cat >/etc/rabbitmq/rabbitmq.conf <<EOF
listeners.tcp.default = $IP:5672
distribution.listener.interface = $IP
management.tcp.ip = $IP
EOF
# Keystone's postinst fails in its admin-project step unless this is preseeded.
debconf-set-selections <<'EOF'
keystone keystone/create-admin-tenant boolean false
keystone keystone/configure_db boolean false
glance-common glance/configure_db boolean false
placement-common placement/configure_db boolean false
nova-common nova/configure_db boolean false
neutron-common neutron/configure_db boolean false
EOF

step "apt install"
# shellcheck disable=SC2046  # a word list; downloaded beforehand, installed offline
apt-get install -y -q -o Dpkg::Options::=--force-confold \
  $(grep -v '^#' /root/lab-role/packages) >/root/ctl-apt.log 2>&1 ||
  { tail -30 /root/ctl-apt.log; exit 1; }

step "configure"
# Metadata API, iSCSI: not used in the lab.
for u in nova-api-metadata.service iscsid.socket iscsid.service open-iscsi.service; do
  ln -sf /dev/null "/etc/systemd/system/$u"
done
# Neutron is configured and started further down (issue 12); not before.
systemctl disable neutron-api neutron-rpc-server neutron-dhcp-agent neutron-metadata-agent \
  neutron-openvswitch-agent >/dev/null 2>&1 || true
# Conductor/scheduler wait for DB, rabbit and the placement user: enabled at the end (F6, F7).
systemctl disable nova-conductor nova-scheduler >/dev/null 2>&1 || true

# memcached, as kolla-ansible and openstack-ansible deploy it: keystonemiddleware in every API
# caches token validations there (without it, each API process validates each token itself,
# and a Keystone validation costs 0.15-0.25 s here: seen on Glance's image GET inside
# nova-api's POST /servers), and Keystone and Nova cache through oslo.cache.
sed -i "s/^-l 127.0.0.1\$/-l $IP/" /etc/memcached.conf
grep -qx -- "-l $IP" /etc/memcached.conf
MEMCACHED=$IP:11211
cache() {
  printf '[cache]\nenabled = true\nbackend = oslo_cache.memcache_pool\nmemcache_servers = %s\n' "$MEMCACHED"
}

# uwsgi services bind through /etc/default/<service>; few workers to save memory.
uw() { # service port ini processes threads
  echo "DAEMON_ARGS=\"--http-socket $IP:$2 --ini $3\"" >"/etc/default/$1"
  sed -i -E "s/^processes = .*/processes = $4/; s/^threads = .*/threads = $5/" "$3"
  # uwsgi closes the connection after each response without saying so; clients
  # reusing it then get "Connection reset by peer" (seen on `server delete --wait`).
  grep -q '^add-header = Connection: close' "$3" || echo 'add-header = Connection: close' >>"$3"
}
uw keystone 5000 /etc/keystone/keystone-uwsgi.ini 2 8
uw placement-api 8778 /etc/placement/placement-api-uwsgi.ini 2 8
# nova-api is eventlet-patched: with several uwsgi threads per process a request
# can hang forever ("greenlet.error: cannot switch to a different thread").
uw nova-api 8774 /etc/nova/nova-api-uwsgi.ini 4 1
# neutron-api is eventlet-patched too (Debian ships 8 x 32). Its init script reads
# /etc/default/neutron-server (NAME=neutron-server), not .../neutron-api: without it, it binds :9696.
uw neutron-server 9696 /etc/neutron/neutron-api-uwsgi.ini 2 1

auth() { # user
  cat <<EOF
www_authenticate_uri = http://$IP:5000
auth_url = http://$IP:5000
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = $1
password = ${1}pass
region_name = RegionOne
EOF
}
for f in /etc/keystone/keystone.conf /etc/glance/glance-api.conf /etc/placement/placement.conf /etc/nova/nova.conf \
  /etc/neutron/neutron.conf /etc/neutron/plugins/ml2/ml2_conf.ini /etc/neutron/dhcp_agent.ini /etc/neutron/metadata_agent.ini; do
  [ -f "$f" ] || continue
  [ -f "$f.orig" ] || cp "$f" "$f.orig"
done
# keystone.conf: only the database changes.
python3 - <<EOF
import configparser
p = '/etc/keystone/keystone.conf'
c = configparser.RawConfigParser(strict=False, interpolation=None)
c.read(p)
c.set('database', 'connection', 'mysql+pymysql://keystone:keystonedbpass@$IP/keystone')
if not c.has_section('cache'):
    c.add_section('cache')
c.set('cache', 'enabled', 'true')
c.set('cache', 'backend', 'oslo_cache.memcache_pool')
c.set('cache', 'memcache_servers', '$MEMCACHED')
with open(p, 'w') as f:
    c.write(f)
EOF
cat >/etc/glance/glance-api.conf <<EOF
[DEFAULT]
bind_host = $IP
bind_port = 9292
workers = 1
enabled_backends = fs:file
[database]
connection = mysql+pymysql://glance:glancedbpass@$IP/glance
[keystone_authtoken]
$(auth glance)
memcached_servers = $MEMCACHED
[paste_deploy]
flavor = keystone
[glance_store]
default_backend = fs
[fs]
filesystem_store_datadir = /var/lib/glance/images/
[oslo_concurrency]
lock_path = /var/lib/glance/tmp
EOF
cat >/etc/placement/placement.conf <<EOF
[DEFAULT]
[api]
auth_strategy = keystone
[keystone_authtoken]
$(auth placement)
memcached_servers = $MEMCACHED
[placement_database]
connection = mysql+pymysql://placement:placementdbpass@$IP/placement
EOF
cat >/etc/nova/nova.conf <<EOF
[DEFAULT]
my_ip = $IP
host = ctl
state_path = /var/lib/nova
transport_url = rabbit://openstack:$RABBIT@$IP:5672/
enabled_apis = osapi_compute
osapi_compute_listen = $IP
[api]
auth_strategy = keystone
[api_database]
connection = mysql+pymysql://nova:novadbpass@$IP/nova_api
[database]
connection = mysql+pymysql://nova:novadbpass@$IP/nova
[keystone_authtoken]
$(auth nova)
memcached_servers = $MEMCACHED
$(cache)
[placement]
$(auth placement)
[neutron]
$(auth neutron)
service_metadata_proxy = true
metadata_proxy_shared_secret = labmetadata
[glance]
api_servers = http://$IP:9292
[vnc]
enabled = false
[spice]
enabled = false
[conductor]
workers = 1
[scheduler]
workers = 1
# New compute hosts are mapped to cell1 without a manual discover_hosts.
discover_hosts_in_cells_interval = 20
[oslo_concurrency]
lock_path = /var/lib/nova/tmp
EOF
chown root:glance /etc/glance/glance-api.conf
chown root:placement /etc/placement/placement.conf
chown root:nova /etc/nova/nova.conf
chown root:keystone /etc/keystone/keystone.conf
chmod 640 /etc/glance/glance-api.conf /etc/placement/placement.conf /etc/nova/nova.conf /etc/keystone/keystone.conf

# Neutron: ML2 with the Open vSwitch mechanism driver; flat provider network physnet1
# (OVS bridge br-provider on eth1) and VXLAN self-service networks.
cat >/etc/neutron/neutron.conf <<EOF
[DEFAULT]
core_plugin = ml2
service_plugins =
auth_strategy = keystone
transport_url = rabbit://openstack:$RABBIT@$IP:5672/
rpc_workers = 1
rpc_state_report_workers = 1
notify_nova_on_port_status_changes = true
notify_nova_on_port_data_changes = true
dhcp_agents_per_network = 1
[database]
connection = mysql+pymysql://neutron:neutrondbpass@$IP/neutron
[keystone_authtoken]
$(auth neutron)
memcached_servers = $MEMCACHED
[nova]
$(auth nova)
[agent]
root_helper = sudo /usr/bin/neutron-rootwrap /etc/neutron/rootwrap.conf
[oslo_concurrency]
lock_path = /var/lib/neutron/lock
EOF
cat >/etc/neutron/plugins/ml2/ml2_conf.ini <<EOF
[ml2]
type_drivers = flat,vxlan
tenant_network_types = vxlan
mechanism_drivers = openvswitch
extension_drivers = port_security
[ml2_type_flat]
flat_networks = physnet1
[ml2_type_vxlan]
vni_ranges = 1:1000
EOF
cat >/etc/neutron/dhcp_agent.ini <<EOF
[DEFAULT]
interface_driver = openvswitch
dhcp_driver = neutron.agent.linux.dhcp.Dnsmasq
enable_isolated_metadata = false
EOF
cat >/etc/neutron/metadata_agent.ini <<EOF
[DEFAULT]
nova_metadata_host = $IP
metadata_proxy_shared_secret = labmetadata
metadata_workers = 1
EOF
chown root:neutron /etc/neutron/neutron.conf /etc/neutron/plugins/ml2/ml2_conf.ini /etc/neutron/dhcp_agent.ini /etc/neutron/metadata_agent.ini
chmod 640 /etc/neutron/neutron.conf /etc/neutron/plugins/ml2/ml2_conf.ini /etc/neutron/dhcp_agent.ini /etc/neutron/metadata_agent.ini
bash /root/lab-role/common/neutron-ovs.sh

cat >/root/admin-openrc <<EOF
export OS_USERNAME=admin
export OS_PASSWORD=$ADMINPW
export OS_PROJECT_NAME=admin
export OS_USER_DOMAIN_NAME=Default
export OS_PROJECT_DOMAIN_NAME=Default
export OS_AUTH_URL=http://$IP:5000/v3
export OS_IDENTITY_API_VERSION=3
export OS_IMAGE_API_VERSION=2
export OS_REGION_NAME=RegionOne
EOF

rm -f /usr/sbin/policy-rc.d
systemctl daemon-reload
step "start mariadb, rabbitmq"
systemctl restart epmd.socket mariadb.socket
systemctl enable memcached >/dev/null 2>&1
systemctl restart memcached
systemctl start mariadb rabbitmq-server
rabbitmqctl add_user openstack "$RABBIT" >/dev/null 2>&1 || rabbitmqctl change_password openstack "$RABBIT"
rabbitmqctl set_permissions openstack ".*" ".*" ".*"

step "databases"
# Connections between 127.0.0.x addresses arrive from 127.0.0.1: '%' grants.
{
  for db in keystone glance placement nova_api nova nova_cell0 neutron; do
    echo "CREATE DATABASE IF NOT EXISTS $db;"
  done
  for u in keystone glance placement nova neutron; do
    echo "CREATE USER IF NOT EXISTS '$u'@'%' IDENTIFIED BY '${u}dbpass';"
  done
  echo "GRANT ALL ON keystone.* TO 'keystone'@'%';"
  echo "GRANT ALL ON glance.* TO 'glance'@'%';"
  echo "GRANT ALL ON placement.* TO 'placement'@'%';"
  echo "GRANT ALL ON neutron.* TO 'neutron'@'%';"
  for db in nova_api nova nova_cell0; do echo "GRANT ALL ON $db.* TO 'nova'@'%';"; done
} | mysql
as() { su -s /bin/sh -c "$2" "$1"; }
as keystone "keystone-manage db_sync"
keystone-manage fernet_setup --keystone-user keystone --keystone-group keystone
keystone-manage credential_setup --keystone-user keystone --keystone-group keystone
keystone-manage bootstrap --bootstrap-password "$ADMINPW" \
  --bootstrap-admin-url "http://$IP:5000/v3/" --bootstrap-internal-url "http://$IP:5000/v3/" \
  --bootstrap-public-url "http://$IP:5000/v3/" --bootstrap-region-id RegionOne
as glance "glance-manage db_sync" >/dev/null 2>&1
as placement "placement-manage db sync"
as nova "nova-manage api_db sync"
as nova "nova-manage cell_v2 map_cell0 --database_connection mysql+pymysql://nova:novadbpass@$IP/nova_cell0"
as nova "nova-manage cell_v2 list_cells" | grep -q ' cell1 ' || as nova "nova-manage cell_v2 create_cell --name=cell1"
as nova "nova-manage db sync"
as neutron "neutron-db-manage --config-file /etc/neutron/neutron.conf --config-file /etc/neutron/plugins/ml2/ml2_conf.ini upgrade heads" >/dev/null

step "start APIs"
# placement-api is installed disabled; enable every API so the image boots them.
systemctl enable keystone glance-api placement-api nova-api >/dev/null 2>&1
systemctl start keystone glance-api placement-api nova-api
for _ in $(seq 120); do curl -sf "http://$IP:5000/v3" >/dev/null && break; sleep 0.5; done

step "register users, services, endpoints"
# shellcheck disable=SC1091
. /root/admin-openrc
os() { openstack "$@"; }
os project show service >/dev/null 2>&1 || os project create --domain default service >/dev/null
for u in glance nova placement neutron; do
  os user show "$u" >/dev/null 2>&1 || os user create --domain default --password "${u}pass" "$u" >/dev/null
  os role add --project service --user "$u" admin
done
svc() { # type name url
  os service show "$1" >/dev/null 2>&1 || os service create --name "$2" "$1" >/dev/null
  local i
  for i in public internal admin; do
    [ -n "$(os endpoint list --service "$1" --interface "$i" -f value -c ID)" ] ||
      os endpoint create --region RegionOne "$1" "$i" "$3" >/dev/null
  done
}
svc image glance "http://$IP:9292"
svc compute nova "http://$IP:8774/v2.1"
svc placement placement "http://$IP:8778"
svc network neutron "http://$IP:9696"

step "start neutron"
systemctl enable neutron-api neutron-rpc-server neutron-dhcp-agent neutron-metadata-agent >/dev/null 2>&1
systemctl start openvswitch-switch lab-ovs-bridges
systemctl start neutron-api neutron-rpc-server neutron-openvswitch-agent neutron-dhcp-agent neutron-metadata-agent
for _ in $(seq 120); do curl -sf "http://$IP:9696/" >/dev/null && break; sleep 0.5; done

step "networks lab-net (flat provider) and lab-vx (VXLAN)"
if ! os network show lab-net >/dev/null 2>&1; then
  os network create --share --external --provider-network-type flat --provider-physical-network physnet1 lab-net >/dev/null
  os subnet create --network lab-net --subnet-range 10.20.0.0/24 --gateway none --dns-nameserver 0.0.0.0 lab-net-v4 >/dev/null
fi
if ! os network show lab-vx >/dev/null 2>&1; then
  os network create --share --provider-network-type vxlan lab-vx >/dev/null
  os subnet create --network lab-vx --subnet-range 10.30.0.0/24 --gateway none lab-vx-v4 >/dev/null
fi

step "start conductor, scheduler"
systemctl enable nova-conductor nova-scheduler >/dev/null 2>&1
systemctl start nova-conductor nova-scheduler
openstack compute service list
openstack flavor show m1.tiny >/dev/null 2>&1 || openstack flavor create --vcpus 1 --ram 64 --disk 0 m1.tiny >/dev/null
step "done"
