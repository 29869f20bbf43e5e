# prefetch and image add: one API session on the controller (after prelude.py and
# openstack.py): the docker images (server-side filter), the aggregate's live members, and a
# token for the Glance transfers that follow. ARGS: aggregate (its name).


def main():
    conn = openstack.connect()
    images = [{k: i.get(k) for k in ("id", "name", "size", "checksum", "os_hash_algo", "os_hash_value",
                                       "visibility", "owner")}
              for i in docker_images(conn, "&status=active")]
    agg = [a for a in conn.compute.aggregates() if a.name == ARGS["aggregate"]]
    services = {s.host: s.state for s in conn.compute.services() if s.binary == "nova-compute"}
    glance = conn.image.get_endpoint().rstrip("/")
    if not glance.endswith("/v2"):
        glance += "/v2"
    print(json.dumps({"images": images, "aggregate": (agg[0].hosts or []) if agg else None,
                      "services": services, "glance": glance, "token": conn.auth_token,
                      "verify": conn.session.verify}))


guard(main)
