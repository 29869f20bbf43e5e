# The read-only probe every OpenStack step of one auth shares (after prelude.py and
# openstack.py). Prints one JSON document; an OpenStack error is its "error", not a failure,
# since a probe never stops the facts run.


def hypervisor_load(conn):
    """nova-compute host -> [hypervisor type, instances on it]. running_vms counts every
    instance the host's resource tracker holds, stopped ones too (gone from microversion 2.88)."""
    resp = conn.compute.get("/os-hypervisors/detail", microversion="2.53")
    if resp.status_code != 200:
        return {}
    return {h.get("service", {}).get("host") or h["hypervisor_hostname"]:
            [h["hypervisor_type"], h.get("running_vms") or 0]
            for h in resp.json()["hypervisors"]}


def facts():
    conn = openstack.connect()
    out = {
        "flavors": [
            {"name": f.name, "id": f.id, "ram": f.ram, "disk": f.disk, "vcpus": f.vcpus,
             "extra_specs": f.extra_specs or {}}
            for f in conn.compute.flavors(details=True, get_extra_specs=True)
        ],
        "aggregates": [
            {"name": a.name, "id": a.id, "hosts": a.hosts or [], "metadata": a.metadata or {}}
            for a in conn.compute.aggregates()
        ],
        "compute_hosts": sorted(
            {s.host: s.state for s in conn.compute.services() if s.binary == "nova-compute"}.items()
        ),
        "docker_images": [{"name": i.get("name"), "id": i["id"], "status": i.get("status"),
                           "hypervisor_type": i.get("hypervisor_type")}
                          for i in docker_images(conn)],
        "hypervisors": hypervisor_load(conn),
    }
    print(json.dumps(out))


try:
    facts()
except SystemExit:
    raise
except Exception as e:
    print(json.dumps({"error": one_line(e)}))
