# bootstrap.yml (the bundled driver): exit 0 when every .py under argv[1] has a byte-compiled
# copy newer than itself. Runs alone, with nova-compute's Python (no prelude: a playbook's
# command passes the directory, as `{{ remote_py.pyc_current }}`).
import importlib.util
import os
import sys


def stale(p):
    c = importlib.util.cache_from_source(p)
    return not os.path.exists(c) or os.path.getmtime(c) < os.path.getmtime(p)


srcs = [os.path.join(r, f) for r, _, fs in os.walk(sys.argv[1]) for f in fs if f.endswith(".py")]
sys.exit(1 if not srcs or any(stale(p) for p in srcs) else 0)
