# openstack_flavor: create a flavor (after prelude.py and openstack.py). ARGS: name, ram, disk,
# vcpus, properties, replace_id (a flavor deleted first, or null).


def main():
    conn = openstack.connect()
    if ARGS["replace_id"]:
        conn.compute.delete_flavor(ARGS["replace_id"], ignore_missing=True)
    f = conn.compute.create_flavor(name=ARGS["name"], ram=ARGS["ram"], disk=ARGS["disk"], vcpus=ARGS["vcpus"])
    if ARGS["properties"]:
        conn.compute.create_flavor_extra_specs(f, ARGS["properties"])
    # `openstack flavor create --property` can log an error and still exit 0: read back.
    got = conn.compute.fetch_flavor_extra_specs(conn.compute.get_flavor(f.id)).extra_specs or {}
    missing = {k: v for k, v in ARGS["properties"].items() if got.get(k) != v}
    if missing:
        fail("flavor %s was created but these properties did not stick: %s" % (ARGS["name"], missing))


guard(main)
