"""Named, supervised long-running tasks (after kopf's ``aiotasks``).

Every long-lived piece of the system is a plain ``async def`` started here by name.
A task that fails is logged and, if it is restartable (a source losing its server),
started again with jittered exponential backoff; a task that returns although it
should run forever is logged as a bug. ``stop`` cancels a group of tasks and waits
for them within a deadline, so shutdown is bounded and leaves no task behind.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

Factory = Callable[[], Awaitable[None]]


@dataclass
class Supervised:
    name: str
    group: str
    task: asyncio.Task[None]
    restarts: int = 0
    last_error: str | None = None


@dataclass
class Supervisor:
    initial_backoff: float = 0.5
    max_backoff: float = 30.0
    tasks: dict[str, Supervised] = field(default_factory=dict)

    def spawn(
        self,
        name: str,
        factory: Factory,
        *,
        group: str,
        restart: bool = False,
        on_error: Callable[[str], None] | None = None,
    ) -> Supervised:
        if name in self.tasks:
            raise ValueError(f"a task named {name!r} already runs")
        entry = Supervised(
            name,
            group,
            asyncio.create_task(self._guard(name, factory, restart, on_error), name=name),
        )
        self.tasks[name] = entry
        return entry

    async def _guard(
        self, name: str, factory: Factory, restart: bool, on_error: Callable[[str], None] | None
    ) -> None:
        delay = self.initial_backoff
        while True:
            try:
                await factory()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                message = f"{type(exc).__name__}: {exc}"
                entry = self.tasks.get(name)
                if entry is not None:
                    entry.last_error = message[:500]
                if on_error is not None:
                    on_error(message)
                if not restart:
                    logger.exception("task %r failed", name)
                    raise
                logger.warning("task %r failed (%s); restarting in %.1fs", name, message, delay)
            else:
                if not restart:
                    return
                logger.error("task %r finished unexpectedly; restarting", name)
            if (entry := self.tasks.get(name)) is not None:
                entry.restarts += 1
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(self.max_backoff, delay * 2)

    async def stop(self, group: str, timeout: float) -> None:
        """Cancel every task of ``group`` and wait up to ``timeout`` seconds for them."""
        entries = [e for e in self.tasks.values() if e.group == group]
        for entry in entries:
            entry.task.cancel()
        await self._wait([e.task for e in entries], timeout, group)
        for entry in entries:
            self.tasks.pop(entry.name, None)

    async def cancel(self, name: str, timeout: float) -> None:
        """Cancel one task by name (a trigger or source removed while running) and wait
        up to ``timeout`` seconds for it; a name that does not run is ignored."""
        entry = self.tasks.pop(name, None)
        if entry is None:
            return
        entry.task.cancel()
        await self._wait([entry.task], timeout, entry.group)

    async def _wait(self, tasks: list[asyncio.Task[None]], timeout: float, group: str) -> None:
        if not tasks:
            return
        done, pending = await asyncio.wait(tasks, timeout=max(0.0, timeout))
        for task in pending:
            logger.warning("task %r did not stop within %.1fs", task.get_name(), timeout)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                logger.debug("task %r ended with %r", task.get_name(), task.exception())

    def failed(self) -> list[Supervised]:
        return [
            e
            for e in self.tasks.values()
            if e.task.done() and not e.task.cancelled() and e.task.exception()
        ]
