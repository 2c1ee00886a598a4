"""Benchmark: how long a live change takes to apply (design §11), next to starting the
same system from scratch in the same run (the baseline: what a restart would cost).

Run from the repository root::

    .venv/bin/python bench/bench_reconcile.py            # about a minute
    .venv/bin/python bench/bench_reconcile.py --quick    # smoke run

For N triggers (embedded broker, durable store, HTTP subscribers that are never
called): ``start`` is ``eventing.app.runtime.start`` of a directory holding the Broker
and the N triggers; ``add`` is one file holding the N triggers written next to a
running Broker, from the write until the reconciler finished applying it (directory
poll 0.1 s and 0.3 s debounce included); ``change`` is every trigger's subscriber
changed; ``delete`` is the file removed (each trigger drained and its backlog
released). Wall time, median of the rounds; the ratio is ``add`` / ``start``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eventing.app.runtime import RuntimeSettings, start, stop
from eventing.app.system import StoreSettings

BROKER = "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: default}\n"


def triggers(n: int, port: int) -> str:
    return "---\n".join(
        f"""apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: t{i}}}
spec:
  broker: default
  filters: [{{exact: {{type: t{i}}}}}]
  subscriber: {{uri: "http://127.0.0.1:{port}/t{i}"}}
"""
        for i in range(n)
    )


def save(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def settings(data: Path, watch: bool) -> RuntimeSettings:
    return RuntimeSettings(
        port=0,
        admin_port=0,
        drain_timeout=5.0,
        store=StoreSettings(data_dir=data, synchronous="NORMAL"),
        watch=watch,
        watch_interval=0.1,
    )


async def until(check: Callable[[], bool], deadline: float = 300.0) -> None:
    end = time.monotonic() + deadline
    while not check():
        if time.monotonic() > end:
            raise TimeoutError("not applied in time")
        await asyncio.sleep(0.005)


async def one_round(n: int) -> dict[str, float]:
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cold = root / "cold"
        cold.mkdir()
        save(cold / "all.yaml", BROKER + "---\n" + triggers(n, 9))
        began = time.perf_counter()
        running = await start(cold, settings(root / "cold-data", False))
        out["start"] = time.perf_counter() - began
        await stop(running, settings(root / "cold-data", False))

        live = root / "live"
        live.mkdir()
        save(live / "broker.yaml", BROKER)
        s = settings(root / "live-data", True)
        running = await start(live, s)
        rec = running.reconciler
        assert rec is not None
        try:
            steps: list[tuple[str, Callable[[], None]]] = [
                ("add", lambda: save(live / "t.yaml", triggers(n, 9))),
                ("change", lambda: save(live / "t.yaml", triggers(n, 10))),
                ("delete", (live / "t.yaml").unlink),
            ]
            for step, action in steps:
                before = rec.applied
                began = time.perf_counter()
                action()
                await until(lambda b=before: rec.applied > b)  # type: ignore[misc]
                out[step] = time.perf_counter() - began
            assert not running.system.triggers
        finally:
            await stop(running, s)
    return out


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sizes = (10, 50) if args.quick else (10, 100, 500)
    rounds = 1 if args.quick else 3
    header = ("triggers", "start s", "add s", "change s", "delete s", "add/start")
    print(" ".join(f"{h:>9}" for h in header))
    for n in sizes:
        results = [await one_round(n) for _ in range(rounds)]
        med = {k: statistics.median(r[k] for r in results) for k in results[0]}
        cells = [med["start"], med["add"], med["change"], med["delete"]]
        ratio = med["add"] / med["start"]
        print(f"{n:>9} " + " ".join(f"{c:>9.3f}" for c in cells) + f" {ratio:>9.2f}")


if __name__ == "__main__":
    asyncio.run(main())
