# The start of every Python program novadock runs on a host (src/remote.rs puts it before the
# program and runs the whole with `python3 -c`). One calling convention: the values come as one
# JSON line on stdin, read here into ARGS; whatever follows that line (an image's bytes) is
# left in sys.stdin.buffer. One error convention: `error: MESSAGE` on stderr and exit 1, never
# a traceback (novadock shows MESSAGE).
import json
import sys


def fail(msg):
    sys.stderr.write("error: %s\n" % msg)
    sys.exit(1)


def one_line(e):
    """An exception as `Type: first line of its message`."""
    text = str(e).strip()
    return "%s: %s" % (type(e).__name__, text.splitlines()[0] if text else "")


def guard(fn):
    """Run fn; any exception becomes fail()."""
    try:
        fn()
    except SystemExit:
        raise
    except Exception as e:
        fail(one_line(e))


# The binary buffer, not sys.stdin: a text reader would read ahead into the data.
ARGS = json.loads(sys.stdin.buffer.readline() or b"{}")
