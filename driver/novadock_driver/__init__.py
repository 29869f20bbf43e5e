"""novadock's Nova compute driver: Docker containers as Nova instances.

Nova loads compute drivers only from ``nova.virt``; novadock writes the shim
``nova/virt/novadocker.py`` that re-exports :class:`novadock_driver.driver.DockerDriver`,
so ``[DEFAULT] compute_driver = novadocker.DockerDriver``.
"""

# The placement trait every Docker compute node carries (docs/driver.md).
TRAIT = 'CUSTOM_NOVADOCK_DOCKER'
# Docker tag of a Glance image, shared with `novadock prefetch`.
TAG_FORMAT = 'glance/%s:latest'
