# novadock boot-time: runs on the controller, after prelude.py and openstack.py. Prints exactly
# one JSON document on stdout.
#
# ARGS: mode ("boot", "resolve" or "sweep"), prefix, first (number of the first server),
# flavor, image, network (optional: a port on it; none without), count, concurrency, host,
# delete_each, active_timeout, pidfile, abort.
#
# Every server it creates is named ARGS["prefix"] + a number, and whatever happens (an error,
# a server in ERROR, SIGTERM from `novadock` on Ctrl-C, SIGHUP, the run's own timeout), the
# `finally` deletes every server of that prefix and waits until Nova has forgotten them.
import calendar
import os
import re
import signal
import stat
import threading
import time
from urllib.parse import quote

# 2.37: `networks: "none"`; 2.74: `host` in the create request (the scheduler still checks
# it, unlike the `nova:HOST` availability zone trick, which bypasses the filters).
MICROVERSION = "2.74"
# The status poll asks for no field newer than 2.1 (status, host, created, launched_at, fault),
# and 2.1 spares nova-api the later additions (host_status's service lookup, tags...): a
# GET /servers/ID took 38 ms at 2.1 and 51 ms at 2.74 in the lab (medians of 15, under load).
POLL_MICROVERSION = "2.1"
POLL = 0.05  # seconds between status polls: with the poll's own duration, the wall clock's resolution
# The frequent poll is the plain list (GET /servers?status=ACTIVE&name=OURS): nova-api answers
# it from its database. A server's own GET (and the detailed list) also asks Neutron for its
# ports and security groups: polled every 50 ms, that loaded the Neutron server that the boots
# themselves wait for (a port's POST took 0.9 s beside it). A server seen ACTIVE is then read
# once in full; every FULL_EVERY rounds the waiting ones are, to see ERROR, a vanished server or
# a timeout.
FULL_EVERY = 20
# Up to this many servers waiting are read with one GET /servers/ID each in a full round; more,
# with one detailed list of all of ours (it grows with every server of the run, done or not).
FEW = 3


class Failed(Exception):
    def __init__(self, kind, message):
        Exception.__init__(self, message)
        self.kind = kind
        self.message = message


class Interrupted(Exception):
    pass


def on_signal(signum, _frame):
    raise Interrupted("interrupted by signal %d" % signum)


def private_file(path):
    """Creates `path` (0600) in the run's directory, which novadock made with mktemp -d: a
    new file, never through a symlink, and only in a directory of this user alone (issue 14,
    finding 15). The directory goes away at the end of the run: a late start stops here."""
    d = os.path.dirname(path)
    st = os.lstat(d)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise RuntimeError("%s is not a private directory of this user" % d)
    try:
        os.unlink(path)  # a run killed before its `finally` (only this user can write here)
    except FileNotFoundError:
        pass
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)


def aborted():
    """novadock's clean-up after Ctrl-C creates this file before it signals the pid in the
    pidfile: a run that starts late, or misses the signal, creates nothing more."""
    return bool(ARGS.get("abort")) and os.path.exists(ARGS["abort"])


def ts(text):
    """Nova's timestamps ("2026-11-30T09:10:48Z", "2026-11-30T09:10:49.000000"), all UTC."""
    if not text:
        return None
    text = text.replace(" ", "T")
    whole = calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S"))
    frac = re.match(r"\.(\d+)", text[19:])
    return whole + (float("0." + frac.group(1)) if frac else 0.0)


def api_message(resp):
    """Nova's error body is {"<kind>": {"message": ...}}."""
    try:
        body = resp.json()
        inner = list(body.values())[0]
        return str(inner.get("message", inner)).strip()
    except Exception:
        return (resp.text or "").strip()[:300] or "HTTP %d" % resp.status_code


class Run:
    def __init__(self, conn):
        self.conn = conn
        self.nova = conn.compute
        self.prefix = ARGS["prefix"]
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.servers = {}  # id -> record
        self.done = {}  # id -> threading.Event
        self.error = None
        self.workers = []
        self.network_id = None  # a port on this network for each server; none without

    def get(self, url, microversion=MICROVERSION):
        return self.nova.get(url, microversion=microversion)

    def ours(self):
        """Every server named with our prefix, in any state."""
        name = quote("^" + re.escape(self.prefix))
        resp = self.get("/servers/detail?name=%s" % name)
        if resp.status_code != 200:
            raise Failed("api", "listing servers: " + api_message(resp))
        return [s for s in resp.json()["servers"] if s["name"].startswith(self.prefix)]

    def fail(self, kind, message):
        with self.lock:
            if self.error is None:
                self.error = Failed(kind, message)
        self.stop.set()

    def create(self, i, flavor_id, image_id):
        networks = [{"uuid": self.network_id}] if self.network_id else "none"
        body = {"server": {"name": "%s%02d" % (self.prefix, i), "flavorRef": flavor_id,
                           "imageRef": image_id, "networks": networks}}
        if ARGS.get("host"):
            body["server"]["host"] = ARGS["host"]
        t0 = time.time()
        resp = self.nova.post("/servers", json=body, microversion=MICROVERSION)
        if resp.status_code not in (200, 202):
            msg = api_message(resp)
            kind = "quota" if resp.status_code == 403 and "uota" in msg else "api"
            raise Failed(kind, "creating a server: %s" % msg)
        sid = resp.json()["server"]["id"]
        rec = {"name": body["server"]["name"], "id": sid, "requested_at": t0}
        ev = threading.Event()
        with self.lock:
            self.servers[sid] = rec
            self.done[sid] = ev
        return sid, ev

    def worker(self, queue, flavor_id, image_id):
        try:
            while not self.stop.is_set():
                with self.lock:
                    if not queue:
                        return
                    i = queue.pop(0)
                if aborted():
                    return self.fail("interrupted", "the run was aborted (novadock was interrupted)")
                sid, ev = self.create(i, flavor_id, image_id)
                while not ev.wait(0.2):
                    if self.stop.is_set():
                        return
                if ARGS.get("delete_each") and not self.stop.is_set():
                    self.delete_and_wait([sid], 300)
        except Failed as e:
            self.fail(e.kind, e.message)
        except Exception as e:
            self.fail("api", one_line(e))

    def pending(self):
        with self.lock:
            return [sid for sid, ev in self.done.items() if not ev.is_set()]

    def our_ids(self, query=""):
        """Ids of our servers (`query`: more filters, e.g. "status=ACTIVE&"), from the plain
        list: nova-api answers it from its database, without asking Neutron."""
        name = quote("^" + re.escape(self.prefix))
        resp = self.get("/servers?%sname=%s" % (query, name), POLL_MICROVERSION)
        if resp.status_code != 200:
            raise Failed("api", "listing servers: " + api_message(resp))
        return {s["id"] for s in resp.json()["servers"]}

    def poll(self, full):
        """One round: the cheapest requests that show every waiting server's status."""
        pending = self.pending()
        if not pending:
            return
        if not full:
            active = self.our_ids("status=ACTIVE&")
            active = [sid for sid in pending if sid in active]
            now = time.time()
            for sid in active:
                resp = self.get("/servers/%s" % sid, POLL_MICROVERSION)
                if resp.status_code != 200:
                    raise Failed("api", "showing server %s: %s" % (sid, api_message(resp)))
                self.seen([resp.json()["server"]], now)
            return
        if len(pending) <= FEW:
            for sid in pending:
                resp = self.get("/servers/%s" % sid, POLL_MICROVERSION)
                if resp.status_code == 404:
                    with self.lock:
                        name = self.servers[sid]["name"]
                    self.fail("server_error", "server %s vanished before it was ACTIVE" % name)
                    self.done[sid].set()
                    continue
                if resp.status_code != 200:
                    raise Failed("api", "showing server %s: %s" % (sid, api_message(resp)))
                self.seen([resp.json()["server"]], time.time())
        else:
            servers = self.ours()
            self.seen(servers, time.time())

    def seen(self, servers, now):
        """Records the servers of a poll answered at `now` that reached ACTIVE or ERROR."""
        for s in servers:
            with self.lock:
                rec = self.servers.get(s["id"])
                ev = self.done.get(s["id"])
            if rec is None or ev.is_set():
                continue
            status = s["status"]
            if status == "ACTIVE" or status == "ERROR":
                rec.update({
                    "status": status,
                    "active_at": now if status == "ACTIVE" else None,
                    "host": s.get("OS-EXT-SRV-ATTR:host"),
                    "created": ts(s.get("created")),
                    "launched_at": ts(s.get("OS-SRV-USG:launched_at")),
                })
                if status == "ERROR":
                    fault = self.fault(s)
                    kind = ("no_valid_host" if "No valid host" in fault else
                            "quota" if "uota" in fault else "server_error")
                    self.fail(kind, "server %s is ERROR: %s" % (s["name"], fault.strip()))
                ev.set()
            elif now - rec["requested_at"] > ARGS["active_timeout"]:
                self.fail("timeout", "server %s still %s after %d s (task state %s)" % (
                    s["name"], status, ARGS["active_timeout"], s.get("OS-EXT-STS:task_state")))
                ev.set()

    def fault(self, server):
        """Nova's reason for an ERROR. It records the fault just after the state, so a poll
        can see ERROR before the fault exists: ask again for a few seconds."""
        for _ in range(20):
            message = (server.get("fault") or {}).get("message", "")
            if message:
                return message.strip()
            time.sleep(0.25)
            resp = self.get("/servers/%s" % server["id"])
            if resp.status_code != 200:
                break
            server = resp.json()["server"]
        return "Nova gave no reason"

    def boot(self, flavor_id, image_id):
        first = ARGS.get("first", 1)
        queue = list(range(first, first + ARGS["count"]))
        workers = [threading.Thread(target=self.worker, args=(queue, flavor_id, image_id),
                                    daemon=True)
                   for _ in range(min(ARGS["concurrency"], ARGS["count"]))]
        self.workers = workers
        for w in workers:
            w.start()
        rounds = 0
        while any(w.is_alive() for w in workers) and not self.stop.is_set():
            time.sleep(POLL)
            rounds += 1
            self.poll(full=rounds % FULL_EVERY == 0)
        self.stop.set()
        for w in workers:
            w.join(60)

    def delete_and_wait(self, ids, timeout):
        for sid in ids:
            resp = self.nova.delete("/servers/%s" % sid, microversion=MICROVERSION)
            if resp.status_code not in (204, 404):
                raise Failed("api", "deleting server %s: %s" % (sid, api_message(resp)))
        deadline = time.time() + timeout
        left = list(ids)
        while left and time.time() < deadline:
            time.sleep(0.2)
            # The plain list of ours, not a GET per server (each asks Neutron too).
            there = self.our_ids()
            left = [sid for sid in left if sid in there]
        if left:
            raise Failed("cleanup", "servers not gone %d s after delete: %s" % (
                timeout, ", ".join(left)))

    def sweep(self):
        """Delete everything with our prefix; returns the names still there after 300 s."""
        deadline = time.time() + 300
        asked = set()
        while time.time() < deadline:
            left = self.ours()
            if not left:
                return []
            for s in left:
                if s["id"] not in asked and s.get("OS-EXT-STS:task_state") != "deleting":
                    self.nova.delete("/servers/%s" % s["id"], microversion=MICROVERSION)
                    asked.add(s["id"])
            time.sleep(0.5)
        return sorted(s["name"] for s in self.ours())


def find_image(conn, ref):
    """By id, else by exact name. Docker image names hold a colon, which Glance's `name`
    filter reads as an operator, so the name goes through the `in:"..."` operator."""
    if re.fullmatch(r"[0-9a-fA-F-]{36}", ref):
        image = conn.image.find_image(ref, ignore_missing=True)
        if image is not None:
            return image
    found = [i for i in conn.image.images(name='in:"%s"' % ref.replace('"', ''))
             if i.name == ref]
    if len(found) > 1:
        raise Failed("unknown_image", "%d images are named `%s`: give its id (%s)" % (
            len(found), ref, ", ".join(i.id for i in found)))
    return found[0] if found else None


def resolve(conn):
    flavor = conn.compute.find_flavor(ARGS["flavor"], ignore_missing=True)
    if flavor is None:
        names = sorted(f.name for f in conn.compute.flavors())
        raise Failed("unknown_flavor", "unknown flavor `%s` (flavors: %s)" % (
            ARGS["flavor"], ", ".join(names) or "none"))
    image = find_image(conn, ARGS["image"])
    if image is None:
        names = sorted(i.name or i.id for i in conn.image.images())
        shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
        raise Failed("unknown_image", "unknown image `%s` (images: %s)" % (
            ARGS["image"], shown or "none"))
    if image.status != "active":
        raise Failed("unknown_image", "image `%s` is %s, not active" % (image.name, image.status))
    network = None
    if ARGS.get("network"):
        network = conn.network.find_network(ARGS["network"], ignore_missing=True)
        if network is None:
            names = sorted(n.name or n.id for n in conn.network.networks())
            raise Failed("unknown_network", "unknown network `%s` (networks: %s)" % (
                ARGS["network"], ", ".join(names) or "none"))
    return flavor, image, network


def main():
    out = {"servers": [], "left_behind": [], "error": None}
    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(s, on_signal)
    conn = openstack.connect()
    run = Run(conn)
    pidfile = ARGS.get("pidfile")
    try:
        if ARGS["mode"] == "sweep":
            return out
        flavor, image, network = resolve(conn)
        out["flavor"] = {"id": flavor.id, "name": flavor.name}
        if network is not None:
            out["network"] = {"id": network.id, "name": network.name}
            run.network_id = network.id
        out["image"] = {"id": image.id, "name": image.name, "size": image.size,
                        "container_format": image.container_format}
        if ARGS["mode"] == "resolve":
            return out
        if pidfile:
            # "pid starttime": whoever signals us can tell us from a recycled pid.
            with open("/proc/self/stat") as f:
                start = f.read().rsplit(")", 1)[1].split()[19]
            with os.fdopen(private_file(pidfile), "w") as f:
                f.write("%d %s\n" % (os.getpid(), start))
        if aborted():
            raise Interrupted("the run was aborted (novadock was interrupted)")
        run.boot(flavor.id, image.id)
        if run.error:
            raise run.error
        types = hypervisor_types(conn)
        for rec in sorted(run.servers.values(), key=lambda r: r["name"]):
            rec["hypervisor_type"] = types.get(rec.get("host"))
            out["servers"].append(rec)
        return out
    except Failed as e:
        out["error"] = {"kind": e.kind, "message": e.message}
    except Interrupted as e:
        out["error"] = {"kind": "interrupted", "message": str(e)}
    except Exception as e:
        out["error"] = {"kind": "api", "message": one_line(e)}
    finally:
        # A second signal must not cut the clean-up short.
        for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(s, signal.SIG_IGN)
        run.stop.set()
        # An in-flight create must land before the sweep lists what to delete.
        for w in run.workers:
            w.join(120)
        try:
            out["left_behind"] = run.sweep()
        except Exception as e:
            out["sweep_error"] = one_line(e)
        if pidfile:
            try:
                os.unlink(pidfile)
            except OSError:
                pass
    return out


def emit():
    try:
        out = main()
    except Exception as e:
        # Only before anything was created (connecting, authenticating).
        out = {"servers": [], "left_behind": [], "error": {"kind": "api", "message": one_line(e)}}
    print(json.dumps(out))


emit()
