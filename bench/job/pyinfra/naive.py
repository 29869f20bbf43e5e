"""Not timed: the plain `files.line` an operator might write first (bench/run's end-state
probe). The line is not in the file, so pyinfra appends it at the end of nova.conf, i.e. into
the last section, [zvm], where Nova ignores it."""

from pyinfra.operations import files

files.line(
    name="enabled_filters, the plain way",
    path="/etc/bench/nova/nova.conf",
    line="enabled_filters = ComputeFilter,ComputeCapabilitiesFilter,ImagePropertiesFilter,"
    "ServerGroupAntiAffinityFilter,ServerGroupAffinityFilter,AggregateInstanceExtraSpecsFilter",
)
