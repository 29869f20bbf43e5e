#!/usr/bin/python3
"""LAB FIXTURE, not Neutron: a read-only Neutron API stub for the novadock lab.

Nova's API asks Neutron for ports and security groups even for servers booted
with `--nic none` (server show/list give HTTP 500 without a network endpoint).
GET of any collection returns an empty list; writes return 501.
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        parts = [p for p in self.path.split("?")[0].split("/") if p]
        if not parts:
            self._send(200, {"versions": [{"id": "v2.0", "status": "CURRENT",
                                           "links": [{"rel": "self", "href": "/v2.0/"}]}]})
        elif parts == ["v2.0"]:
            self._send(200, {"resources": []})
        elif len(parts) == 2:
            name = parts[1].removesuffix(".json").replace("-", "_")
            self._send(200, {name: []})
        else:
            self._send(404, {"NeutronError": {"type": "NotFound", "message": "lab stub: not found", "detail": ""}})

    def _refuse(self):
        self._send(501, {"NeutronError": {"type": "NotImplemented",
                                          "message": "novadock lab neutron stub is read-only", "detail": ""}})

    do_POST = do_PUT = do_DELETE = _refuse

    def log_message(self, fmt, *args):
        pass


if __name__ == "__main__":
    ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), Handler).serve_forever()
