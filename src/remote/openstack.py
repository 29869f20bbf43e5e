# After prelude.py, for programs that talk to OpenStack through openstacksdk. The credentials
# come from the environment novadock sets up (an openrc file or OS_CLOUD).


def docker_images(conn, query=""):
    """Glance's images of container format docker, every page (raw API: the SDK cannot filter on
    the container format)."""
    out = []
    url = "/images?container_format=docker&limit=200" + query
    while url:
        r = conn.image.get(url)
        if r.status_code != 200:
            raise RuntimeError("Glance: GET %s: HTTP %d %s" % (url, r.status_code, r.text.strip()[:200]))
        body = r.json()
        out += body.get("images", [])
        url = body.get("next")
        if url and url.startswith("/v2"):
            url = url[3:]
    return out


def hypervisor_types(conn):
    """nova-compute host -> hypervisor type ("docker", "QEMU", "fake"...)."""
    resp = conn.compute.get("/os-hypervisors/detail", microversion="2.53")
    if resp.status_code != 200:
        return {}
    return {h.get("service", {}).get("host") or h["hypervisor_hostname"]: h["hypervisor_type"]
            for h in resp.json()["hypervisors"]}


try:
    import openstack  # noqa: F401 (the program after this file uses it)
except ImportError:
    fail("python3-openstacksdk is not installed on this host")
