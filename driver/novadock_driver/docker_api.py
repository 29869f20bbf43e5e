"""dockerd's HTTP API over its unix socket: no docker CLI process per call."""

import http.client
import json
import socket
import struct
import urllib.parse


class DockerError(Exception):
    """A dockerd API call failed; `status` is the HTTP status (0: no answer)."""

    def __init__(self, what, status, message):
        super().__init__('dockerd: %s: %s%s' % (
            what, ('HTTP %d: ' % status) if status else '', message))
        self.status = status


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__('localhost', timeout=timeout)
        self._path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def quote(ref):
    """A container/image reference as one URL path segment."""
    return urllib.parse.quote(ref, safe='')


class Client:
    def __init__(self, socket_path, timeout=300):
        self.socket_path = socket_path
        self.timeout = timeout

    def _open(self, method, path, query=None, body=None, headers=None):
        if query:
            path += '?' + urllib.parse.urlencode(query)
        conn = _UnixConnection(self.socket_path, self.timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            return conn, conn.getresponse()
        except OSError as e:
            conn.close()
            raise DockerError('%s %s' % (method, path), 0,
                              'cannot reach %s: %s' % (self.socket_path, e)) from e

    def call(self, method, path, query=None, body=None, ok=(200, 201, 204, 304)):
        """One call with a JSON body; returns (status, decoded JSON or None)."""
        headers = {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers['Content-Type'] = 'application/json'
        conn, res = self._open(method, path, query, data, headers)
        try:
            raw = res.read()
        finally:
            conn.close()
        if res.status not in ok:
            raise DockerError('%s %s' % (method, path), res.status, _message(raw))
        return res.status, (json.loads(raw) if raw.strip() else None)

    def get(self, path, query=None, missing_ok=False):
        """GET returning the JSON, or None on 404 when `missing_ok`."""
        ok = (200, 404) if missing_ok else (200,)
        status, doc = self.call('GET', path, query, ok=ok)
        return None if status == 404 else doc

    def stream(self, method, path, query=None):
        """Opens a response to read as a stream; the caller closes it."""
        conn, res = self._open(method, path, query)
        if res.status != 200:
            raw = res.read()
            conn.close()
            raise DockerError('%s %s' % (method, path), res.status, _message(raw))
        return _Stream(conn, res)

    def upload(self, path, fileobj, length, query=None):
        """POSTs a file (e.g. an image tarball); returns the raw answer."""
        headers = {'Content-Type': 'application/x-tar', 'Content-Length': str(length)}
        conn, res = self._open('POST', path, query, fileobj, headers)
        try:
            raw = res.read()
        finally:
            conn.close()
        if res.status != 200:
            raise DockerError('POST %s' % path, res.status, _message(raw))
        return raw


class _Stream:
    def __init__(self, conn, res):
        self._conn = conn
        self._res = res

    def read(self, n=-1):
        return self._res.read(n if n is not None and n >= 0 else None)

    def close(self):
        self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _message(raw):
    try:
        return json.loads(raw).get('message', '').strip() or raw.decode(errors='replace')
    except (ValueError, AttributeError):
        return raw.decode(errors='replace').strip()


def stream_errors(raw):
    """Error texts in a JSON-lines progress answer (images/load, images/create)."""
    errs = []
    for line in raw.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and doc.get('error'):
            errs.append(str(doc.get('errorDetail', {}).get('message') or doc['error']))
    return errs


def loaded_image_ids(raw):
    """Image ids a `docker load` answer names ("Loaded image ID: sha256:...")."""
    ids = []
    for line in raw.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        text = doc.get('stream', '') if isinstance(doc, dict) else ''
        for part in text.splitlines():
            if part.startswith('Loaded image ID: '):
                ids.append(part[len('Loaded image ID: '):].strip())
    return ids


def demux_logs(raw):
    """Text of a non-TTY container's log stream (8-byte frame headers removed)."""
    out = bytearray()
    i = 0
    while i + 8 <= len(raw):
        kind, size = raw[i], struct.unpack('>I', raw[i + 4:i + 8])[0]
        if kind not in (0, 1, 2) or raw[i + 1:i + 4] != b'\0\0\0':
            # A TTY container's log has no frames.
            return bytes(raw)
        out += raw[i + 8:i + 8 + size]
        i += 8 + size
    return bytes(out)
