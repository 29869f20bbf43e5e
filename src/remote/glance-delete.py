# image add: delete the older images of a name (after prelude.py and glance.py). ARGS: ids.
import urllib.error
import urllib.request

for i in ARGS["ids"]:
    req = urllib.request.Request(ARGS["glance"] + "/images/" + i, method="DELETE", headers={"X-Auth-Token": ARGS["token"]})
    try:
        urllib.request.urlopen(req, timeout=120, context=ctx)
    except urllib.error.HTTPError as e:
        if e.code != 404:
            fail("Glance: DELETE /images/%s: HTTP %d" % (i, e.code))
