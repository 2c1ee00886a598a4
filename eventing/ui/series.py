"""The dashboard's memory: one sample of the system's numbers per second for the last
15 minutes, and the last scale decisions, so a page opened now still shows the burst
of five minutes ago. Live pages get each new sample and decision through their own
bounded queue; one that cannot keep up loses samples, never delays the sampler.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

SAMPLE_EVERY = 1.0
KEEP_SAMPLES = 900
KEEP_DECISIONS = 500
LISTENER_QUEUE = 64
MAX_LISTENERS = 16

Message = tuple[str, dict[str, Any]]


class Sampler:
    def __init__(
        self,
        read: Callable[[], dict[str, Any]],
        interval: float = SAMPLE_EVERY,
        keep: int = KEEP_SAMPLES,
    ) -> None:
        self.read = read
        self.interval = interval
        self.samples: deque[dict[str, Any]] = deque(maxlen=keep)
        self.decisions: deque[dict[str, Any]] = deque(maxlen=KEEP_DECISIONS)
        self.listeners: set[asyncio.Queue[Message]] = set()
        self.dropped = 0

    def sample(self) -> dict[str, Any]:
        sample = {"t": round(time.time(), 3), **self.read()}
        self.samples.append(sample)
        self._fan_out(("sample", sample))
        return sample

    def decided(self, record: dict[str, Any]) -> None:
        """A workload's replica count changed: keep the decision and its reason."""
        self.decisions.append(record)
        self._fan_out(("decision", record))

    def _fan_out(self, message: Message) -> None:
        for queue in self.listeners:
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:
                self.dropped += 1

    def full(self) -> bool:
        return len(self.listeners) >= MAX_LISTENERS

    @contextmanager
    def listen(self) -> Iterator[asyncio.Queue[Message]]:
        queue: asyncio.Queue[Message] = asyncio.Queue(LISTENER_QUEUE)
        self.listeners.add(queue)
        try:
            yield queue
        finally:
            self.listeners.discard(queue)

    async def run(self) -> None:
        """Sample every ``interval`` seconds until cancelled."""
        while True:
            self.sample()
            await asyncio.sleep(self.interval)
