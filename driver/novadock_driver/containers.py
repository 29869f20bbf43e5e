"""Container settings from a Nova instance, flavor and image: pure data."""

PRIVILEGED_SPEC = 'novadock:privileged'
CPU_PERIOD = 100000
LABEL = 'novadock.instance'
NAME_LABEL = 'novadock.name'


class ContainerError(Exception):
    pass


def container_name(uuid):
    return 'nova-%s' % uuid


def _truthy(value):
    return str(value).strip().lower() in ('true', '1', 'yes', 'on')


def host_config(flavor, extra_specs, disk_quota=False, resolv_conf=None):
    """HostConfig for a flavor: memory = RAM, CPU quota = vCPUs (shares scale too)."""
    vcpus = int(flavor['vcpus'])
    memory_mb = int(flavor['memory_mb'])
    hc = {
        'NetworkMode': 'none',
        'Memory': memory_mb * 1024 * 1024,
        # Same as Memory: no swap beyond the flavor's RAM.
        'MemorySwap': memory_mb * 1024 * 1024,
        'CpuPeriod': CPU_PERIOD,
        'CpuQuota': vcpus * CPU_PERIOD,
        'CpuShares': 1024 * vcpus,
        # dockerd's default seccomp and AppArmor profiles apply as long as nothing here
        # overrides them; a setuid binary cannot gain privileges.
        'SecurityOpt': ['no-new-privileges=true'],
        'Privileged': False,
        'RestartPolicy': {'Name': 'no'},
        'Binds': [],
    }
    spec = (extra_specs or {}).get(PRIVILEGED_SPEC)
    if spec is not None:
        if str(spec).strip().lower() not in ('true', 'false', '1', '0', 'yes', 'no', 'on', 'off'):
            raise ContainerError('flavor extra spec %s=%r is not a boolean'
                                 % (PRIVILEGED_SPEC, spec))
        hc['Privileged'] = _truthy(spec)
    root_gb = int(flavor.get('root_gb') or 0)
    if disk_quota and root_gb > 0:
        hc['StorageOpt'] = {'size': '%dG' % root_gb}
    if resolv_conf:
        hc['Binds'].append('%s:/etc/resolv.conf:ro' % resolv_conf)
    return hc


def environment(metadata):
    """Instance metadata as environment variables, as nova-docker passed it."""
    env = []
    for k, v in sorted((metadata or {}).items()):
        k = str(k)
        if not k or '=' in k or '\0' in k or '\0' in str(v):
            raise ContainerError('metadata key %r cannot be an environment variable' % k)
        env.append('%s=%s' % (k, v))
    return env


def command(image_config, os_command_line):
    """The command to run: the image property os_command_line, else the image's own."""
    if os_command_line:
        import shlex
        try:
            return shlex.split(os_command_line)
        except ValueError as e:
            raise ContainerError('image property os_command_line %r: %s'
                                 % (os_command_line, e)) from e
    cfg = image_config or {}
    if not (cfg.get('Cmd') or cfg.get('Entrypoint')):
        raise ContainerError('the image has no command (neither CMD nor ENTRYPOINT) and '
                             'no os_command_line property: nothing to run')
    return None


def create_body(instance, image_ref, cmd, env, hc):
    body = {
        'Image': image_ref,
        'Hostname': instance['hostname'] or None,
        'Env': env,
        'Labels': {LABEL: instance['uuid'], NAME_LABEL: instance['name']},
        'NetworkDisabled': False,
        'HostConfig': hc,
    }
    if cmd:
        body['Cmd'] = cmd
    return {k: v for k, v in body.items() if v is not None}


def power_state_of(state, suspended=False):
    """Nova power state constant name for a container's State."""
    if not state:
        return 'NOSTATE'
    if state.get('Paused'):
        return 'SUSPENDED' if suspended else 'PAUSED'
    if state.get('Running'):
        return 'RUNNING'
    if state.get('Dead') or state.get('OOMKilled'):
        return 'CRASHED'
    return 'SHUTDOWN'
