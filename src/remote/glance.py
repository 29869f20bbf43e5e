# After prelude.py, for programs that talk to Glance's API directly with the token the
# discovery run handed out (ARGS: glance, its v2 endpoint; token; verify, as openstacksdk's:
# false, true or a CA file): plain urllib, no openstacksdk import, no new authentication.
import ssl

ctx = None
if ARGS["verify"] is False:
    ctx = ssl._create_unverified_context()
elif isinstance(ARGS["verify"], str):
    ctx = ssl.create_default_context(cafile=ARGS["verify"])
