"""The real DockerDriver against a real dockerd, real veths, a real Linux bridge and a
real Open vSwitch (userspace `netdev` datapath), as root on a test host
(driver/tests/run-host). Only Nova's compute manager (the virtapi's event wait) and
Glance (a local server object handing out a real `docker save` tarball) stand in.

Private addresses live only in the containers' own network namespaces; the bridges have
names of their own so they cannot meet the lab's."""

import contextlib
import hashlib
import io
import json
import os
import subprocess
import time
import uuid

import nova.conf
import pytest
from nova import context as nova_context
from nova import exception, objects
from nova.compute import power_state
from nova.network import model

objects.register_all()
CONF = nova.conf.CONF
CONF([], project='nova', default_config_files=[])

from novadock_driver import TAG_FORMAT, TRAIT, driver, netplug  # noqa: E402

STATE = '/var/lib/novadock-drvtest'
LB = 'brq-ndtest'
OVS = 'br-ndtest'


def sh(*args, check=True):
    r = subprocess.run(args, capture_output=True, text=True)
    if check and r.returncode:
        raise AssertionError('%s: %s' % (' '.join(args), r.stderr))
    return r.stdout


def in_ns(pid, *args, check=True):
    return sh('nsenter', '--net=/proc/%d/ns/net' % pid, *args, check=check)


class VirtAPI:
    """Nova's compute manager's event wait: records what the driver waits for; a test
    can make the wait time out as eventlet's Timeout does (a BaseException)."""

    def __init__(self):
        self.waits = []
        self.time_out = False

    @contextlib.contextmanager
    def wait_for_instance_event(self, instance, events, deadline=300, error_callback=None):
        self.waits.append((list(events), deadline))
        yield
        if self.time_out and events:
            from eventlet import timeout
            raise timeout.Timeout()


class Glance:
    """Serves images from memory as nova.image.glance.API does (get, download)."""

    def __init__(self):
        self.images = {}
        self.uploads = {}

    def add(self, data, container_format='docker', hash_value=None):
        image_id = str(uuid.uuid4())
        self.images[image_id] = (data, {
            'id': image_id, 'container_format': container_format, 'disk_format': 'raw',
            'status': 'active', 'os_hash_algo': 'sha512',
            'os_hash_value': hash_value or hashlib.sha512(data).hexdigest(),
            'properties': {}})
        return image_id

    def get(self, context, image_id):
        return dict(self.images[image_id][1])

    def download(self, context, image_id, data=None, dest_path=None):
        # As nova.image.glance.API: chunks written to `data` (the lab runs the real one).
        blob = self.images[image_id][0]
        for i in range(0, len(blob), 65536):
            data.write(blob[i:i + 65536])

    def update(self, context, image_id, metadata, data=None, purge_props=True):
        self.uploads[image_id] = (metadata, data.read())


@pytest.fixture(scope='module')
def tiny_tar():
    """A real `docker save` of a busybox image, tagged with a name a tenant could abuse."""
    sh('docker', 'rmi', '-f', 'victim:1')
    root = '/tmp/ndtest-rootfs'
    sh('rm', '-rf', root)
    os.makedirs(root + '/bin')
    sh('cp', '/bin/busybox', root + '/bin/busybox')
    for tool in ('sh', 'sleep', 'ip', 'ping', 'cat', 'hostname', 'env', 'echo', 'nc'):
        os.symlink('busybox', root + '/bin/' + tool)
    sh('sh', '-c', 'tar -C %s -cf %s.tar . && docker import --change \'CMD ["/bin/sleep", '
       '"1000"]\' %s.tar victim:1' % (root, root, root))
    data = subprocess.run(['docker', 'save', 'victim:1'], capture_output=True,
                          check=True).stdout
    sh('docker', 'rmi', '-f', 'victim:1')
    return data


@pytest.fixture(scope='module')
def drv():
    CONF.set_override('state_path', STATE)
    CONF.set_override('state_dir', STATE + '/novadock', group='docker')
    CONF.set_override('stop_timeout', 1, group='docker')
    CONF.set_override('vif_plugging_timeout', 5)
    CONF.set_override('host', 'drv1')
    # The real privsep daemon, started as nova-compute would (as root here: no sudo).
    CONF.set_override('helper_command', 'privsep-helper', group='novadock_privileged')
    d = driver.DockerDriver(VirtAPI())
    d._glance = Glance()
    d.init_host('drv1')
    yield d
    for name in (LB,):
        sh('ip', 'link', 'del', name, check=False)
    sh('ovs-vsctl', '--if-exists', 'del-br', OVS, check=False)


def _instance(hostname='web-1', extra_specs=None, metadata=None, network_info=None):
    inst = objects.Instance(
        id=int(time.time() * 1000) % 100000000, uuid=str(uuid.uuid4()), hostname=hostname,
        vm_state='active', metadata=metadata or {}, system_metadata={'image_owner': 'x'},
        flavor=objects.Flavor(vcpus=1, memory_mb=64, root_gb=1,
                              extra_specs=extra_specs or {}))
    inst.info_cache = objects.InstanceInfoCache(network_info=network_info or
                                                model.NetworkInfo())
    return inst


def _image_meta(image_id, cmd=None):
    d = {'id': image_id, 'container_format': 'docker', 'disk_format': 'raw',
         'properties': {}}
    if cmd:
        d['properties']['os_command_line'] = cmd
    return objects.ImageMeta.from_dict(d)


def _vif(vtype, address, mac, bridge, details=None):
    port = str(uuid.uuid4())
    subnet = model.Subnet(cidr='10.77.0.0/24',
                          gateway=model.IP(address='10.77.0.1', type='gateway'),
                          ips=[model.FixedIP(address=address)],
                          dns=[model.IP(address='10.77.0.2', type='dns')])
    net = model.Network(id=str(uuid.uuid4()), bridge=bridge, subnets=[subnet], mtu=1400)
    return model.VIF(id=port, address=mac, network=net, type=vtype,
                     details=details or {}, devname=('tap' + port)[:14], active=False)


def _pid(d, inst):
    return d._inspect(inst)['State']['Pid']


def _spawn(d, image_id, **kw):
    inst = _instance(**kw)
    ctx = nova_context.get_admin_context()
    d.spawn(ctx, inst, _image_meta(image_id), [], None, {},
            network_info=inst.info_cache.network_info)
    return ctx, inst


def test_init_host_fails_clearly_when_dockerd_is_unreachable():
    CONF.set_override('api_socket', '/nonexistent.sock', group='docker')
    try:
        d = driver.DockerDriver(VirtAPI())
        with pytest.raises(exception.NovaException, match='dockerd is not usable'):
            d.init_host('drv1')
    finally:
        CONF.clear_override('api_socket', group='docker')


def test_image_is_loaded_by_glance_id_without_its_own_tags(drv, tiny_tar):
    image_id = drv._glance.add(tiny_tar)
    ctx = nova_context.get_admin_context()
    assert drv.cache_image(ctx, image_id) is True
    assert drv.cache_image(ctx, image_id) is False
    img = drv.docker.get('/images/%s/json' % (TAG_FORMAT % image_id).replace('/', '%2F'))
    assert img['RepoTags'] == [TAG_FORMAT % image_id]
    assert drv.docker.get('/images/victim:1/json', missing_ok=True) is None


def test_a_tampered_image_is_refused_and_not_loaded(drv, tiny_tar):
    image_id = drv._glance.add(tiny_tar, hash_value='0' * 128)
    with pytest.raises(exception.ImageUnacceptable, match='Glance says'):
        drv.cache_image(nova_context.get_admin_context(), image_id)
    assert drv._local_image(image_id) is None


def test_wrong_container_format_is_refused(drv, tiny_tar):
    image_id = drv._glance.add(tiny_tar, container_format='bare')
    with pytest.raises(exception.ImageUnacceptable, match='container format'):
        drv.cache_image(nova_context.get_admin_context(), image_id)


def test_lifecycle(drv, tiny_tar):
    image_id = drv._glance.add(tiny_tar)
    ctx, inst = _spawn(drv, image_id, hostname='life-1', metadata={'ROLE': 'web'})
    try:
        assert drv.get_info(inst).state == power_state.RUNNING
        assert drv.instance_exists(inst)
        assert inst.uuid in drv.list_instance_uuids()
        assert inst.name in drv.list_instances()
        c = drv._inspect(inst)
        assert c['Config']['Hostname'] == 'life-1'
        assert 'ROLE=web' in c['Config']['Env']
        assert c['HostConfig']['Memory'] == 64 * 1024 * 1024
        assert c['HostConfig']['NetworkMode'] == 'none'
        assert not c['HostConfig']['Privileged']
        assert 'no-new-privileges=true' in c['HostConfig']['SecurityOpt']
        drv.pause(inst)
        assert drv.get_info(inst).state == power_state.PAUSED
        drv.unpause(inst)
        drv.suspend(ctx, inst)
        inst.vm_state = 'suspended'
        assert drv.get_info(inst).state == power_state.SUSPENDED
        drv.resume(ctx, inst, model.NetworkInfo())
        inst.vm_state = 'active'
        drv.power_off(inst, timeout=1)
        assert drv.get_info(inst).state == power_state.SHUTDOWN
        drv.power_on(ctx, inst, model.NetworkInfo())
        assert drv.get_info(inst).state == power_state.RUNNING
        pid = _pid(drv, inst)
        drv.reboot(ctx, inst, model.NetworkInfo(), 'HARD')
        assert drv.get_info(inst).state == power_state.RUNNING
        assert _pid(drv, inst) != pid
        assert isinstance(drv.get_console_output(ctx, inst), bytes)
        fields = drv.get_available_resource('drv1')
        assert fields['vcpus'] == os.cpu_count()
        assert fields['hypervisor_type'] == 'docker'
    finally:
        drv.destroy(ctx, inst, model.NetworkInfo())
    assert not drv.instance_exists(inst)
    with pytest.raises(exception.InstanceNotFound):
        drv.get_info(inst)


def test_image_without_a_command_is_a_clear_fault(drv, tiny_tar):
    root = '/tmp/ndtest-nocmd'
    sh('sh', '-c', 'mkdir -p %s && tar -C %s -cf %s.tar . && docker import %s.tar nocmd:1'
       % (root, root, root, root))
    data = subprocess.run(['docker', 'save', 'nocmd:1'], capture_output=True,
                          check=True).stdout
    sh('docker', 'rmi', '-f', 'nocmd:1')
    image_id = drv._glance.add(data)
    with pytest.raises(exception.ImageUnacceptable, match='no command'):
        _spawn(drv, image_id)


def test_console_output_is_bounded(drv, tiny_tar):
    image_id = drv._glance.add(tiny_tar)
    inst = _instance()
    ctx = nova_context.get_admin_context()
    meta = _image_meta(image_id, 'sh -c "i=0; while [ $i -lt 20000 ]; do echo line-$i; '
                                 'i=$((i+1)); done; sleep 1000"')
    drv.spawn(ctx, inst, meta, [], None, {}, network_info=model.NetworkInfo())
    try:
        time.sleep(2)
        out = drv.get_console_output(ctx, inst)
        assert 0 < len(out) <= CONF.docker.console_max_bytes
        assert out.rstrip().endswith(b'line-19999')
    finally:
        drv.destroy(ctx, inst, model.NetworkInfo())


def _ovs_works():
    r = subprocess.run(['ovs-vsctl', '--may-exist', 'add-br', OVS, '--', 'set', 'Bridge', OVS,
                        'datapath_type=netdev'], capture_output=True)
    return r.returncode == 0


@pytest.mark.parametrize('kind', ['bridge', 'ovs-netdev', 'ovs-hybrid'])
def test_two_networked_containers_reach_each_other(drv, tiny_tar, kind):
    if kind.startswith('ovs') and not _ovs_works():
        pytest.fail('Open vSwitch is not usable on this host: ovs-vsctl add-br failed')
    image_id = drv._glance.add(tiny_tar)
    if kind == 'bridge':
        mk = lambda a, m: _vif('bridge', a, m, LB)  # noqa: E731
    else:
        details = {'datapath_type': 'netdev', 'ovs_hybrid_plug': kind == 'ovs-hybrid'}
        mk = lambda a, m: _vif('ovs', a, m, OVS, details)  # noqa: E731
    va, vb = mk('10.77.0.5', 'fa:16:3e:77:00:05'), mk('10.77.0.6', 'fa:16:3e:77:00:06')
    ctx, a = _spawn(drv, image_id, hostname='net-a', network_info=model.NetworkInfo([va]))
    _, b = _spawn(drv, image_id, hostname='net-b', network_info=model.NetworkInfo([vb]))
    try:
        # The driver waited for Neutron's event for each port (not active yet).
        assert drv.virtapi.waits[-1][0] == [('network-vif-plugged', vb['id'])]
        pa = _pid(drv, a)
        link = in_ns(pa, 'ip', '-o', 'link', 'show', 'eth0')
        assert 'fa:16:3e:77:00:05' in link and 'mtu 1400' in link
        assert '10.77.0.5/24' in in_ns(pa, 'ip', '-o', 'addr', 'show', 'eth0')
        assert 'default via 10.77.0.1 dev eth0' in in_ns(pa, 'ip', 'route')
        assert 'LOOPBACK,UP' in in_ns(pa, 'ip', '-o', 'link', 'show', 'lo')
        resolv = sh('docker', 'exec', driver.containers.container_name(a.uuid),
                    'cat', '/etc/resolv.conf')
        assert 'nameserver 10.77.0.2' in resolv
        if kind.startswith('ovs'):
            port = va['details'].get('ovs_hybrid_plug') and ('qvo' + va['id'])[:14] or \
                ('tap' + va['id'])[:14]
            ids = sh('ovs-vsctl', 'get', 'Interface', port, 'external_ids')
            assert va['id'] in ids and 'fa:16:3e:77:00:05' in ids and a.uuid in ids
            assert 'iface-status=active' in ids.replace('"', '')
            # The userspace datapath needs TX checksum offload off on both ends.
            assert 'tx-checksumming: off' in sh('ethtool', '-k', port)
            assert 'tx-checksumming: off' in in_ns(pa, 'ethtool', '-k', 'eth0')
        _ping(pa, '10.77.0.6')
        # Reboot: a new namespace, plugged again, same address.
        drv.reboot(ctx, a, a.info_cache.network_info, 'SOFT')
        _ping(_pid(drv, a), '10.77.0.6')
        # Attach a second port to b, then detach it.
        vc = mk('10.77.0.7', 'fa:16:3e:77:00:07')
        drv.attach_interface(ctx, b, None, vc)
        assert '10.77.0.7/24' in in_ns(_pid(drv, b), 'ip', '-o', 'addr', 'show', 'eth1')
        drv.detach_interface(ctx, b, vc)
        assert in_ns(_pid(drv, b), 'ip', 'link', 'show', 'eth1', check=False) == ''
    finally:
        drv.destroy(ctx, a, a.info_cache.network_info)
        drv.destroy(ctx, b, b.info_cache.network_info)
    for v in (va, vb):
        for prefix in ('tap', 'qvo', 'qvb', 'qbr'):
            assert not os.path.exists('/sys/class/net/' + (prefix + v['id'])[:14])
    if kind.startswith('ovs'):
        ports = sh('ovs-vsctl', 'list-ports', OVS).split()
        assert not [p for p in ports if va['id'][:11] in p or vb['id'][:11] in p]


def _ping(pid, addr):
    for _ in range(20):
        # The image's own busybox ping, inside the container.
        if subprocess.run(['nsenter', '--net=/proc/%d/ns/net' % pid, '--mount=/proc/%d/ns/mnt'
                           % pid, '/bin/busybox', 'ping', '-c', '1', '-W', '1', addr],
                          capture_output=True).returncode == 0:
            return
        time.sleep(0.5)
    diag = [in_ns(pid, 'ip', 'addr', check=False), in_ns(pid, 'ip', 'neigh', check=False),
            in_ns(pid, 'ip', 'route', check=False), sh('bridge', 'link', check=False),
            sh('ip', '-d', 'link', 'show', 'master', LB, check=False),
            sh('ovs-vsctl', 'show', check=False)]
    raise AssertionError('%s is not reachable from the container\n%s' % (addr, '\n'.join(diag)))


def test_vif_plug_timeout_is_a_clear_fault_and_cleans_up(drv, tiny_tar):
    image_id = drv._glance.add(tiny_tar)
    vif = _vif('bridge', '10.77.0.9', 'fa:16:3e:77:00:09', LB)
    drv.virtapi.time_out = True
    try:
        with pytest.raises(exception.BuildAbortException, match='network-vif-plugged'):
            _spawn(drv, image_id, network_info=model.NetworkInfo([vif]))
    finally:
        drv.virtapi.time_out = False
    assert not os.path.exists('/sys/class/net/' + ('tap' + vif['id'])[:14])


def test_update_provider_tree_reports_this_host(drv):
    from nova.compute import provider_tree
    pt = provider_tree.ProviderTree()
    pt.new_root('drv1', str(uuid.uuid4()))
    drv.update_provider_tree(pt, 'drv1')
    inv = pt.data('drv1').inventory
    assert inv['VCPU']['total'] == os.cpu_count()
    with open('/proc/meminfo') as f:
        total = int(f.readline().split()[1]) // 1024
    assert inv['MEMORY_MB']['total'] == total
    assert inv['MEMORY_MB']['reserved'] == CONF.reserved_host_memory_mb
    st = os.statvfs(drv._root())
    assert inv['DISK_GB']['total'] == st.f_blocks * st.f_frsize // 1024 ** 3
    assert TRAIT in pt.data('drv1').traits


def test_snapshot_commits_and_uploads_a_docker_image(drv, tiny_tar):
    image_id = drv._glance.add(tiny_tar)
    ctx, inst = _spawn(drv, image_id)
    snap = str(uuid.uuid4())
    states = []
    try:
        # The callback's signature is Nova's (ComputeManager._snapshot_instance).
        def update_task_state(task_state, expected_state=None):
            states.append(task_state)

        drv.snapshot(ctx, inst, snap, update_task_state)
    finally:
        drv.destroy(ctx, inst, model.NetworkInfo())
    assert states == ['image_pending_upload', 'image_uploading']
    meta, data = drv._glance.uploads[snap]
    assert meta['container_format'] == 'docker'
    assert meta['properties'] == {'owner': 'x'}
    names = json.loads(_member(data, 'manifest.json'))[0]['RepoTags']
    assert names == [TAG_FORMAT % snap]


def _member(data, name):
    import tarfile
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        return t.extractfile(name).read()


def test_refused_operations_say_why(drv):
    inst = _instance()
    with pytest.raises(exception.InstanceFaultRollback, match='not supported'):
        drv.migrate_disk_and_power_off(None, inst, 'x', None, None)
    with pytest.raises(exception.MigrationPreCheckError, match='not supported'):
        drv.check_can_live_migrate_destination(None, inst, {}, {})
    with pytest.raises(exception.InstanceNotRescuable, match='not supported'):
        drv.rescue(None, inst, None, None, None, None, None)


def test_privsep_runs_in_its_own_daemon():
    # Called through the client: the daemon answers (names of this namespace's links).
    assert 'lo' in netplug.interfaces(os.getpid())
    assert netplug.vif_ctx.channel is not None


def test_nova_loads_it_through_the_shim_novadock_writes():
    """Nova's own loader (load_compute_driver) with the shim the nova_driver step writes
    for `docker_driver_source: bundled` (text as in src/steps/nova_driver.rs)."""
    import nova.virt
    from nova.virt import driver as nova_driver
    shim = os.path.join(os.path.dirname(nova.virt.__file__), 'novadocker_t.py')
    with open(shim, 'w') as f:
        f.write('# Written by novadock: Nova loads compute drivers only from nova.virt, so '
                'this module\n# re-exports the driver installed as '
                'novadock_driver.driver.DockerDriver.\n'
                'from novadock_driver.driver import DockerDriver  # noqa: F401\n\n'
                "__all__ = ['DockerDriver']\n")
    try:
        CONF.set_override('compute_driver', 'novadocker_t.DockerDriver')
        d = nova_driver.load_compute_driver(VirtAPI())
        assert type(d).__module__ == 'novadock_driver.driver'
        assert d.capabilities['supports_attach_interface'] is True
    finally:
        os.unlink(shim)
        CONF.clear_override('compute_driver')


def test_privsep_starts_for_user_nova_through_sudo():
    """As nova-compute runs it: user nova, the default helper command (sudo
    privsep-helper with nova's config files), allowed by Debian nova-common's sudoers."""
    script = (
        'import os, nova.conf\n'
        'CONF = nova.conf.CONF\n'
        'CONF(["--config-file", "/etc/nova/nova.conf"], project="nova")\n'
        'from novadock_driver import driver, netplug\n'
        'driver._set_privsep_helper()\n'
        'print(CONF.novadock_privileged.helper_command)\n'
        'print(",".join(netplug.interfaces(os.getpid())))\n')
    r = subprocess.run(['runuser', '-u', 'nova', '--', 'python3', '-c', script],
                       capture_output=True, text=True, cwd='/tmp')
    assert r.returncode == 0, r.stderr[-3000:]
    helper, names = r.stdout.strip().splitlines()[-2:]
    assert helper == 'sudo privsep-helper --config-file /etc/nova/nova.conf'
    assert 'lo' in names.split(',')


def test_plug_vifs_at_start_replugs_what_a_running_container_lost(drv, tiny_tar):
    image_id = drv._glance.add(tiny_tar)
    va = _vif('bridge', '10.77.0.11', 'fa:16:3e:77:00:11', LB)
    vb = _vif('bridge', '10.77.0.12', 'fa:16:3e:77:00:12', LB)
    ctx, a = _spawn(drv, image_id, network_info=model.NetworkInfo([va]))
    _, b = _spawn(drv, image_id, network_info=model.NetworkInfo([vb]))
    try:
        tap = ('tap' + va['id'])[:14]
        sh('ip', 'link', 'del', tap)  # takes eth0 of the container with it
        assert in_ns(_pid(drv, a), 'ip', 'link', 'show', 'eth0', check=False) == ''
        drv.plug_vifs(a, a.info_cache.network_info)
        assert os.path.exists('/sys/class/net/' + tap)
        _ping(_pid(drv, a), '10.77.0.12')
        drv.plug_vifs(a, a.info_cache.network_info)  # nothing missing: nothing done
        _ping(_pid(drv, a), '10.77.0.12')
    finally:
        drv.destroy(ctx, a, a.info_cache.network_info)
        drv.destroy(ctx, b, b.info_cache.network_info)


def test_plug_vifs_at_start_replugs_an_ovs_port_the_bridge_lost(drv, tiny_tar):
    image_id = drv._glance.add(tiny_tar)
    details = {'datapath_type': 'netdev'}
    va = _vif('ovs', '10.77.0.21', 'fa:16:3e:77:00:21', OVS, details)
    vb = _vif('ovs', '10.77.0.22', 'fa:16:3e:77:00:22', OVS, details)
    ctx, a = _spawn(drv, image_id, network_info=model.NetworkInfo([va]))
    _, b = _spawn(drv, image_id, network_info=model.NetworkInfo([vb]))
    try:
        tap = ('tap' + va['id'])[:14]
        sh('ovs-vsctl', 'del-port', OVS, tap)  # the tap stays, the bridge forgot it
        assert list(netplug.unplugged([drv._cfgs(a, a.info_cache.network_info)[0]])) == [va['id']]
        drv.plug_vifs(a, a.info_cache.network_info)
        assert tap in sh('ovs-vsctl', 'list-ports', OVS).split()
        _ping(_pid(drv, a), '10.77.0.22')
    finally:
        drv.destroy(ctx, a, a.info_cache.network_info)
        drv.destroy(ctx, b, b.info_cache.network_info)
