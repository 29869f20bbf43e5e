# openstack_flavor: set extra specs of a flavor (after prelude.py and openstack.py). ARGS: id,
# name, properties.


def main():
    conn = openstack.connect()
    f = conn.compute.get_flavor(ARGS["id"])
    for k, v in ARGS["properties"].items():
        conn.compute.update_flavor_extra_specs_property(f, k, v)
    got = conn.compute.fetch_flavor_extra_specs(conn.compute.get_flavor(ARGS["id"])).extra_specs or {}
    missing = {k: v for k, v in ARGS["properties"].items() if got.get(k) != v}
    if missing:
        fail("flavor %s: these properties did not stick: %s" % (ARGS["name"], missing))


guard(main)
