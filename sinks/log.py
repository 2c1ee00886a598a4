"""The ``log:`` sink: writes each event to standard output, one JSON line each.

For demos and debugging, like Knative's event-display service."""

from __future__ import annotations

import sys
from typing import TextIO

from eventing.codec.jsonformat import to_json_bytes
from eventing.delivery.sink import Outcome
from eventing.events import Event


class LogSink:
    target = "log:"

    def __init__(self, stream: TextIO | None = None, prefix: str = "") -> None:
        self.stream = stream or sys.stdout
        self.prefix = prefix

    async def wait_ready(self) -> None:
        return None

    async def send(self, event: Event, *, timeout: float, structured: bool) -> Outcome:
        line = to_json_bytes(event).decode("utf-8", "replace")
        self.stream.write(f"{self.prefix}{line}\n")
        self.stream.flush()
        return Outcome(202)

    async def close(self) -> None:
        return None
