"""Slipway example: hello world from a Dockerfile with a short-name FROM,
standard library only and no health route. Change VERSION to see a new
release."""

import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = "1"


class Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"Hello from dockerfile-shortname, VERSION {VERSION}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8080"))
    server = ThreadingHTTPServer(("0.0.0.0", port), Hello)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"listening on :{port}", flush=True)
    server.serve_forever()
