# image add (after prelude.py and glance.py): create the image, stream its data from stdin,
# check Glance's own checksum, print the image as JSON. An upload that fails leaves no image
# behind. ARGS: name, size, sha512, public.
import urllib.error
import urllib.request


class Refused(Exception):
    """Glance answered with an HTTP error."""


def call(method, path, body=None, headers=None):
    h = {"X-Auth-Token": ARGS["token"]}
    h.update(headers or {})
    req = urllib.request.Request(ARGS["glance"] + path, data=body, method=method, headers=h)
    try:
        r = urllib.request.urlopen(req, timeout=600, context=ctx)
        return r.read()
    except urllib.error.HTTPError as e:
        raise Refused("Glance: %s %s: HTTP %d %s" % (method, path, e.code, e.read().decode(errors="replace").strip()[:300]))


def upload(img):
    # 1 MiB blocks: http.client reads a file body 8 KiB at a time.
    src = sys.stdin.buffer
    call("PUT", "/images/%s/file" % img["id"], iter(lambda: src.read(1 << 20), b""),
         {"Content-Type": "application/octet-stream", "Content-Length": str(ARGS["size"])})
    img = json.loads(call("GET", "/images/%s" % img["id"]))
    if img.get("status") != "active" or img.get("os_hash_value") != ARGS["sha512"] or img.get("size") != ARGS["size"]:
        raise Refused("Glance stored %s bytes with sha512 %s (status %s); sent %d bytes with sha512 %s" % (img.get("size"), img.get("os_hash_value"), img.get("status"), ARGS["size"], ARGS["sha512"]))
    return img


def main():
    # hypervisor_type: ImagePropertiesFilter keeps the image off hosts of other hypervisors (KVM).
    meta = {"name": ARGS["name"], "container_format": "docker", "disk_format": "raw",
            "hypervisor_type": "docker",
            "visibility": "public" if ARGS["public"] else "shared"}
    try:
        img = json.loads(call("POST", "/images", json.dumps(meta).encode(), {"Content-Type": "application/json"}))
    except Refused as e:
        fail(e)
    try:
        img = upload(img)
    except BaseException as e:
        try:
            call("DELETE", "/images/%s" % img["id"])
        except BaseException:
            pass
        fail(e if isinstance(e, Refused) else "%s: %s" % (type(e).__name__, e))
    print(json.dumps({"id": img["id"]}))


guard(main)
