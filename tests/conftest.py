"""Shared test fixtures: a leaked-task guard, a real recording subscriber over
loopback HTTP, and a factory that runs the whole system from YAML text."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.subscriber import RecordingSubscriber

if TYPE_CHECKING:
    from eventing.app.runtime import Running

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
TESTDATA = SHARED / "testdata"


@pytest.fixture(autouse=True, scope="session")
def _no_leftover_processes() -> Iterator[None]:
    """Whatever a failing test left running (``eventing run`` and its workers), stop it."""
    yield
    from tests.support.process import kill_leftovers

    kill_leftovers()


@pytest.fixture(autouse=True)
async def _no_leaked_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves asyncio tasks running (kopf's guard)."""
    before = set(asyncio.all_tasks())
    yield
    await asyncio.sleep(0)
    current = asyncio.current_task()
    leaked = [t for t in asyncio.all_tasks() - before if t is not current and not t.done()]
    for task in leaked:
        task.cancel()
    if leaked:
        await asyncio.gather(*leaked, return_exceptions=True)
        pytest.fail(f"leaked tasks: {[t.get_name() for t in leaked]}")


@pytest.fixture
async def subscriber() -> AsyncIterator[RecordingSubscriber]:
    sub = RecordingSubscriber()
    await sub.start()
    yield sub
    await sub.stop()


SystemFactory = Callable[..., Awaitable["Running"]]


@pytest.fixture
def broker_class(request: pytest.FixtureRequest) -> str:
    """The broker class the ``system`` fixture gives every Broker: ``embedded`` unless a
    module parametrises it (``tests.support.broker_classes.params()``, indirect)."""
    name = str(getattr(request, "param", "embedded"))
    from tests.support.broker_classes import require_server

    require_server(name)
    return name


@pytest.fixture
async def system(tmp_path: Path, broker_class: str) -> AsyncIterator[SystemFactory]:
    """``await system(yaml_text, **settings)`` starts the whole system on free ports,
    every Broker of the class ``broker_class`` says."""
    from eventing.app.runtime import RuntimeSettings, start, stop
    from eventing.app.system import StoreSettings
    from tests.support.broker_classes import Created, cleanup, with_class

    started: list[tuple[Running, RuntimeSettings]] = []
    created = Created()

    async def make(
        manifests: str,
        *,
        data_dir: Path | None = None,
        drain_timeout: float = 5.0,
        watch: bool = False,
        **store: object,
    ) -> Running:
        directory = tmp_path / f"manifests{len(started)}"
        directory.mkdir()
        manifests = with_class(manifests, broker_class, created)
        (directory / "system.yaml").write_text(manifests)
        settings = RuntimeSettings(
            port=0,
            admin_port=0,
            drain_timeout=drain_timeout,
            store=StoreSettings(data_dir=data_dir or tmp_path / "data", **store),  # type: ignore[arg-type]
            watch=watch,  # the manifests are tmp_path/manifests<n>/system.yaml
            watch_interval=0.1,
        )
        running = await start(directory, settings)
        started.append((running, settings))
        return running

    yield make
    for running, settings in reversed(started):
        await stop(running, settings)
    await cleanup(created)
