"""Privileged network plumbing, run in the driver's own oslo.privsep daemon.

Every function here takes the plain dicts of :mod:`novadock_driver.vifs` and runs fixed
argument vectors (`ip`, `nsenter`, `ovs-vsctl`, `ethtool`) without a shell. Privsep starts the
daemon with `[novadock_privileged] helper_command` (see docs/driver.md)."""

import re

from oslo_concurrency import processutils
from oslo_privsep import capabilities as caps
from oslo_privsep import priv_context

vif_ctx = priv_context.PrivContext(
    'novadock_driver',
    cfg_section='novadock_privileged',
    pypath=__name__ + '.vif_ctx',
    capabilities=[caps.CAP_NET_ADMIN, caps.CAP_SYS_ADMIN, caps.CAP_SYS_PTRACE,
                  caps.CAP_DAC_OVERRIDE],
)

_DEV = re.compile(r'^[A-Za-z0-9_.-]{1,15}$')
_MAC = re.compile(r'^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$')


def _check(cfg):
    for k in ('tap', 'peer', 'bridge', 'qbr', 'qvb', 'qvo', 'ifname'):
        v = cfg.get(k)
        if v is not None and not _DEV.match(v):
            raise ValueError('bad device name %r' % v)
    if not _MAC.match(cfg.get('mac') or ''):
        raise ValueError('bad MAC %r' % cfg.get('mac'))


def _run(*args, ok=(0,)):
    return processutils.execute(*args, check_exit_code=list(ok))[0]


def _exists(dev):
    # Asked of the kernel, not /sys/class/net: a sysfs mounted in another network
    # namespace (systemd-nspawn with --network-namespace-path) lists that one's devices.
    out = processutils.execute('ip', '-o', 'link', 'show', 'dev', dev,
                               check_exit_code=[0, 1, 255])[0]
    return bool(out.strip())


def _ns(pid):
    return ('nsenter', '--net=/proc/%d/ns/net' % int(pid))


def _ovs_port(cfg, bridge, dev):
    _run('ovs-vsctl', '--timeout=120', '--', '--may-exist', 'add-br', bridge,
         '--', 'set', 'Bridge', bridge, 'datapath_type=%s' % cfg['datapath_type'],
         '--', '--may-exist', 'add-port', bridge, dev,
         '--', 'set', 'Interface', dev,
         'external-ids:iface-id=%s' % cfg['port_id'],
         'external-ids:iface-status=active',
         'external-ids:attached-mac=%s' % cfg['mac'],
         'external-ids:vm-uuid=%s' % cfg['instance_uuid'])


def _linux_bridge(name, mtu):
    if not _exists(name):
        _run('ip', 'link', 'add', name, 'type', 'bridge', 'forward_delay', '0')
    if mtu:
        _run('ip', 'link', 'set', name, 'mtu', str(mtu))
    _run('ip', 'link', 'set', name, 'up')


def _veth(a, b, mtu, userspace=False):
    _run('ip', 'link', 'add', a, 'type', 'veth', 'peer', 'name', b)
    if mtu:
        _run('ip', 'link', 'set', a, 'mtu', str(mtu))
        _run('ip', 'link', 'set', b, 'mtu', str(mtu))
    if userspace:
        # OVS's userspace datapath forwards packets as the kernel handed them: a
        # checksum left to "hardware" by TX offload is never filled in, and TCP/UDP
        # (DHCP replies included) arrive broken. The setting moves with the device.
        for dev in (a, b):
            _run('ethtool', '-K', dev, 'tx', 'off')


def _delete_link(dev):
    """Deletes a device; one that vanishes meanwhile (a veth whose peer's namespace is
    being torn down after the container stopped) is fine, one that stays is not."""
    if _exists(dev):
        _run('ip', 'link', 'del', dev, ok=(0, 1))
        if _exists(dev):
            raise RuntimeError('cannot delete network device %s' % dev)


def _unplug(cfg):
    if cfg['type'] == 'ovs':
        if cfg.get('hybrid'):
            _run('ovs-vsctl', '--timeout=120', '--', '--if-exists', 'del-port',
                 cfg['bridge'], cfg['qvo'])
            for dev in (cfg['qvo'], cfg['qbr']):
                _delete_link(dev)
        else:
            _run('ovs-vsctl', '--timeout=120', '--', '--if-exists', 'del-port',
                 cfg['bridge'], cfg['tap'])
    # Deleting one end of a veth deletes its peer too; the brq bridge stays (Neutron's).
    for dev in (cfg['tap'], cfg['peer']):
        _delete_link(dev)


@vif_ctx.entrypoint
def unplug(cfg):
    """Removes the host side of a VIF: no veth, qbr or OVS port is left."""
    _check(cfg)
    _unplug(cfg)


@vif_ctx.entrypoint
def plug(cfg, pid):
    """Plugs one VIF into the network namespace of process `pid` as cfg['ifname']."""
    _check(cfg)
    pid = int(pid)
    ns = _ns(pid)
    # A restarted container has a new namespace: what is left from before is stale.
    _unplug(cfg)
    mtu = cfg.get('mtu')
    userspace = cfg['type'] == 'ovs' and cfg.get('datapath_type') == 'netdev'
    _veth(cfg['tap'], cfg['peer'], mtu, userspace)
    try:
        if cfg['type'] == 'ovs' and cfg.get('hybrid'):
            _linux_bridge(cfg['qbr'], mtu)
            if not _exists(cfg['qvo']):
                _veth(cfg['qvb'], cfg['qvo'], mtu, userspace)
            for dev in (cfg['qvb'], cfg['qvo']):
                _run('ip', 'link', 'set', dev, 'up')
            _run('ip', 'link', 'set', cfg['qvb'], 'master', cfg['qbr'])
            _ovs_port(cfg, cfg['bridge'], cfg['qvo'])
            _run('ip', 'link', 'set', cfg['tap'], 'master', cfg['qbr'])
        elif cfg['type'] == 'ovs':
            _ovs_port(cfg, cfg['bridge'], cfg['tap'])
        else:
            _linux_bridge(cfg['bridge'], None)
            _run('ip', 'link', 'set', cfg['tap'], 'master', cfg['bridge'])
        _run('ip', 'link', 'set', cfg['tap'], 'up')
        _run('ip', 'link', 'set', cfg['peer'], 'netns', str(pid))
        _run(*ns, 'ip', 'link', 'set', 'lo', 'up')
        _run(*ns, 'ip', 'link', 'set', cfg['peer'], 'name', cfg['ifname'])
        _run(*ns, 'ip', 'link', 'set', cfg['ifname'], 'address', cfg['mac'])
        _run(*ns, 'ip', 'link', 'set', cfg['ifname'], 'up')
        for addr in cfg['addresses']:
            fam = '-6' if ':' in addr else '-4'
            _run(*ns, 'ip', fam, 'addr', 'replace', addr, 'dev', cfg['ifname'])
        for r in cfg['routes']:
            fam = '-6' if r['version'] == 6 else '-4'
            _run(*ns, 'ip', fam, 'route', 'replace', r['dst'], 'via', r['via'],
                 'dev', cfg['ifname'])
    except Exception:
        _unplug(cfg)
        raise


@vif_ctx.entrypoint
def interfaces(pid):
    """Names of the interfaces in the namespace of process `pid`."""
    out = _run(*_ns(int(pid)), 'ip', '-o', 'link', 'show')
    names = []
    for line in out.splitlines():
        parts = line.split(':', 2)
        if len(parts) >= 2:
            names.append(parts[1].strip().split('@')[0])
    return names


@vif_ctx.entrypoint
def host_devices(names):
    """Which of `names` exist in the host namespace."""
    return [n for n in names if _DEV.match(n) and _exists(n)]
