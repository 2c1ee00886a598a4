"""Helpers for the live-reload tests (a directory, the API server): a sender that
records each accepted event with the phase it was accepted in, and waits on
``/v1/status`` with deadlines."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.subscriber import RecordingSubscriber

DEADLINE = 30.0


def write(path: Path, text: str) -> None:
    """As an editor saves: a temporary file renamed over the old one."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@dataclass
class Sender:
    url: str
    phase: str = "start"
    accepted: list[tuple[str, str, str]] = field(default_factory=list)
    """(id, type, phase) of every 202."""
    stopped: bool = False
    types: tuple[str, ...] = ("a", "b", "c", "w")

    async def run(self) -> None:
        n = 0
        types = self.types
        async with aiohttp.ClientSession() as http:
            while not self.stopped:
                n += 1
                type_ = types[n % len(types)]
                phase = self.phase
                headers = {
                    "ce-specversion": "1.0",
                    "ce-id": f"e{n}",
                    "ce-source": "/live",
                    "ce-type": type_,
                }
                async with http.post(self.url, data=b"{}", headers=headers) as r:
                    if r.status == 202:
                        self.accepted.append((f"e{n}", type_, phase))

    def ids(self, type_: str, phases: set[str]) -> set[str]:
        return {i for i, t, p in self.accepted if t == type_ and p in phases}

    async def wait_more(self, n: int = 8) -> None:
        """Until ``n`` more events of the current phase were accepted."""
        phase = self.phase
        await until(lambda: sum(1 for *_, p in self.accepted if p == phase) >= n, "events")


async def until(check: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
    async with asyncio.timeout(timeout):
        while not (result := check()):  # noqa: ASYNC110 - polling live state
            await asyncio.sleep(0.05)
    return result


async def status(admin_url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{admin_url}/v1/status") as r:
        body: dict[str, Any] = await r.json()
        return body


async def wait_status(admin_url: str, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    async with asyncio.timeout(DEADLINE):
        while True:
            body = await status(admin_url)
            if check(body):
                return body
            await asyncio.sleep(0.1)


def triggers(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in body["triggers"]}


def delivered(sub: RecordingSubscriber, path: str) -> set[str]:
    return set(sub.ids(path))


def reported(sub: RecordingSubscriber, path: str) -> set[str]:
    return {json.loads(r.body)["id"] for r in sub.received if r.path == path}
