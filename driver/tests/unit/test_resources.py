"""The host's figures for placement."""

import os

from novadock_driver import resources


def test_host_figures_are_this_hosts(tmp_path):
    meminfo = tmp_path / 'meminfo'
    meminfo.write_text('MemTotal:       2048000 kB\nMemFree: 1 kB\nMemAvailable:   1024000 kB\n')
    f = resources.host_figures(str(tmp_path), str(meminfo))
    assert f['memory_mb'] == 2000
    assert f['memory_mb_used'] == 1000
    st = os.statvfs(str(tmp_path))
    assert f['local_gb'] == st.f_blocks * st.f_frsize // 1024 ** 3
    assert f['vcpus'] == os.cpu_count()


def test_inventory_with_ratios_and_reserved():
    f = {'vcpus': 8, 'memory_mb': 16000, 'local_gb': 100}
    inv = resources.inventory(f, {'VCPU': 4.0, 'MEMORY_MB': 1.0, 'DISK_GB': 1.0},
                              {'VCPU': 0, 'MEMORY_MB': 512, 'DISK_GB': 1})
    assert inv['VCPU'] == {'total': 8, 'min_unit': 1, 'max_unit': 8, 'step_size': 1,
                           'allocation_ratio': 4.0, 'reserved': 0}
    assert inv['MEMORY_MB']['reserved'] == 512
    assert inv['DISK_GB']['total'] == 100


def test_reserved_from_nova_conf():
    import nova.conf
    conf = nova.conf.CONF
    conf([], project='nova', default_config_files=[])
    r = resources.reserved_from_conf(conf)
    assert r == {'VCPU': conf.reserved_host_cpus, 'MEMORY_MB': conf.reserved_host_memory_mb,
                 'DISK_GB': 0}


def test_hypervisor_version():
    assert resources.hypervisor_version('20.10.24+dfsg1') == 20010024
    assert resources.hypervisor_version('24.0.5') == 24000005
    assert resources.hypervisor_version('26.1') == 26001000
