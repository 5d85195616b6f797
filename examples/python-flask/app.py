"""Slipway example: a Flask app. Change VERSION to see a new release."""

import os
import platform

from flask import Flask

VERSION = "1"

app = Flask(__name__)


@app.get("/healthz")
def healthz():
    return "ok\n", 200, {"Content-Type": "text/plain"}


@app.get("/")
def index():
    return (
        "<!doctype html><title>python-flask</title>"
        f"<h1>python-flask</h1><p>VERSION {VERSION}</p>"
        f"<p>python {platform.python_version()}, pid {os.getpid()}</p>\n"
    )


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=int(os.environ.get("PORT", "8080")))
