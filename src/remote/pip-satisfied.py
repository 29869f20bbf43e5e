# bootstrap.yml (driver from pip or git): reads pip's dry-run report on stdin, exits 0 when what
# it would install is installed already (same name and version; for git, the same commit): pip
# itself always reinstalls a local directory or a git URL. Runs alone, with nova-compute's
# Python (no prelude: its stdin is pip's report), as `{{ remote_py.pip_satisfied }}`.
import importlib.metadata as md
import json
import sys


def ok(i):
    meta = i["metadata"]
    try:
        d = md.distribution(meta["name"])
    except md.PackageNotFoundError:
        return False
    want = ((i.get("download_info") or {}).get("vcs_info") or {}).get("commit_id")
    if want:
        have = (json.loads(d.read_text("direct_url.json") or "{}").get("vcs_info") or {}).get("commit_id")
        return d.version == meta["version"] and have == want
    return d.version == meta["version"]


sys.exit(0 if all(ok(i) for i in json.load(sys.stdin)["install"]) else 1)
