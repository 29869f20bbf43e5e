# novadock prefetch --source nova: runs on the controller, after prelude.py and openstack.py.
# Prints exactly one JSON document on stdout.
#
# ARGS: aggregate (its name), body (the pre-cache request: {"cache": [{"id": ...}, ...]}),
# send (false: check only, for --dry-run).
#
# Nova's image pre-cache API (microversion 2.81, Ussuri): POST /os-aggregates/{id}/images
# answers 202 and works asynchronously: nova-conductor asks every compute host of the
# aggregate to cache each image (the driver's cache_image).

MICROVERSION = "2.81"
# Nova 26 (Zed) refuses a request of several images at random with "Duplicate images in
# request": it compares the list with list(set(list)), whose order is the hash order of its
# process (fixed in Nova 27 by sorting both). A request of one image always passes.
DUPLICATE_BUG = "Duplicate images in request"


def api_message(resp):
    """Nova's error body is {"<kind>": {"message": ...}}."""
    try:
        inner = list(resp.json().values())[0]
        return str(inner.get("message", inner)).strip()
    except Exception:
        return (resp.text or "").strip()[:300] or "HTTP %d" % resp.status_code


def version(text):
    try:
        major, minor = str(text).split(".")
        return (int(major), int(minor))
    except ValueError:
        return None


def max_version(conn):
    """The newest compute microversion this Nova speaks (GET on its versioned root)."""
    resp = conn.compute.get("/")
    if resp.status_code != 200:
        return None
    return (resp.json().get("version") or {}).get("version")


def post(conn, agg_id, body):
    return conn.compute.post("/os-aggregates/%s/images" % agg_id, json=body,
                             microversion=MICROVERSION)


def main():
    conn = openstack.connect()
    out = {"error": None, "requests": 0, "split": False}  # requests: accepted ones
    aggs = [a for a in conn.compute.aggregates() if a.name == ARGS["aggregate"]]
    if not aggs:
        out["error"] = {"kind": "no_aggregate", "message": ARGS["aggregate"]}
        return out
    agg = aggs[0]
    out["aggregate_id"] = agg.id
    out["hosts"] = sorted(agg.hosts or [])
    have = max_version(conn)
    out["max_version"] = have
    if have is not None and version(have) is not None and version(have) < version(MICROVERSION):
        out["error"] = {"kind": "too_old", "message": have}
        return out
    types = hypervisor_types(conn)
    out["hypervisors"] = {h: types.get(h) for h in out["hosts"]}
    body = ARGS["body"]
    if not ARGS["send"] or not body["cache"] or not out["hosts"]:
        return out
    resp = post(conn, agg.id, body)
    if resp.status_code == 400 and DUPLICATE_BUG in api_message(resp) and len(body["cache"]) > 1:
        out["split"] = True
        for item in body["cache"]:
            resp = post(conn, agg.id, {"cache": [item]})
            if resp.status_code != 202:
                break
            out["requests"] += 1
    elif resp.status_code == 202:
        out["requests"] = 1
    if resp.status_code == 406:
        # Nova refuses a microversion it does not speak with 406 and its range in the message.
        out["error"] = {"kind": "too_old", "message": have or api_message(resp)}
    elif resp.status_code != 202:
        out["error"] = {"kind": "api", "status": resp.status_code, "message": api_message(resp)}
    return out


def run():
    print(json.dumps(main()))


guard(run)
