"""A tiny subscriber for the examples: prints every CloudEvent it receives and answers
202. Usage: python examples/subscriber.py [port]  (default 8181)."""

from __future__ import annotations

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        attrs = {k[3:]: v for k, v in self.headers.items() if k.lower().startswith("ce-")}
        print(
            f"{self.path} {attrs.get('type')} subject={attrs.get('subject')} "
            f"id={attrs.get('id')} data={body[:200]!r}",
            flush=True,
        )
        self.send_response(202)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8181
    print(f"listening on http://127.0.0.1:{port}", flush=True)
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
