# openstack_aggregate: create or change a host aggregate (after prelude.py and openstack.py).
# ARGS: id (null: create one named name), name, metadata, add, remove (host names).


def main():
    conn = openstack.connect()
    agg = None
    if ARGS["id"] is None:
        # No availability zone: the filter needs none, and Nova >= 30 refuses to move a host
        # with instances into another AZ.
        agg = conn.compute.create_aggregate(name=ARGS["name"])
    else:
        agg = conn.compute.get_aggregate(ARGS["id"])
    if ARGS["metadata"]:
        conn.compute.set_aggregate_metadata(agg, ARGS["metadata"])
    for h in ARGS["add"]:
        conn.compute.add_host_to_aggregate(agg, h)
    for h in ARGS["remove"]:
        conn.compute.remove_host_from_aggregate(agg, h)


guard(main)
