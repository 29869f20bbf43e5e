# LAB FIXTURE of the novadock lab (tests/lab), not a production driver.
# Nova (since Newton) loads compute drivers only from nova.virt.*, so this
# package is installed as nova/virt/dockerlab and selected with
#   [DEFAULT] compute_driver = dockerlab.DockerDriver
from nova.virt.dockerlab.driver import DockerDriver  # noqa: F401

__all__ = ['DockerDriver']
