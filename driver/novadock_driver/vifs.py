"""What each VIF of a Nova network_info becomes: pure data, no side effects.

The result is a plain dict (it crosses into the privsep daemon) that
:mod:`novadock_driver.netplug` turns into devices:

- a veth pair: host end `tap<port id>` (the name Nova and Neutron agree on), container
  end created as `tin<port id>` and renamed `ethN` inside the container's namespace;
- OVS direct: the host end is a port of the integration bridge with the external ids
  the OVS agent looks for (iface-id, iface-status, attached-mac, vm-uuid);
- OVS hybrid (iptables_hybrid firewall): the host end in `qbr<id>`, joined to the
  integration bridge by the veth `qvb<id>`/`qvo<id>` as os-vif does;
- Linux bridge (Nova <= 33): the host end in the network's `brq<id>` bridge, which the
  driver creates if the agent has not yet (Neutron's agent leaves compute ports to us).
"""

import ipaddress

NIC_NAME_LEN = 14
SUPPORTED = ('ovs', 'bridge')


class VifError(Exception):
    pass


def _name(prefix, port_id):
    return (prefix + port_id)[:NIC_NAME_LEN]


def _subnets(network):
    return list(network.get('subnets') or [])


def _meta(obj, key, default=None):
    get_meta = getattr(obj, 'get_meta', None)
    if get_meta is not None:
        return get_meta(key, default)
    return (obj.get('meta') or {}).get(key, default)


def _addr(ip):
    return ip['address'] if isinstance(ip, dict) else str(ip)


def vif_config(vif, instance_uuid):
    """The plumbing of one VIF (a nova.network.model.VIF or a dict of the same shape)."""
    vtype = vif.get('type')
    port = vif.get('id')
    if not port:
        raise VifError('a VIF without a port id')
    if vtype not in SUPPORTED:
        raise VifError('VIF type %r of port %s is not supported by the Docker driver '
                       '(supported: %s)' % (vtype, port, ', '.join(SUPPORTED)))
    network = vif.get('network') or {}
    details = vif.get('details') or {}
    mtu = _meta(network, 'mtu')
    cfg = {
        'port_id': port,
        'type': vtype,
        'mac': vif.get('address'),
        'instance_uuid': instance_uuid,
        'tap': vif.get('devname') or _name('tap', port),
        'peer': _name('tin', port),
        'mtu': int(mtu) if mtu else None,
        'addresses': [],
        'routes': [],
        'dns': [],
    }
    if not cfg['mac']:
        raise VifError('port %s has no MAC address' % port)
    for subnet in _subnets(network):
        cidr = subnet.get('cidr')
        if not cidr:
            continue
        net = ipaddress.ip_network(str(cidr), strict=False)
        for ip in subnet.get('ips') or []:
            cfg['addresses'].append('%s/%d' % (_addr(ip), net.prefixlen))
        gw = subnet.get('gateway')
        if gw and _addr(gw) and subnet.get('ips'):
            cfg['routes'].append({'dst': 'default', 'via': _addr(gw), 'version': net.version})
        for route in subnet.get('routes') or []:
            cfg['routes'].append({'dst': str(route['cidr']), 'via': _addr(route['gateway']),
                                  'version': net.version})
        for dns in subnet.get('dns') or []:
            if _addr(dns) not in cfg['dns']:
                cfg['dns'].append(_addr(dns))
    if vtype == 'ovs':
        hybrid = bool(details.get('ovs_hybrid_plug'))
        cfg.update({
            'bridge': network.get('bridge') or 'br-int',
            'datapath_type': details.get('datapath_type') or 'system',
            'hybrid': hybrid,
        })
        if hybrid:
            cfg.update({'qbr': _name('qbr', port), 'qvb': _name('qvb', port),
                        'qvo': _name('qvo', port)})
    else:
        bridge = network.get('bridge') or _name('brq', network.get('id') or '')
        if not bridge or bridge == 'brq':
            raise VifError('port %s: Linux bridge VIF without a bridge name' % port)
        cfg['bridge'] = bridge
    return cfg


def network_config(network_info, instance_uuid):
    """Configs for every VIF, with container interface names eth0..ethN.

    Only the first VIF that has a default route of an IP version keeps it: a
    container has one default route per family."""
    cfgs = []
    seen_default = set()
    for i, vif in enumerate(network_info or []):
        cfg = vif_config(vif, instance_uuid)
        cfg['ifname'] = 'eth%d' % i
        kept = []
        for r in cfg['routes']:
            if r['dst'] == 'default':
                if r['version'] in seen_default:
                    continue
                seen_default.add(r['version'])
            kept.append(r)
        cfg['routes'] = kept
        cfgs.append(cfg)
    return cfgs


def resolv_conf(cfgs):
    """/etc/resolv.conf for the container from its subnets' DNS servers (max 3, as libc)."""
    servers = []
    for c in cfgs:
        for d in c['dns']:
            if d not in servers:
                servers.append(d)
    lines = ['# Written by novadock: the DNS servers of the instance\'s Neutron subnets.']
    lines += ['nameserver %s' % s for s in servers[:3]]
    return '\n'.join(lines) + '\n'


def vif_plugged_events(network_info):
    """Neutron events to wait for: ports not ACTIVE when network_info was built."""
    return [('network-vif-plugged', vif['id']) for vif in network_info or []
            if vif.get('active', True) is False
            and vif.get('vnic_type', 'normal') != 'remote-managed']
