"""The host's real capacity, for placement and the resource tracker."""

import math
import os


def host_figures(data_root, meminfo='/proc/meminfo'):
    """vCPUs, memory and docker data-root disk of this host."""
    mem_total = mem_avail = 0
    with open(meminfo) as f:
        for line in f:
            key, _, rest = line.partition(':')
            if key == 'MemTotal':
                mem_total = int(rest.split()[0]) // 1024
            elif key == 'MemAvailable':
                mem_avail = int(rest.split()[0]) // 1024
    st = os.statvfs(data_root)
    gib = 1024 ** 3
    disk_total = st.f_blocks * st.f_frsize // gib
    disk_free = st.f_bavail * st.f_frsize // gib
    return {
        'vcpus': os.cpu_count() or 1,
        'memory_mb': mem_total,
        'memory_mb_used': max(mem_total - mem_avail, 0),
        'local_gb': disk_total,
        'local_gb_used': max(disk_total - disk_free, 0),
        'disk_available_least': disk_free,
    }


def inventory(figures, ratios, reserved):
    """Placement inventory for VCPU, MEMORY_MB and DISK_GB (as the fake and libvirt
    drivers build it): ratios from Nova's _get_allocation_ratios, reserved from nova.conf."""
    inv = {}
    for rc, total in (('VCPU', figures['vcpus']), ('MEMORY_MB', figures['memory_mb']),
                      ('DISK_GB', figures['local_gb'])):
        inv[rc] = {
            'total': total,
            'min_unit': 1,
            'max_unit': total,
            'step_size': 1,
            'allocation_ratio': ratios[rc],
            'reserved': reserved[rc],
        }
    return inv


def reserved_from_conf(conf):
    return {
        'VCPU': conf.reserved_host_cpus,
        'MEMORY_MB': conf.reserved_host_memory_mb,
        'DISK_GB': int(math.ceil(conf.reserved_host_disk_mb / 1024.0)),
    }


def hypervisor_version(version):
    """Docker's version '24.0.5' as Nova's integer 24000005."""
    parts = []
    for p in str(version).split('-')[0].split('+')[0].split('.')[:3]:
        digits = ''.join(c for c in p if c.isdigit())
        parts.append(int(digits or 0))
    while len(parts) < 3:
        parts.append(0)
    return parts[0] * 1000000 + parts[1] * 1000 + parts[2]
