# {% raw %} (bootstrap installs this file verbatim as a template; the tags are Python comments)
"""novadock prefetch, the compute-host side: the only program the prefetch key may run.

bootstrap installs it at /usr/local/lib/novadock/prefetch-host.py and makes it the forced
command of the controller's prefetch key, so that key can do exactly what the job needs and
nothing else. Without a forced command (the operator's own key) novadock sends the same
program with `python3 -c`. The request is one JSON line on stdin; for `load` from Glance the
image tarball follows it. Operations:

  check   print the prefetch records and dockerd's image list
  load    load one Glance image: verified against Glance's hash, no tag from the tarball
          applied, then tagged glance/<glance-id>:latest (and by its name when it is public)
  prune   remove a record (and its image when nothing else uses it)
"""

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import threading
import time

STATE = "/var/lib/novadock/prefetch"
# Glance ids are UUIDs; nothing else may become a file name or a tag.
GLANCE_ID = re.compile(r"^[0-9a-fA-F-]{1,64}$")
DOCKER_ID = re.compile(r"^sha256:[0-9a-f]{64}$")
# docker's reference grammar (distribution/reference), without digests: a name that parses
# here can never be read as an option or reach another registry than the one it names.
_COMP = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?"
REFERENCE = re.compile(r"^(?:%s/)?%s(?:/%s)*(?::[\w][\w.-]{0,127})?$" % (_DOMAIN, _COMP, _COMP))
# Members worth hashing while they stream past: image configs are small, layers are not.
SMALL = 4 << 20
# Names dockerd (or containerd) applies as tags when it loads an OCI index.
REF_ANNOTATIONS = ("org.opencontainers.image.ref.name", "io.containerd.image.name")


# The error convention of src/remote/prelude.py (this file cannot load it: see CONTRIBUTING.md):
# `error: MESSAGE` on stderr, never a traceback. The exit code tells a request this program
# refuses (2) and a host without docker (3) from a failed operation (1).
def fail(msg, code=1):
    sys.stderr.write("error: %s\n" % msg)
    sys.exit(code)


def one_line(e):
    """An exception as `Type: first line of its message` (as the prelude's)."""
    text = str(e).strip()
    return "%s: %s" % (type(e).__name__, text.splitlines()[0] if text else "")


def docker(*args, **kw):
    return subprocess.run(["docker", *args], capture_output=True, text=True, **kw)


def docker_id(ref):
    r = docker("image", "inspect", "--format", "{{.Id}}", "--", ref)
    return r.stdout.strip() if r.returncode == 0 else None


def docker_ref(name):
    """The reference dockerd knows a name by: a bare `repo` means `repo:latest`."""
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last or "@" in name else name + ":latest"


def valid_name(name):
    return len(name) <= 255 and REFERENCE.match(name) is not None and not name.startswith("glance/")


def registry_of(name):
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def glance_ref(gid):
    return "glance/%s:latest" % gid.lower()


# --- check -------------------------------------------------------------------------------

def check(_a):
    if subprocess.run(["sh", "-c", "command -v docker"], capture_output=True).returncode != 0:
        fail("docker is not installed on this host", 3)
    print("ND_RECORDS")
    if os.path.isdir(STATE):
        for f in sorted(os.listdir(STATE)):
            if not f.endswith(".json") or f.startswith("."):
                continue
            try:
                with open(os.path.join(STATE, f), "rb") as fh:
                    print(json.dumps(json.loads(fh.read())))
            except (OSError, ValueError):
                pass  # unreadable: as good as no record, the image gets reloaded
    print("ND_IMAGES")
    sys.stdout.flush()
    r = docker("image", "ls", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}")
    if r.returncode != 0:
        fail("docker image ls failed: %s" % r.stderr.strip())
    sys.stdout.write(r.stdout)


# --- load --------------------------------------------------------------------------------

class Tee:
    """stdin as read by tarfile, hashed with Glance's algorithm on the way."""

    def __init__(self, src, algo):
        self.src, self.h, self.n = src, hashlib.new(algo), 0

    def read(self, k=-1):
        b = self.src.read(k) if k is not None and k >= 0 else self.src.read()
        self.h.update(b)
        self.n += len(b)
        return b


class Sha256Reader:
    def __init__(self, f):
        self.f, self.h = f, hashlib.sha256()

    def read(self, k=-1):
        b = self.f.read(k)
        self.h.update(b)
        return b


def rewrite(tee, tout):
    """Copy the docker save tarball from `tee` to `tout` without what names the image
    (`repositories`, manifest.json and index.json are held back). Returns the held-back files
    and the sha256 of every small regular member, by name."""
    held, digests = {}, {}
    tin = tarfile.open(fileobj=tee, mode="r|")
    for m in tin:
        name = m.name[2:] if m.name.startswith("./") else m.name
        if name == "repositories":
            continue
        if name in ("manifest.json", "index.json"):
            if not m.isfile() or m.size > SMALL:
                raise ValueError("%s is not a small regular file" % name)
            held[name] = tin.extractfile(m).read()
            continue
        if m.isfile():
            f = tin.extractfile(m)
            if m.size <= SMALL:
                f = Sha256Reader(f)
            tout.addfile(m, f)
            if m.size <= SMALL:
                digests[name] = f.h.hexdigest()
        else:
            tout.addfile(m)
    # The rest of the stream (end-of-archive blocks, padding) counts for the hash too.
    while tee.read(1 << 20):
        pass
    return held, digests


def plan_manifest(a, held, digests):
    """The image id (its config's digest, computed here) and the rewritten manifest.json and
    index.json; refuses a tarball that is not one image or is tagged with another name."""
    try:
        manifest = json.loads(held["manifest.json"])
    except KeyError:
        raise ValueError("not a docker save tarball: no manifest.json")
    if not isinstance(manifest, list) or len(manifest) != 1 or not isinstance(manifest[0], dict):
        raise ValueError("the tarball must hold exactly one image")
    entry = manifest[0]
    tags = entry.get("RepoTags") or []
    wanted = docker_ref(a["name"])
    if tags and wanted not in [docker_ref(str(t)) for t in tags]:
        raise ValueError("the tarball is tagged %s, not with its Glance name %s: refused (an image may only carry its own name)"
                         % (", ".join(str(t) for t in tags), a["name"]))
    config = str(entry.get("Config", ""))
    config = config[2:] if config.startswith("./") else config
    if config not in digests:
        raise ValueError("the image's config %s is not in the tarball" % config)
    entry.pop("RepoTags", None)
    files = {"manifest.json": json.dumps(manifest).encode()}
    if "index.json" in held:
        index = json.loads(held["index.json"])
        for d in index.get("manifests") or []:
            ann = d.get("annotations") or {}
            for k in REF_ANNOTATIONS:
                ann.pop(k, None)
        files["index.json"] = json.dumps(index).encode()
    return "sha256:" + digests[config], files


def add_file(tout, name, data):
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime = len(data), 0o644, int(time.time())
    tout.addfile(ti, io.BytesIO(data))


def load_glance(a, src):
    tee = Tee(src, a["algo"])
    p = subprocess.Popen(["docker", "load"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    outs = {}
    # Drained while the tarball goes in, so docker load never blocks on a full pipe.
    drains = [threading.Thread(target=lambda k=k, f=f: outs.__setitem__(k, f.read())) for k, f in (("out", p.stdout), ("err", p.stderr))]
    for t in drains:
        t.start()
    tout = tarfile.open(fileobj=p.stdin, mode="w|", format=tarfile.PAX_FORMAT)
    try:
        held, digests = rewrite(tee, tout)
        if tee.n != a["size"] or tee.h.hexdigest() != a["hash"]:
            raise ValueError("received %d bytes (%s %s), Glance has %d bytes (%s %s): not loaded"
                             % (tee.n, a["algo"], tee.h.hexdigest()[:16], a["size"], a["algo"], a["hash"][:16]))
        iid, files = plan_manifest(a, held, digests)
    except (ValueError, tarfile.TarError, OSError, EOFError) as e:
        # dockerd never sees a manifest: it loads nothing.
        p.kill()
        p.wait()
        tout.fileobj.closed = True  # nothing more goes to the killed docker load
        while tee.read(1 << 20):
            pass
        fail(str(e))
    try:
        for name, data in files.items():
            add_file(tout, name, data)
        tout.close()
        p.stdin.close()
    except OSError:
        pass  # docker load ended early: its exit status and message say why
    rc = p.wait()
    for t in drains:
        t.join()
    if rc != 0:
        fail("docker load failed (exit %d): %s" % (rc, outs.get("err", b"").decode(errors="replace").strip()))
    if docker_id(iid) != iid:
        fail("docker load did not load image %s" % iid)
    return iid, tee.n


def load_registry(a):
    name = a["name"]
    if not valid_name(name):
        fail("%r is not a docker reference: not pulled" % name)
    reg = registry_of(name)
    if reg not in (a.get("registries") or []):
        fail("%s is on registry %s, which is not in prefetch_registries: not pulled" % (name, reg))
    r = docker("pull", "--", name)
    if r.returncode != 0:
        fail("docker pull %s failed (exit %d): %s" % (name, r.returncode, r.stderr.strip()))
    iid = docker_id(docker_ref(name))
    if iid is None:
        fail("%s is not in dockerd after pulling it" % name)
    return iid, 0


def write_record(rec):
    os.makedirs(STATE, mode=0o700, exist_ok=True)
    st = os.lstat(STATE)
    if not os.path.isdir(STATE) or os.path.islink(STATE) or st.st_uid != 0 or st.st_mode & 0o022:
        fail("%s is not a root-owned directory: no record written" % STATE)
    final = os.path.join(STATE, "%s.json" % a_id_safe(rec["glance_id"]))
    tmp = final + ".tmp"
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(rec, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    dfd = os.open(STATE, os.O_RDONLY)
    os.fsync(dfd)
    os.close(dfd)


def a_id_safe(gid):
    if not GLANCE_ID.match(gid):
        fail("%r is not a Glance image id" % gid)
    return gid.lower()


def load(a, src):
    gid = a_id_safe(a["id"])
    if a["source"] == "glance":
        if a["algo"] not in hashlib.algorithms_available:
            fail("unknown hash algorithm %r" % a["algo"])
        iid, n = load_glance(a, src)
    elif a["source"] == "registry":
        if not a.get("public"):
            fail("the registry source serves public images only")
        iid, n = load_registry(a)
    else:
        fail("unknown source %r" % a["source"])
    # Verified: only now does the image get names, and only these.
    ref = glance_ref(gid)
    r = docker("tag", "--", iid, ref)
    if r.returncode != 0:
        fail("docker tag %s %s failed: %s" % (iid, ref, r.stderr.strip()))
    name_ref, warning = None, None
    if a.get("public"):
        if valid_name(a["name"]):
            name_ref = docker_ref(a["name"])
            r = docker("tag", "--", iid, name_ref)
            if r.returncode != 0:
                fail("docker tag %s %s failed: %s" % (iid, name_ref, r.stderr.strip()))
        else:
            warning = "%r is not a docker reference: the image is known as %s only" % (a["name"], ref)
    write_record({"glance_id": gid, "name": a["name"], "ref": ref, "name_ref": name_ref, "algo": a["algo"],
                  "hash": a["hash"], "docker_id": iid, "loaded_at": int(time.time())})
    print(json.dumps({"docker_id": iid, "ref": ref, "bytes": n, "warning": warning}))


# --- prune -------------------------------------------------------------------------------

def prune(a):
    gid = a_id_safe(a["glance_id"])
    did = a["docker_id"]
    if not DOCKER_ID.match(did):
        fail("%r is not a docker image id" % did)
    if a["remove_image"]:
        r = docker("ps", "-a", "-q", "--filter", "ancestor=" + did)
        if r.returncode != 0:
            fail("docker ps failed: %s" % r.stderr.strip())
        if r.stdout.strip():
            print("in-use")
            return
    refs = [glance_ref(gid)]
    if a["remove_image"] and a.get("name_ref") and valid_name(a["name_ref"]):
        refs.append(a["name_ref"])
    for ref in refs:
        # Only names that still point at this image; rmi of a name only removes the image
        # with its last name.
        if docker_id(ref) == did:
            r = docker("rmi", "--", ref)
            if r.returncode != 0:
                fail("docker rmi %s failed: %s" % (ref, r.stderr.strip()))
    try:
        os.unlink(os.path.join(STATE, "%s.json" % gid))
    except FileNotFoundError:
        pass
    print("removed")


def main():
    src = sys.stdin.buffer
    line = src.readline(1 << 16)
    try:
        a = json.loads(line)
        op = a["op"]
    except (ValueError, KeyError, TypeError):
        fail("expected a JSON request on the first line of stdin", 2)
    ops = {"check": check, "load": lambda a: load(a, src), "prune": prune}
    run = ops.get(op) if isinstance(op, str) else None
    if run is None:
        fail("unknown operation %r" % op, 2)
    try:
        run(a)
    except SystemExit:
        raise
    except Exception as e:
        fail(one_line(e))


if __name__ == "__main__":
    main()
# {% endraw %}
