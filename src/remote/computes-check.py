# nova_computes (after prelude.py and openstack.py): wait until every host's nova-compute is up
# and its hypervisor reports the type wanted; else fail naming each host and what it found.
# ARGS: hosts (nova-compute service hosts), hypervisor_type, timeout (seconds).
# (src/steps/nova_computes.rs `found` words the same cases for the plan.)
import time


def found(states, types, host, want):
    if host not in states:
        return "no nova-compute service"
    if states[host] != "up":
        return "nova-compute is %s" % states[host]
    if host not in types:
        return "nova-compute is up, no hypervisor reported (is the host mapped to a cell?)"
    if types[host].lower() != want.lower():
        return "nova-compute is up, hypervisor type `%s`" % types[host]
    return None


def main():
    conn = openstack.connect()
    want = ARGS["hypervisor_type"]
    deadline = time.monotonic() + ARGS["timeout"]
    while True:
        states = {s.host: s.state for s in conn.compute.services() if s.binary == "nova-compute"}
        types = hypervisor_types(conn)
        wrong = [(h, found(states, types, h, want)) for h in ARGS["hosts"]]
        wrong = [(h, f) for h, f in wrong if f]
        if not wrong:
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(5)
    fail("nova-compute does not run with hypervisor type `%s` after %d s: %s\n"
         "hint: on that host, check that nova-compute reads the file compute_driver was written to "
         "(nova_compute_conf; Debian: `/etc/init.d/nova-compute show-args`, else `systemctl cat nova-compute`) "
         "and its log (`journalctl -u nova-compute`)"
         % (want, ARGS["timeout"], "; ".join("%s: %s" % hf for hf in wrong)))


guard(main)
