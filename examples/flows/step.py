"""One step of the example pipeline: answers each CloudEvent with the next one.

Run by the Workloads of examples/flows/pipeline.yaml as ``python step.py NAME``: the
reply keeps the data, appends ``.NAME`` to the type and adds ``NAME: ok`` to a JSON
object body, so the last reply shows every step it went through."""

from __future__ import annotations

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STEP = sys.argv[1] if len(sys.argv) > 1 else "step"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # readiness
        self.send_response(200)
        self.end_headers()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            data = {"input": body.decode("utf-8", "replace")}
        if isinstance(data, dict):
            data[STEP] = "ok"
        out = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("ce-specversion", "1.0")
        self.send_header("ce-id", f"{self.headers.get('ce-id', 'x')}-{STEP}")
        self.send_header("ce-source", f"/examples/flows/{STEP}")
        self.send_header("ce-type", f"{self.headers.get('ce-type', 'event')}.{STEP}")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
