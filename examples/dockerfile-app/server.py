"""Slipway example: a standard-library HTTP server built from its own
Dockerfile. Change VERSION to see a new release."""

import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = "1"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/healthz":
            self.reply(200, "text/plain", "ok\n")
        elif self.path == "/":
            self.reply(
                200,
                "text/html; charset=utf-8",
                "<!doctype html><title>dockerfile-app</title>"
                f"<h1>dockerfile-app</h1><p>VERSION {VERSION}</p>\n",
            )
        else:
            self.reply(404, "text/plain", "not found\n")

    def reply(self, status, content_type, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main():
    port = int(os.environ.get("PORT", "8080"))
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"dockerfile-app VERSION {VERSION} listening on :{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
