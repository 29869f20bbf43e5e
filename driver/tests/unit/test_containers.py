"""Flavor, image and metadata → container settings."""

import pytest

from novadock_driver import containers

FLAVOR = {'vcpus': 2, 'memory_mb': 512, 'root_gb': 5}


def test_flavor_limits():
    hc = containers.host_config(FLAVOR, {})
    assert hc['Memory'] == 512 * 1024 * 1024
    assert hc['MemorySwap'] == hc['Memory']
    assert hc['CpuQuota'] == 2 * hc['CpuPeriod']
    assert hc['CpuShares'] == 2048
    assert hc['NetworkMode'] == 'none'
    assert hc['SecurityOpt'] == ['no-new-privileges=true']
    assert hc['Privileged'] is False
    assert 'StorageOpt' not in hc


def test_privileged_only_through_the_extra_spec():
    assert containers.host_config(FLAVOR, {'novadock:privileged': 'true'})['Privileged']
    assert not containers.host_config(FLAVOR, {'novadock:privileged': 'False'})['Privileged']
    assert not containers.host_config(FLAVOR, {'privileged': 'true'})['Privileged']
    with pytest.raises(containers.ContainerError, match='not a boolean'):
        containers.host_config(FLAVOR, {'novadock:privileged': 'maybe'})


def test_disk_quota_and_resolv_conf():
    hc = containers.host_config(FLAVOR, {}, disk_quota=True, resolv_conf='/s/u/resolv.conf')
    assert hc['StorageOpt'] == {'size': '5G'}
    assert hc['Binds'] == ['/s/u/resolv.conf:/etc/resolv.conf:ro']


def test_metadata_as_environment():
    assert containers.environment({'b': '2', 'a': 'x y'}) == ['a=x y', 'b=2']
    with pytest.raises(containers.ContainerError):
        containers.environment({'a=b': 'c'})


def test_command():
    assert containers.command({}, 'nginx -g "daemon off;"') == ['nginx', '-g', 'daemon off;']
    assert containers.command({'Cmd': ['sh']}, None) is None
    assert containers.command({'Entrypoint': ['/init']}, '') is None
    with pytest.raises(containers.ContainerError, match='no command'):
        containers.command({'Cmd': None, 'Entrypoint': None}, None)


def test_create_body():
    body = containers.create_body({'hostname': 'web-1', 'uuid': 'u', 'name': 'instance-1'},
                                  'glance/i:latest', ['sleep', '1'], ['a=b'],
                                  containers.host_config(FLAVOR, {}))
    assert body['Image'] == 'glance/i:latest'
    assert body['Hostname'] == 'web-1'
    assert body['Labels'] == {'novadock.instance': 'u', 'novadock.name': 'instance-1'}
    assert body['Cmd'] == ['sleep', '1']


@pytest.mark.parametrize('state,suspended,want', [
    ({'Running': True}, False, 'RUNNING'),
    ({'Running': True, 'Paused': True}, False, 'PAUSED'),
    ({'Running': True, 'Paused': True}, True, 'SUSPENDED'),
    ({'Running': False, 'Status': 'exited'}, False, 'SHUTDOWN'),
    ({'Running': False, 'Dead': True}, False, 'CRASHED'),
    (None, False, 'NOSTATE'),
])
def test_power_states(state, suspended, want):
    from nova.compute import power_state
    name = containers.power_state_of(state, suspended)
    assert name == want
    assert isinstance(getattr(power_state, name), int)
