"""The driver's ``[docker]`` options in nova.conf."""

from oslo_config import cfg

GROUP = 'docker'

OPTS = [
    cfg.StrOpt('api_socket', default='/var/run/docker.sock',
               help="dockerd's API unix socket. nova-compute's user must be able to "
                    "connect to it (group docker)."),
    cfg.IntOpt('api_timeout', default=300, min=1,
               help='Seconds one dockerd API call may take (image load and commit '
                    'included).'),
    cfg.IntOpt('stop_timeout', default=10, min=0,
               help='Seconds dockerd waits after SIGTERM before SIGKILL on a soft '
                    'reboot (a stop uses the timeout Nova asks for; delete kills at '
                    'once, as libvirt does).'),
    cfg.StrOpt('state_dir', default='$state_path/novadock',
               help="Per-instance files (resolv.conf) and image downloads; owned "
                    "by nova-compute's user."),
    cfg.IntOpt('console_max_bytes', default=102400, min=1024,
               help='At most this many bytes of the end of the container log are '
                    'returned as console output.'),
    cfg.BoolOpt('disk_quota', default=False,
                help="Limit the container's writable layer to the flavor's root "
                     "disk (HostConfig.StorageOpt size). Only storage drivers that "
                     "support it (overlay2 on xfs with pquota, btrfs, zfs) accept "
                     "it; elsewhere container creation fails."),
]


def register(conf=cfg.CONF):
    conf.register_opts(OPTS, group=GROUP)


def list_opts():
    return [(GROUP, OPTS)]
