"""The benchmark job for pyinfra: the same four edits and handler as ../novadock/playbook.yml.

pyinfra has no INI operation. `files.line` appends a line it does not find at the end of the
file, i.e. into the last section ([zvm] in nova.conf, where Nova ignores it), so a careful
operator anchors the regex on the option's (commented) sample line, which only occurs once in
each file, and replaces it -- the same end state as Ansible's ini_file.
"""

from pathlib import Path

from pyinfra.operations import files, server
from pyinfra.operations.util import any_changed

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

glance = files.line(
    name="Glance accepts the docker container format",
    path="/etc/bench/glance/glance-api.conf",
    line=r"^#?container_formats =",
    replace="container_formats = ami,ari,aki,bare,ovf,ova,docker,compressed",
    extended_regex=True,
)

nova = files.line(
    name="Nova's scheduler runs AggregateInstanceExtraSpecsFilter",
    path="/etc/bench/nova/nova.conf",
    line=r"^#?enabled_filters =",
    replace="enabled_filters = ComputeFilter,ComputeCapabilitiesFilter,ImagePropertiesFilter,"
    "ServerGroupAntiAffinityFilter,ServerGroupAffinityFilter,AggregateInstanceExtraSpecsFilter",
    extended_regex=True,
)

filters = files.template(
    name="Rootwrap filters for the Docker driver",
    src=str(TEMPLATES / "docker.filters.j2"),
    dest="/etc/bench/nova/rootwrap.d/docker.filters",
    mode="644",
)

unit = files.template(
    name="Dummy systemd unit",
    src=str(TEMPLATES / "nova-docker-dummy.service.j2"),
    dest="/etc/systemd/system/nova-docker-dummy.service",
    mode="644",
)

# No systemd on the hosts: a command handler, as in novadock and Ansible.
server.shell(
    name="restart nova-docker-dummy",
    commands=["echo restart nova-docker-dummy >> /var/log/nova-docker-dummy.restarts"],
    _if=any_changed(glance, nova, filters, unit),
)
