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


def _batch(lines, ns=(), family='-4'):
    """Runs `ip` commands as one process (`ip -batch`): plugging costs a handful of
    processes instead of one per link setting, which a boot waits for."""
    if lines:
        processutils.execute(*ns, 'ip', family, '-batch', '-',
                             process_input='\n'.join(lines) + '\n')


def host_lines(cfg, present=()):
    """`ip -batch` lines creating the host side of a VIF, before any container exists:
    the veth pair (and for hybrid plugging, qbr with the qvb/qvo pair), with the MTU, up,
    and the tap in its Linux bridge. The OVS port and TX offload are separate commands."""
    mtu = cfg.get('mtu')
    lines = []

    def veth(a, b):
        lines.append('link add %s type veth peer name %s' % (a, b))
        if mtu:
            lines.extend('link set %s mtu %d' % (d, int(mtu)) for d in (a, b))

    def bridge(name, with_mtu):
        if name not in present:
            lines.append('link add %s type bridge forward_delay 0' % name)
        if with_mtu and mtu:
            lines.append('link set %s mtu %d' % (name, int(mtu)))
        lines.append('link set %s up' % name)

    veth(cfg['tap'], cfg['peer'])
    if cfg['type'] == 'ovs' and cfg.get('hybrid'):
        bridge(cfg['qbr'], True)
        if cfg['qvo'] not in present:
            veth(cfg['qvb'], cfg['qvo'])
        lines += ['link set %s up' % cfg['qvb'], 'link set %s up' % cfg['qvo'],
                  'link set %s master %s' % (cfg['qvb'], cfg['qbr']),
                  'link set %s master %s' % (cfg['tap'], cfg['qbr'])]
    elif cfg['type'] != 'ovs':
        bridge(cfg['bridge'], False)
        lines.append('link set %s master %s' % (cfg['tap'], cfg['bridge']))
    lines.append('link set %s up' % cfg['tap'])
    return lines


def ns_lines(cfg):
    """`ip -batch` lines, run in the container's namespace, that make the moved peer its
    `ethN` with the port's MAC, addresses and routes: (IPv4 lines, IPv6 lines)."""
    dev = cfg['ifname']
    v4 = ['link set lo up', 'link set %s name %s' % (cfg['peer'], dev),
          'link set %s address %s' % (dev, cfg['mac']), 'link set %s up' % dev]
    v6 = []
    for addr in cfg['addresses']:
        (v6 if ':' in addr else v4).append('addr replace %s dev %s' % (addr, dev))
    for r in cfg['routes']:
        (v6 if r['version'] == 6 else v4).append(
            'route replace %s via %s dev %s' % (r['dst'], r['via'], dev))
    return v4, v6


def _delete_link(dev):
    """Deletes a device; one that vanishes meanwhile (a veth whose peer's namespace is
    being torn down after the container stopped) is fine, one that stays is not."""
    if _exists(dev):
        _run('ip', 'link', 'del', dev, ok=(0, 1))
        if _exists(dev):
            raise RuntimeError('cannot delete network device %s' % dev)


def _links(ns=()):
    """Names of the network devices (of the namespace `ns` enters, else the host's)."""
    out = _run(*ns, 'ip', '-o', 'link', 'show')
    return {line.split(':', 2)[1].strip().split('@')[0]
            for line in out.splitlines() if line.count(':') >= 2}


def _unplug(cfg, present=None):
    if cfg['type'] == 'ovs':
        port = cfg['qvo'] if cfg.get('hybrid') else cfg['tap']
        _run('ovs-vsctl', '--timeout=120', '--', '--if-exists', 'del-port',
             cfg['bridge'], port)
    devs = [cfg['tap'], cfg['peer']]
    if cfg['type'] == 'ovs' and cfg.get('hybrid'):
        devs = [cfg['qvo'], cfg['qbr']] + devs
    # Deleting one end of a veth deletes its peer too; the brq bridge stays (Neutron's).
    for dev in devs:
        if present is None or dev in present:
            _delete_link(dev)
    return devs + ([cfg['qvb']] if cfg.get('qvb') else [])


@vif_ctx.entrypoint
def unplug(cfg):
    """Removes the host side of a VIF: no veth, qbr or OVS port is left."""
    _check(cfg)
    _unplug(cfg)


def _plug_host(cfg):
    present = _links()
    # What an earlier run left is stale.
    present -= set(_unplug(cfg, present))
    try:
        _batch(host_lines(cfg, present))
        if cfg['type'] == 'ovs' and cfg.get('datapath_type') == 'netdev':
            # OVS's userspace datapath forwards packets as the kernel handed them: a
            # checksum left to "hardware" by TX offload is never filled in, and TCP/UDP
            # (DHCP replies included) arrive broken. The setting moves with the device.
            devs = [cfg['tap'], cfg['peer']]
            if cfg.get('hybrid'):
                devs += [cfg['qvb'], cfg['qvo']]
            for dev in devs:
                _run('ethtool', '-K', dev, 'tx', 'off')
        if cfg['type'] == 'ovs':
            _ovs_port(cfg, cfg['bridge'], cfg['qvo'] if cfg.get('hybrid') else cfg['tap'])
    except Exception:
        _unplug(cfg)
        raise


def _plug_container(cfg, pid):
    try:
        _run('ip', 'link', 'set', cfg['peer'], 'netns', str(int(pid)))
        v4, v6 = ns_lines(cfg)
        _batch(v4, _ns(pid))
        _batch(v6, _ns(pid), '-6')
    except Exception:
        _unplug(cfg)
        raise


@vif_ctx.entrypoint
def plug_host(cfg):
    """The host side of one VIF, before its container runs: the veth pair with the tap in
    its bridge (for OVS, a port with Neutron's external ids), so that the agent wires the
    port while the container is created and started. The peer waits in the host."""
    _check(cfg)
    _plug_host(cfg)


@vif_ctx.entrypoint
def plug_container(cfg, pid):
    """Moves a VIF's waiting peer into the namespace of process `pid` as cfg['ifname']."""
    _check(cfg)
    _plug_container(cfg, pid)


@vif_ctx.entrypoint
def plug(cfg, pid):
    """Plugs one VIF into the network namespace of process `pid` as cfg['ifname']."""
    _check(cfg)
    # A restarted container has a new namespace: what is left from before is stale.
    _plug_host(cfg)
    _plug_container(cfg, pid)


@vif_ctx.entrypoint
def interfaces(pid):
    """Names of the interfaces in the namespace of process `pid`."""
    return sorted(_links(_ns(int(pid))))


@vif_ctx.entrypoint
def unplugged(cfgs):
    """Port ids of the VIFs whose host side is incomplete: the tap is gone (its container
    end with it), or for OVS, the bridge no longer has the port (ovsdb reset, a stale
    delete). Asked at nova-compute start, to re-plug only those."""
    for cfg in cfgs:
        _check(cfg)
    links = _links()
    ports = {}
    out = []
    for cfg in cfgs:
        missing = cfg['tap'] not in links
        if not missing and cfg['type'] == 'ovs':
            bridge = cfg['bridge']
            if bridge not in ports:
                ports[bridge] = set(_run('ovs-vsctl', '--timeout=120', 'list-ports', bridge,
                                         ok=(0, 1)).split())
            missing = (cfg['qvo'] if cfg.get('hybrid') else cfg['tap']) not in ports[bridge]
        if missing:
            out.append(cfg['port_id'])
    return out
