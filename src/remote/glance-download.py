# prefetch: stream one image's data from Glance to stdout (after prelude.py and glance.py).
# ARGS: id.
import shutil
import urllib.request

url = "%s/images/%s/file" % (ARGS["glance"], ARGS["id"])
req = urllib.request.Request(url, headers={"X-Auth-Token": ARGS["token"]})
try:
    r = urllib.request.urlopen(req, timeout=60, context=ctx)
except Exception as e:
    fail("GET %s: %s" % (url, e))
shutil.copyfileobj(r, sys.stdout.buffer, 1 << 20)
sys.stdout.buffer.flush()
