"""DockerDriver: Docker containers as Nova instances, for Nova 26 (Zed) to 34 (2026.2).

Nova loads it as ``compute_driver = novadocker.DockerDriver`` through the shim
``nova/virt/novadocker.py`` that novadock writes. What each operation does is in
docs/driver.md; the pure parts live in sibling modules and are unit-tested.
"""

import contextlib
import os
import shlex
import shutil
import tempfile

import nova.conf
from nova import exception
from nova.compute import power_state, task_states
from nova.objects import fields
from nova.virt import driver, hardware
from oslo_concurrency import lockutils
from oslo_log import log as logging

from novadock_driver import TAG_FORMAT, TRAIT, conf, containers, netplug, resources, tarball, vifs
from novadock_driver.docker_api import (
    Client,
    DockerError,
    demux_logs,
    loaded_image_ids,
    quote,
    stream_errors,
)

LOG = logging.getLogger(__name__)
CONF = nova.conf.CONF
conf.register(CONF)

# What ends a wait for Neutron's events: eventlet's Timeout (a BaseException) up to
# Nova 31, nova.exception.InstanceEventTimeout from 32.
_TIMEOUTS = tuple(t for t in (getattr(exception, 'InstanceEventTimeout', None),) if t)
try:
    from eventlet import timeout as _eventlet_timeout

    _TIMEOUTS += (_eventlet_timeout.Timeout,)
except ImportError:  # Nova 34 on native threads may run without eventlet.
    pass

_DOCKER_FAILURES = (DockerError, containers.ContainerError, vifs.VifError,
                    tarball.TarballError)
_LOG_READ_CAP = 8 * 1024 * 1024


def _set_privsep_helper():
    """Starts the privsep daemon with `sudo privsep-helper` and nova-compute's own
    config files unless [novadock_privileged] helper_command says otherwise: rootwrap
    has no filter for this context, and Debian's nova-common lets nova run
    /usr/bin/privsep-helper through sudo (docs/driver.md)."""
    cmd = ['sudo', 'privsep-helper']
    for f in CONF.config_file or []:
        cmd += ['--config-file', f]
    if CONF.config_dir:
        cmd += ['--config-dir', CONF.config_dir]
    CONF.set_default('helper_command', ' '.join(shlex.quote(c) for c in cmd),
                     group='novadock_privileged')


class DockerDriver(driver.ComputeDriver):
    """Docker containers as Nova instances (docs/driver.md)."""

    capabilities = dict(
        driver.ComputeDriver.capabilities,
        has_imagecache=False,
        supports_evacuate=False,
        supports_migrate_to_same_host=False,
        supports_attach_interface=True,
        supports_multiattach=False,
        supports_image_type_raw=True,
    )

    def __init__(self, virtapi):
        super().__init__(virtapi)
        self.docker = Client(CONF.docker.api_socket, CONF.docker.api_timeout)
        self._glance = None
        self._data_root = None
        self._version = None
        _set_privsep_helper()

    # -- host -------------------------------------------------------------------------
    def init_host(self, host):
        try:
            self._version = self.docker.call('GET', '/version')[1]
            info = self.docker.call('GET', '/info')[1]
        except DockerError as e:
            raise exception.NovaException(
                'novadock: dockerd is not usable, so nova-compute cannot run Docker '
                'instances: %s (hint: is docker running, and may nova-compute\'s user '
                'use %s?)' % (e, CONF.docker.api_socket)) from e
        self._data_root = info.get('DockerRootDir') or '/var/lib/docker'
        os.makedirs(os.path.join(CONF.docker.state_dir, 'images'), 0o700, exist_ok=True)
        LOG.info('novadock: dockerd %s, data root %s', self._version.get('Version'),
                 self._data_root)

    def _root(self):
        if self._data_root is None:
            info = self.docker.call('GET', '/info')[1]
            self._data_root = info.get('DockerRootDir') or '/var/lib/docker'
        return self._data_root

    def get_available_nodes(self, refresh=False):
        # The service's host name: stable across restarts, as Nova 27+ requires.
        return [CONF.host]

    def get_host_ip_addr(self):
        return CONF.my_ip

    def get_available_resource(self, nodename):
        f = resources.host_figures(self._root())
        version = (self._version or self.docker.call('GET', '/version')[1]).get('Version')
        return {
            'vcpus': f['vcpus'],
            'memory_mb': f['memory_mb'],
            'local_gb': f['local_gb'],
            'vcpus_used': 0,
            'memory_mb_used': f['memory_mb_used'],
            'local_gb_used': f['local_gb_used'],
            'hypervisor_type': fields.HVType.DOCKER,
            'hypervisor_version': resources.hypervisor_version(version),
            'hypervisor_hostname': nodename,
            'cpu_info': '{}',
            'disk_available_least': f['disk_available_least'],
            'supported_instances': [(fields.Architecture.from_host(), fields.HVType.DOCKER,
                                     fields.VMMode.EXE)],
            'numa_topology': None,
        }

    def update_provider_tree(self, provider_tree, nodename, allocations=None):
        f = resources.host_figures(self._root())
        ratios = self._get_allocation_ratios(provider_tree.data(nodename).inventory)
        inv = resources.inventory(f, ratios, resources.reserved_from_conf(CONF))
        provider_tree.update_inventory(nodename, inv)
        provider_tree.add_traits(nodename, TRAIT)

    # -- containers -------------------------------------------------------------------
    @staticmethod
    def _name(instance):
        return containers.container_name(instance.uuid)

    def _inspect(self, instance):
        return self.docker.get('/containers/%s/json' % quote(self._name(instance)),
                               missing_ok=True)

    def _inspect_or_raise(self, instance):
        c = self._inspect(instance)
        if c is None:
            raise exception.InstanceNotFound(instance_id=instance.uuid)
        return c

    def _post(self, instance, action, query=None):
        self.docker.call('POST', '/containers/%s/%s' % (quote(self._name(instance)), action),
                         query)

    def _cfgs(self, instance, network_info, skip_unsupported=False):
        if not skip_unsupported:
            return vifs.network_config(network_info, instance.uuid)
        out = []
        for i, vif in enumerate(network_info or []):
            try:
                cfg = vifs.vif_config(vif, instance.uuid)
            except vifs.VifError as e:
                LOG.warning('novadock: %s', e, instance=instance)
                continue
            cfg['ifname'] = 'eth%d' % i
            out.append(cfg)
        return out

    def _state_dir(self, instance):
        return os.path.join(CONF.docker.state_dir, instance.uuid)

    def _write_resolv_conf(self, instance, cfgs):
        d = self._state_dir(instance)
        os.makedirs(d, 0o755, exist_ok=True)
        path = os.path.join(d, 'resolv.conf')
        with open(path + '.tmp', 'w') as f:
            f.write(vifs.resolv_conf(cfgs))
        os.chmod(path + '.tmp', 0o644)
        os.replace(path + '.tmp', path)
        return path

    def _unplug_all(self, instance, network_info):
        for cfg in self._cfgs(instance, network_info, skip_unsupported=True):
            netplug.unplug(cfg)

    def _plug_container_all(self, instance, cfgs):
        pid = self._inspect_or_raise(instance)['State'].get('Pid')
        if not pid:
            raise containers.ContainerError('container %s is not running'
                                            % self._name(instance))
        for cfg in cfgs:
            netplug.plug_container(cfg, pid)

    def _neutron_failed(self, event_name, instance):
        raise exception.NovaException(
            'novadock: Neutron reported %s as failed for instance %s'
            % (event_name, instance.uuid))

    def _start(self, instance, network_info, wait_for_neutron, create=None):
        """Starts the container (created first by `create`, if given) and plugs its VIFs,
        waiting for network-vif-plugged as libvirt does when asked to. The host side of
        each VIF is plugged first, so Neutron's agent wires the ports while the container
        is created and started; only moving the ends into its namespace comes after."""
        cfgs = self._cfgs(instance, network_info)
        timeout = CONF.vif_plugging_timeout
        events = vifs.vif_plugged_events(network_info) if wait_for_neutron and timeout else []
        try:
            # The timeout is positional: its keyword is deadline= up to Nova 32, timeout=
            # from 33.
            with self.virtapi.wait_for_instance_event(
                    instance, events, timeout, error_callback=self._neutron_failed):
                for cfg in cfgs:
                    netplug.plug_host(cfg)
                if create is not None:
                    create()
                self._post(instance, 'start')
                self._plug_container_all(instance, cfgs)
        except _TIMEOUTS:
            msg = ('novadock: Neutron sent no network-vif-plugged for port(s) %s within '
                   '%d s ([DEFAULT] vif_plugging_timeout)'
                   % (', '.join(e[1] for e in events), timeout))
            if CONF.vif_plugging_is_fatal:
                self._stop(instance, network_info, 0)
                raise exception.NovaException(msg) from None
            LOG.warning('%s; going on as vif_plugging_is_fatal is false', msg,
                        instance=instance)

    def _stop(self, instance, network_info, timeout):
        c = self._inspect(instance)
        if c is not None and (c['State'].get('Running') or c['State'].get('Paused')):
            if c['State'].get('Paused'):
                self._post(instance, 'unpause')
            self._post(instance, 'stop', {'t': int(timeout)})
        # The namespace died with the process, taking the container ends with it; the
        # host side (OVS port records, qbr) is ours to remove.
        self._unplug_all(instance, network_info)

    def spawn(self, context, instance, image_meta, injected_files, admin_password,
              allocations, network_info=None, block_device_info=None, power_on=True,
              accel_info=None):
        if block_device_info and driver.block_device_info_get_mapping(block_device_info):
            raise exception.BuildAbortException(
                instance_uuid=instance.uuid,
                reason='novadock: the Docker driver cannot attach volumes; boot without '
                       'block device mappings')
        image_id = image_meta.id
        self._check_container_format(image_id, getattr(image_meta, 'container_format', None))
        try:
            _, img = self._ensure_image(context, image_id)
            props = image_meta.properties
            cmdline = (props.os_command_line
                       if props.obj_attr_is_set('os_command_line') else None)
            try:
                cmd = containers.command(img.get('Config'), cmdline)
            except containers.ContainerError as e:
                raise exception.ImageUnacceptable(image_id=image_id, reason=str(e)) from e
            cfgs = self._cfgs(instance, network_info)
            flavor = {'vcpus': instance.flavor.vcpus, 'memory_mb': instance.flavor.memory_mb,
                      'root_gb': instance.flavor.root_gb}
            hc = containers.host_config(flavor, instance.flavor.extra_specs,
                                        CONF.docker.disk_quota,
                                        self._write_resolv_conf(instance, cfgs))
            body = containers.create_body(
                {'hostname': instance.hostname, 'uuid': instance.uuid, 'name': instance.name},
                TAG_FORMAT % image_id, cmd, containers.environment(instance.metadata), hc)
            if self._inspect(instance) is not None:
                # Left over from an earlier failed build of this instance.
                self.docker.call('DELETE', '/containers/%s' % quote(self._name(instance)),
                                 {'force': 1, 'v': 1})

            def create():
                self.docker.call('POST', '/containers/create',
                                 {'name': self._name(instance)}, body)
            if power_on:
                self._start(instance, network_info, wait_for_neutron=True, create=create)
            else:
                create()
        except exception.ImageUnacceptable:
            raise
        except (exception.NovaException,) + _DOCKER_FAILURES as e:
            self._cleanup_failed_spawn(instance, network_info)
            reason = e.format_message() if hasattr(e, 'format_message') else str(e)
            raise exception.BuildAbortException(instance_uuid=instance.uuid,
                                                reason=reason) from e
        LOG.info('novadock: container %s created from image %s', self._name(instance),
                 image_id, instance=instance)

    def _cleanup_failed_spawn(self, instance, network_info):
        try:
            self._destroy(instance, network_info)
        except Exception:
            LOG.exception('novadock: cleaning up after a failed spawn', instance=instance)

    def _destroy(self, instance, network_info):
        if self._inspect(instance) is not None:
            # Immediately, as libvirt's destroy pulls the plug: Nova shuts a server down
            # gracefully only where it asks for that (power_off with its timeout).
            self._stop(instance, network_info, 0)
            self.docker.call('DELETE', '/containers/%s' % quote(self._name(instance)),
                             {'force': 1, 'v': 1}, ok=(204, 404))
        else:
            self._unplug_all(instance, network_info)
        shutil.rmtree(self._state_dir(instance), ignore_errors=True)

    def destroy(self, context, instance, network_info, block_device_info=None,
                destroy_disks=True, destroy_secrets=True):
        self._destroy(instance, network_info)

    def cleanup(self, context, instance, network_info, block_device_info=None,
                destroy_disks=True, migrate_data=None, destroy_vifs=True,
                destroy_secrets=True):
        if destroy_disks:
            self._destroy(instance, network_info)
        elif destroy_vifs:
            self._unplug_all(instance, network_info)

    def get_info(self, instance, use_cache=True):
        c = self._inspect_or_raise(instance)
        state = containers.power_state_of(c.get('State'),
                                          suspended=instance.vm_state == 'suspended')
        return hardware.InstanceInfo(state=getattr(power_state, state), internal_id=c['Id'])

    def _list(self):
        return self.docker.get('/containers/json', {
            'all': 1, 'filters': '{"label": ["%s"]}' % containers.LABEL}) or []

    def list_instances(self):
        return [c['Labels'].get(containers.NAME_LABEL) or c['Labels'][containers.LABEL]
                for c in self._list()]

    def list_instance_uuids(self):
        return [c['Labels'][containers.LABEL] for c in self._list()]

    def instance_exists(self, instance):
        return self._inspect(instance) is not None

    def reboot(self, context, instance, network_info, reboot_type, block_device_info=None,
               bad_volumes_callback=None, accel_info=None, share_info=None):
        timeout = CONF.docker.stop_timeout if reboot_type == 'SOFT' else 0
        self._stop(instance, network_info, timeout)
        self._start(instance, network_info, wait_for_neutron=False)

    def power_off(self, instance, timeout=0, retry_interval=0):
        self._stop(instance, instance.get_network_info(), timeout)

    def power_on(self, context, instance, network_info, block_device_info=None,
                 accel_info=None, share_info=None):
        c = self._inspect_or_raise(instance)
        if not c['State'].get('Running'):
            self._start(instance, network_info, wait_for_neutron=False)

    def resume_state_on_host_boot(self, context, instance, network_info, *args, **kwargs):
        # Nova 31 inserted share_info before block_device_info; neither matters here.
        self.power_on(context, instance, network_info)

    def pause(self, instance):
        self._post(instance, 'pause')

    def unpause(self, instance):
        self._post(instance, 'unpause')

    # A container cannot be saved to disk; suspend freezes it like pause (as nova-docker
    # did), and get_info reports it as SUSPENDED.
    def suspend(self, context, instance):
        self._post(instance, 'pause')

    def resume(self, context, instance, network_info, block_device_info=None,
               share_info=None):
        self._post(instance, 'unpause')

    def get_console_output(self, context, instance):
        self._inspect_or_raise(instance)
        with self.docker.stream('GET', '/containers/%s/logs' % quote(self._name(instance)),
                                {'stdout': 1, 'stderr': 1, 'tail': 5000}) as s:
            raw = s.read(_LOG_READ_CAP)
        return demux_logs(raw)[-CONF.docker.console_max_bytes:]

    # -- networking -------------------------------------------------------------------
    def plug_vifs(self, instance, network_info):
        """At nova-compute start: re-plugs what a running container lost."""
        c = self._inspect(instance)
        if c is None or not c['State'].get('Running'):
            return
        cfgs = self._cfgs(instance, network_info, skip_unsupported=True)
        missing = set(netplug.unplugged(cfgs))
        for cfg in cfgs:
            if cfg['port_id'] in missing:
                try:
                    netplug.plug(cfg, c['State']['Pid'])
                except Exception as e:
                    # Nova puts this instance in ERROR and starts; any other error
                    # would stop nova-compute for every instance of the host.
                    LOG.exception('novadock: cannot re-plug port %s', cfg['port_id'],
                                  instance=instance)
                    raise exception.VirtualInterfacePlugException(
                        'novadock: cannot re-plug port %s: %s' % (cfg['port_id'], e)) from e

    def unplug_vifs(self, instance, network_info):
        self._unplug_all(instance, network_info)

    def attach_interface(self, context, instance, image_meta, vif):
        try:
            cfg = vifs.vif_config(vif, instance.uuid)
            c = self._inspect_or_raise(instance)
            pid = c['State'].get('Pid')
            if not c['State'].get('Running') or not pid:
                return  # plugged when the container starts
            names = set(netplug.interfaces(pid))
            cfg['ifname'] = next('eth%d' % i for i in range(len(names) + 1)
                                 if 'eth%d' % i not in names)
            netplug.plug(cfg, pid)
        except _DOCKER_FAILURES as e:
            LOG.error('novadock: attaching port %s: %s', vif.get('id'), e, instance=instance)
            raise exception.InterfaceAttachFailed(instance_uuid=instance.uuid) from e

    def detach_interface(self, context, instance, vif):
        try:
            netplug.unplug(vifs.vif_config(vif, instance.uuid))
        except _DOCKER_FAILURES as e:
            raise exception.InterfaceDetachFailed(instance_uuid=instance.uuid) from e

    # -- images -----------------------------------------------------------------------
    def _glance_api(self):
        if self._glance is None:
            from nova.image import glance
            self._glance = glance.API()
        return self._glance

    @staticmethod
    def _check_container_format(image_id, container_format):
        if container_format != 'docker':
            raise exception.ImageUnacceptable(
                image_id=image_id,
                reason='its container format is %r; the Docker driver runs only images '
                       'of container format docker' % container_format)

    def _local_image(self, image_id):
        return self.docker.get('/images/%s/json' % quote(TAG_FORMAT % image_id),
                               missing_ok=True)

    def _ensure_image(self, context, image_id):
        """(fetched, image inspect) of the Glance image, tagged glance/<id>:latest."""
        img = self._local_image(image_id)
        if img is not None:
            return False, img
        with lockutils.lock('novadock-image-%s' % image_id):
            img = self._local_image(image_id)
            if img is not None:
                return False, img
            self._fetch(context, image_id)
            return True, self._local_image(image_id)

    def _fetch(self, context, image_id):
        api = self._glance_api()
        meta = api.get(context, image_id)
        self._check_container_format(image_id, meta.get('container_format'))
        props = meta.get('properties') or {}
        want = meta.get('os_hash_value') or props.get('os_hash_value')
        algo = meta.get('os_hash_algo') or props.get('os_hash_algo') or 'sha512'
        if not want:
            raise exception.ImageUnacceptable(
                image_id=image_id, reason='Glance has no os_hash_value for it to verify')
        workdir = os.path.join(CONF.docker.state_dir, 'images')
        os.makedirs(workdir, 0o700, exist_ok=True)
        with tempfile.TemporaryFile(dir=workdir) as raw, \
                tempfile.TemporaryFile(dir=workdir) as tmp:
            sink = tarball.HashingWriter(raw, algo)
            api.download(context, image_id, data=sink)
            got = sink.hash.hexdigest()
            if got != want:
                raise exception.ImageUnacceptable(
                    image_id=image_id,
                    reason='its data has %s %s, Glance says %s' % (algo, got, want))
            # Parsed only once verified.
            raw.seek(0)
            try:
                config = tarball.strip_tags(raw, tmp)
            except tarfile_errors() as e:
                raise exception.ImageUnacceptable(
                    image_id=image_id, reason='not a docker image archive: %s' % e) from e
            length = tmp.tell()
            tmp.seek(0)
            # Loaded only once verified, and without any tag of the tarball's own.
            answer = self.docker.upload('/images/load', tmp, length, {'quiet': 1})
        errs = stream_errors(answer)
        if errs:
            raise exception.ImageUnacceptable(
                image_id=image_id, reason='docker load: %s' % '; '.join(errs))
        if self.docker.get('/images/%s/json' % quote(config), missing_ok=True) is None:
            # dockerd's containerd image store names an image by its manifest digest,
            # which only the load answer tells.
            ids = set(loaded_image_ids(answer))
            if len(ids) != 1:
                raise exception.ImageUnacceptable(
                    image_id=image_id,
                    reason='docker load did not produce image %s (it reports %s)'
                           % (config, sorted(ids) or 'none'))
            config = ids.pop()
        repo, tag = (TAG_FORMAT % image_id).rsplit(':', 1)
        self.docker.call('POST', '/images/%s/tag' % quote(config),
                         {'repo': repo, 'tag': tag, 'force': 1})
        LOG.info('novadock: loaded Glance image %s as %s (%s)', image_id,
                 TAG_FORMAT % image_id, config)

    def cache_image(self, context, image_id):
        fetched, _ = self._ensure_image(context, image_id)
        return fetched

    def snapshot(self, context, instance, image_id, update_task_state):
        update_task_state(task_state=task_states.IMAGE_PENDING_UPLOAD)
        self._inspect_or_raise(instance)
        repo, tag = (TAG_FORMAT % image_id).rsplit(':', 1)
        self.docker.call('POST', '/commit', {'container': self._name(instance),
                                             'repo': repo, 'tag': tag, 'pause': 1})
        update_task_state(task_state=task_states.IMAGE_UPLOADING,
                          expected_state=task_states.IMAGE_PENDING_UPLOAD)
        sysmeta = instance.system_metadata or {}
        skip = {'container_format', 'disk_format', 'min_disk', 'min_ram', 'size',
                'checksum', 'base_image_ref', 'image_location', 'owner_id'}
        properties = {k[len('image_'):]: v for k, v in sysmeta.items()
                      if k.startswith('image_') and k[len('image_'):] not in skip}
        metadata = {'disk_format': 'raw', 'container_format': 'docker',
                    'properties': properties}
        with contextlib.closing(self.docker.stream(
                'GET', '/images/%s/get' % quote(TAG_FORMAT % image_id))) as data:
            self._glance_api().update(context, image_id, metadata, data=data,
                                      purge_props=False)
        LOG.info('novadock: snapshot %s uploaded', image_id, instance=instance)

    # -- refused ----------------------------------------------------------------------
    def migrate_disk_and_power_off(self, context, instance, dest, flavor, network_info,
                                   block_device_info=None, timeout=0, retry_interval=0):
        raise exception.InstanceFaultRollback(inner_exception=exception.NovaException(
            'novadock: resize and cold migration are not supported by the Docker driver'))

    def check_can_live_migrate_destination(self, context, instance, src_compute_info,
                                           dst_compute_info, block_migration=False,
                                           disk_over_commit=False):
        raise exception.MigrationPreCheckError(
            reason='novadock: live migration is not supported by the Docker driver')

    def rescue(self, context, instance, network_info, image_meta, rescue_password,
               *args, **kwargs):
        raise exception.InstanceNotRescuable(
            instance_id=instance.uuid,
            reason='novadock: rescue is not supported by the Docker driver')


def tarfile_errors():
    import tarfile
    return (tarfile.TarError, tarball.TarballError, EOFError)
