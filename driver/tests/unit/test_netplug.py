"""The `ip -batch` lines netplug runs: pure data (the real devices: tests/host)."""

from novadock_driver import netplug


def _cfg(**kw):
    cfg = {'type': 'ovs', 'tap': 'tapa', 'peer': 'tina', 'bridge': 'br-int', 'mtu': 1450,
           'mac': 'fa:16:3e:00:00:01', 'ifname': 'eth0', 'datapath_type': 'netdev',
           'addresses': ['10.0.0.5/24'], 'routes': [
               {'version': 4, 'dst': 'default', 'via': '10.0.0.1'}]}
    cfg.update(kw)
    return cfg


def test_ovs_direct_host_side_is_the_veth_only():
    # The OVS port itself is ovs-vsctl's; no Linux bridge.
    assert netplug.host_lines(_cfg()) == [
        'link add tapa type veth peer name tina', 'link set tapa mtu 1450',
        'link set tina mtu 1450', 'link set tapa up']


def test_hybrid_joins_qbr_and_the_qvb_qvo_pair():
    lines = netplug.host_lines(_cfg(hybrid=True, qbr='qbra', qvb='qvba', qvo='qvoa'))
    assert lines == [
        'link add tapa type veth peer name tina', 'link set tapa mtu 1450',
        'link set tina mtu 1450',
        'link add qbra type bridge forward_delay 0', 'link set qbra mtu 1450',
        'link set qbra up',
        'link add qvba type veth peer name qvoa', 'link set qvba mtu 1450',
        'link set qvoa mtu 1450',
        'link set qvba up', 'link set qvoa up', 'link set qvba master qbra',
        'link set tapa master qbra', 'link set tapa up']


def test_linux_bridge_is_created_only_when_absent_and_keeps_its_mtu():
    cfg = _cfg(type='bridge', bridge='brq1', mtu=None)
    assert netplug.host_lines(cfg, present={'brq1'}) == [
        'link add tapa type veth peer name tina', 'link set brq1 up',
        'link set tapa master brq1', 'link set tapa up']
    assert netplug.host_lines(cfg)[1] == 'link add brq1 type bridge forward_delay 0'


def test_namespace_side_splits_the_families():
    cfg = _cfg(addresses=['10.0.0.5/24', '2001:db8::5/64'], routes=[
        {'version': 4, 'dst': 'default', 'via': '10.0.0.1'},
        {'version': 6, 'dst': '2001:db8:1::/64', 'via': '2001:db8::1'}])
    v4, v6 = netplug.ns_lines(cfg)
    assert v4 == ['link set lo up', 'link set tina name eth0',
                  'link set eth0 address fa:16:3e:00:00:01', 'link set eth0 up',
                  'addr replace 10.0.0.5/24 dev eth0',
                  'route replace default via 10.0.0.1 dev eth0']
    assert v6 == ['addr replace 2001:db8::5/64 dev eth0',
                  'route replace 2001:db8:1::/64 via 2001:db8::1 dev eth0']
