"""VIF configuration from a real nova.network.model network_info."""

import pytest
from nova.network import model

from novadock_driver import vifs

PORT = '2f6e1b1a-3c4d-4e5f-8a9b-0c1d2e3f4a5b'
UUID = '11111111-2222-3333-4444-555555555555'


def _vif(vtype='ovs', details=None, port=PORT, mac='fa:16:3e:00:00:01', active=False,
         bridge='br-int', mtu=1450, ips=('10.0.0.5',), dns=('10.0.0.2', '10.0.0.3'),
         routes=()):
    subnet = model.Subnet(
        cidr='10.0.0.0/24',
        gateway=model.IP(address='10.0.0.1', type='gateway'),
        ips=[model.FixedIP(address=a) for a in ips],
        dns=[model.IP(address=d, type='dns') for d in dns],
        routes=[model.Route(cidr=c, gateway=model.IP(address=g)) for c, g in routes])
    net = model.Network(id='7a1b2c3d-0000-1111-2222-333344445555', bridge=bridge,
                        subnets=[subnet], mtu=mtu)
    return model.VIF(id=port, address=mac, network=net, type=vtype, details=details or {},
                     devname=('tap' + port)[:14], active=active)


def test_ovs_direct():
    cfg = vifs.vif_config(_vif(details={'datapath_type': 'netdev'}), UUID)
    assert cfg['tap'] == 'tap2f6e1b1a-3c'
    assert cfg['peer'] == 'tin2f6e1b1a-3c'
    assert cfg['bridge'] == 'br-int'
    assert cfg['datapath_type'] == 'netdev'
    assert cfg['hybrid'] is False
    assert cfg['mtu'] == 1450
    assert cfg['mac'] == 'fa:16:3e:00:00:01'
    assert cfg['addresses'] == ['10.0.0.5/24']
    assert cfg['routes'] == [{'dst': 'default', 'via': '10.0.0.1', 'version': 4}]
    assert cfg['dns'] == ['10.0.0.2', '10.0.0.3']
    assert cfg['instance_uuid'] == UUID


def test_ovs_hybrid_names_follow_os_vif():
    cfg = vifs.vif_config(_vif(details={'ovs_hybrid_plug': True}), UUID)
    assert cfg['hybrid'] is True
    assert (cfg['qbr'], cfg['qvb'], cfg['qvo']) == (
        'qbr2f6e1b1a-3c', 'qvb2f6e1b1a-3c', 'qvo2f6e1b1a-3c')
    assert cfg['datapath_type'] == 'system'


def test_linux_bridge_uses_the_network_bridge():
    cfg = vifs.vif_config(_vif(vtype='bridge', bridge='brq7a1b2c3d-00'), UUID)
    assert cfg['bridge'] == 'brq7a1b2c3d-00'
    assert 'hybrid' not in cfg


def test_linux_bridge_without_a_bridge_name_derives_brq():
    cfg = vifs.vif_config(_vif(vtype='bridge', bridge=None), UUID)
    assert cfg['bridge'] == 'brq7a1b2c3d-00'


@pytest.mark.parametrize('vtype', ['vhostuser', 'hw_veb', 'binding_failed', 'unbound', None])
def test_unsupported_vif_types_are_refused_by_name(vtype):
    with pytest.raises(vifs.VifError, match='not supported by the Docker driver'):
        vifs.vif_config(_vif(vtype=vtype), UUID)


def test_no_mtu_leaves_it_to_the_kernel():
    assert vifs.vif_config(_vif(mtu=None), UUID)['mtu'] is None


def test_extra_routes_and_ipv6():
    v = _vif(routes=[('192.168.7.0/24', '10.0.0.254')])
    v6 = model.Subnet(cidr='fd00::/64', gateway=model.IP(address='fd00::1', type='gateway'),
                      ips=[model.FixedIP(address='fd00::5')])
    v['network']['subnets'].append(v6)
    cfg = vifs.vif_config(v, UUID)
    assert cfg['addresses'] == ['10.0.0.5/24', 'fd00::5/64']
    assert {'dst': '192.168.7.0/24', 'via': '10.0.0.254', 'version': 4} in cfg['routes']
    assert {'dst': 'default', 'via': 'fd00::1', 'version': 6} in cfg['routes']


def test_network_config_names_eth_and_keeps_one_default_route_per_family():
    second = _vif(port='99999999-0000-0000-0000-000000000000', mac='fa:16:3e:00:00:02',
                  ips=('10.0.0.6',))
    cfgs = vifs.network_config(model.NetworkInfo([_vif(), second]), UUID)
    assert [c['ifname'] for c in cfgs] == ['eth0', 'eth1']
    assert [r['dst'] for r in cfgs[0]['routes']] == ['default']
    assert cfgs[1]['routes'] == []


def test_resolv_conf_from_subnet_dns():
    cfgs = vifs.network_config([_vif()], UUID)
    text = vifs.resolv_conf(cfgs)
    assert text.splitlines()[1:] == ['nameserver 10.0.0.2', 'nameserver 10.0.0.3']


def test_events_only_for_ports_not_active():
    a = _vif(active=True)
    b = _vif(port='99999999-0000-0000-0000-000000000000', active=False)
    assert vifs.vif_plugged_events([a, b]) == [
        ('network-vif-plugged', '99999999-0000-0000-0000-000000000000')]
