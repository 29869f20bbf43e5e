# LAB FIXTURE of the novadock lab (tests/lab) -- NOT a production driver.
#
# A minimal Docker virt driver for OpenStack Zed Nova, doing what nova-docker
# (retired in 2017, unloadable in Zed) did, on top of nova's fake driver so
# that every part of the driver API we do not need keeps working:
#   - reports hypervisor type "docker" (supported instances x86_64/docker/exe);
#   - spawn: the Glance image (container format docker) is looked up in the
#     local dockerd by the Glance image's name; if absent, it is downloaded
#     from Glance and `docker load`ed; then the container nova-<uuid> is
#     created and started;
#   - destroy removes the container; power off/on and reboot stop/start/restart it;
#     get_info (Nova asks it right after spawn, before the instance is ACTIVE,
#     and in its periodic power-state sync) inspects it.
# Containers are handled through dockerd's HTTP API on its unix socket, as
# nova-docker did with docker-py: a docker CLI process per call costs
# 0.1-0.3 s on a busy host, and get_info is on every boot's path. Only
# `docker load` and `docker tag` of a fetched image use the CLI.
# No networking (the lab's hosts share one network namespace): containers run
# with --network none. The image property os_command_line, if set, is the
# command to run (as in nova-docker); otherwise the image's own CMD.
# nova-compute runs as user nova: it must be in group docker.
import http.client
import json
import os
import socket
import subprocess
import tempfile
import urllib.parse

from oslo_log import log as logging

from nova import exception
from nova.compute import power_state
from nova.image import glance
from nova.objects import fields as obj_fields
from nova.virt import fake
from nova.virt import hardware

LOG = logging.getLogger(__name__)
DOCKER = os.environ.get('NOVA_DOCKER_LAB_CLI', 'docker')


def _docker(*args, check=True):
    cmd = [DOCKER] + list(args)
    LOG.debug('dockerlab: running %s', ' '.join(cmd))
    res = subprocess.run(cmd, capture_output=True, text=True)
    if check and res.returncode != 0:
        raise exception.NovaException(
            'dockerlab: %s failed (%d): %s'
            % (' '.join(cmd), res.returncode, res.stderr.strip()))
    return res


DOCKER_SOCK = os.environ.get('NOVA_DOCKER_LAB_SOCK', '/var/run/docker.sock')


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=120):
        super().__init__('localhost', timeout=timeout)
        self._path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def _api(method, path, body=None, query=None, ok=(200, 201, 204)):
    """One Docker Engine API call; returns (status, decoded JSON or None)."""
    if query:
        path += '?' + urllib.parse.urlencode(query)
    conn = _UnixHTTPConnection(DOCKER_SOCK)
    try:
        headers = {}
        data = None
        if body is not None:
            data = json.dumps(body)
            headers['Content-Type'] = 'application/json'
        conn.request(method, path, body=data, headers=headers)
        res = conn.getresponse()
        raw = res.read()
    finally:
        conn.close()
    if res.status not in ok:
        raise exception.NovaException(
            'dockerlab: %s %s failed (%d): %s'
            % (method, path, res.status, raw.decode(errors='replace').strip()))
    return res.status, (json.loads(raw) if raw.strip() else None)


def container_name(instance):
    return 'nova-%s' % instance.uuid


class DockerDriver(fake.FakeDriver):
    """Lab fixture: Docker containers as Nova instances (see module doc)."""

    capabilities = dict(fake.FakeDriver.capabilities,
                        has_imagecache=False,
                        supports_evacuate=False,
                        supports_attach_interface=False,
                        supports_multiattach=False)

    def __init__(self, virtapi, read_only=False):
        super().__init__(virtapi, read_only)
        self.host_status_base['hypervisor_type'] = obj_fields.HVType.DOCKER
        self.host_status_base['supported_instances'] = [(
            obj_fields.Architecture.X86_64,
            obj_fields.HVType.DOCKER,
            obj_fields.VMMode.EXE)]
        self._glance = glance.API()

    def init_host(self, host):
        super().init_host(host)
        # Fail at start-up, not at the first boot, when dockerd is unusable.
        _api('GET', '/version')

    # -- images ----------------------------------------------------------
    def _local_image(self, ref):
        status, _ = _api('GET', '/images/%s/json' % urllib.parse.quote(ref, safe=':/@'),
                         ok=(200, 404))
        return status == 200

    def _ensure_image(self, context, image_meta):
        """Returns a reference dockerd can run for this Glance image."""
        name = image_meta.name
        if name and self._local_image(name):
            return name
        LOG.info('dockerlab: image %s (%s) not in local dockerd, '
                 'downloading it from Glance', name, image_meta.id)
        fd, path = tempfile.mkstemp(prefix='dockerlab-', suffix='.tar')
        os.close(fd)
        try:
            self._glance.download(context, image_meta.id, dest_path=path)
            out = _docker('load', '-i', path).stdout
        finally:
            os.unlink(path)
        # `docker load` says "Loaded image: repo:tag" or "Loaded image ID: sha256:..."
        loaded = [line.split(':', 1)[1].strip() for line in out.splitlines()
                  if line.startswith('Loaded image')]
        if name and self._local_image(name):
            return name
        if loaded:
            if name:
                _docker('tag', loaded[-1], name, check=False)
            return loaded[-1]
        raise exception.ImageUnacceptable(
            image_id=image_meta.id,
            reason='docker load of the Glance image loaded nothing')

    # -- lifecycle -------------------------------------------------------
    def spawn(self, context, instance, image_meta, injected_files,
              admin_password, allocations, network_info=None,
              block_device_info=None, power_on=True, accel_info=None):
        ref = self._ensure_image(context, image_meta)
        cname = container_name(instance)
        # A container left by an earlier attempt of this instance goes first.
        _api('DELETE', '/containers/%s' % cname, query={'force': '1'},
             ok=(204, 404))
        config = {
            'Image': ref,
            'Labels': {'nova.instance': instance.uuid},
            'HostConfig': {'NetworkMode': 'none'},
        }
        if instance.flavor.memory_mb:
            config['HostConfig']['Memory'] = instance.flavor.memory_mb << 20
        cmdline = image_meta.properties.get('os_command_line')
        if cmdline:
            config['Cmd'] = ['/bin/sh', '-c', cmdline]
        _, created = _api('POST', '/containers/create', body=config,
                          query={'name': cname})
        _api('POST', '/containers/%s/start' % created['Id'])
        if not power_on:
            _api('POST', '/containers/%s/stop' % cname, ok=(204, 304))
        LOG.info('dockerlab: instance %s runs as container %s (image %s)',
                 instance.uuid, cname, ref)
        super().spawn(context, instance, image_meta, injected_files,
                      admin_password, allocations, network_info,
                      block_device_info, power_on, accel_info)

    def destroy(self, context, instance, network_info, block_device_info=None,
                destroy_disks=True, destroy_secrets=True):
        _api('DELETE', '/containers/%s' % container_name(instance),
             query={'force': '1'}, ok=(204, 404))
        super().destroy(context, instance, network_info, block_device_info,
                        destroy_disks, destroy_secrets)

    def power_off(self, instance, timeout=0, retry_interval=0):
        # 304: already stopped; 404: gone (nothing to stop).
        _api('POST', '/containers/%s/stop' % container_name(instance),
             ok=(204, 304, 404))
        super().power_off(instance, timeout, retry_interval)

    def power_on(self, context, instance, network_info,
                 block_device_info=None, accel_info=None):
        _api('POST', '/containers/%s/start' % container_name(instance),
             ok=(204, 304))
        super().power_on(context, instance, network_info, block_device_info,
                         accel_info)

    def reboot(self, context, instance, network_info, reboot_type,
               block_device_info=None, bad_volumes_callback=None,
               accel_info=None):
        _api('POST', '/containers/%s/restart' % container_name(instance))
        super().reboot(context, instance, network_info, reboot_type,
                       block_device_info, bad_volumes_callback, accel_info)

    def get_info(self, instance, use_cache=True):
        status, info = _api('GET', '/containers/%s/json' % container_name(instance),
                            ok=(200, 404))
        if status == 404:
            if instance.uuid in self.instances:
                # Known to nova but its container is gone.
                return hardware.InstanceInfo(state=power_state.NOSTATE)
            raise exception.InstanceNotFound(instance_id=instance.uuid)
        running = bool(info['State']['Running'])
        return hardware.InstanceInfo(
            state=power_state.RUNNING if running else power_state.SHUTDOWN)
