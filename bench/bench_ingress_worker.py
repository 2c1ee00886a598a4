"""Ingress worker benchmark (not a test): CPU per request of one ingress worker process
alone, its main process replaced by a stub that answers every publish at once.

Why: in the pipeline bench the worker shares two cores with the main process, the
store's threads, the subscriber and the generator, so its cost per event moves with
everything else. Here only the worker and ``wrk`` run: the worker's own cost (HTTP
parsing, decoding and validating the event, the IPC frame) per request, single events
and batches of 100, against another source tree in alternated rounds::

    .venv/bin/python bench/bench_ingress_worker.py [--seconds 5] [--rounds 3] [--against TREE]

TREE is another checkout (``git archive main | tar -x -C /tmp/before``); its worker is
started through ``bench/run_tree.py``. The stub speaks the frame header and the OK
answer, which did not change; it never decodes a publish.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import time
from pathlib import Path

from bench_pipeline import PAYLOAD, WRK_BATCH, WRK_SINGLE, cpu_seconds, wait_http, wrk

from eventing.ingress import ipc
from eventing.ingress.server import IngressSettings
from eventing.ingress.worker import ENV, worker_config

ROOT = Path(__file__).resolve().parents[1]


class _Stub(asyncio.Protocol):
    """The main process's end: every publish answered OK, nothing stored."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.ready = asyncio.Event()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        out = []
        for kind, request_id, payload in ipc.split(self.buffer):
            if kind == ipc.PUBLISH:
                out.append(ipc.frame(ipc.RESULT, request_id, ipc.OK_RESULT))
            elif kind == ipc.STATS and b'"ready"' in payload:
                self.ready.set()
        if out and self.transport is not None:
            self.transport.write(b"".join(out))


async def measure(
    tree: str | None, seconds: int, phases: tuple[str, ...] = ("single", "batch")
) -> dict[str, float]:
    """CPU microseconds of the worker per request (single) and per event (batch)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    listener.set_inheritable(True)
    port = listener.getsockname()[1]
    ours, theirs = socket.socketpair()
    theirs.set_inheritable(True)
    config = worker_config(
        brokers=["default/default"],
        webhooks=[],
        settings=IngressSettings(),
        listen_fd=listener.fileno(),
        ipc_fd=theirs.fileno(),
        log_level="WARNING",
    )
    runner = [str(ROOT / "bench" / "run_tree.py"), tree] if tree else []
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *runner,
        "-m",
        "eventing.ingress.worker",
        env={**os.environ, ENV: config},
        pass_fds=(listener.fileno(), theirs.fileno()),
        cwd=ROOT,
    )
    theirs.close()
    stub = _Stub()
    loop = asyncio.get_running_loop()
    await loop.create_connection(lambda: stub, sock=ours)
    try:
        async with asyncio.timeout(30):
            await stub.ready.wait()
        url = f"http://127.0.0.1:{port}/default/default"
        await asyncio.to_thread(wait_http, url)
        batch = json.dumps(
            [
                {
                    "specversion": "1.0",
                    "id": f"b-{i}",
                    "source": "/bench",
                    "type": "bench.event",
                    "data": json.loads(PAYLOAD),
                }
                for i in range(100)
            ]
        )
        result: dict[str, float] = {}
        for name, script, connections, per in (
            ("single", WRK_SINGLE % PAYLOAD, 64, 1),
            ("batch", WRK_BATCH % batch, 8, 100),
        ):
            if name not in phases:
                result[name] = result[f"{name} ev/s"] = 0.0
                continue
            before = cpu_seconds(proc.pid)
            started = time.monotonic()
            rate = await asyncio.to_thread(wrk, url, script, seconds, connections)
            elapsed = time.monotonic() - started
            events = rate * elapsed * per
            result[name] = (cpu_seconds(proc.pid) - before) / max(1.0, events) * 1e6
            result[f"{name} ev/s"] = rate * per
        return result
    finally:
        if stub.transport is not None:
            stub.transport.write(ipc.frame(ipc.STOP, 0))
        try:
            async with asyncio.timeout(10):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()
        listener.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--against", metavar="TREE", help="another source tree to alternate with")
    parser.add_argument("--only", choices=["single", "batch"], help="one phase (for a profiler)")
    args = parser.parse_args()
    trees: list[tuple[str, str | None]] = [("this", None)]
    if args.against:
        trees.insert(0, ("against", args.against))
    rows: dict[str, list[dict[str, float]]] = {name: [] for name, _ in trees}
    for round_ in range(args.rounds):
        for name, tree in trees:
            phases = (args.only,) if args.only else ("single", "batch")
            got = asyncio.run(measure(tree, args.seconds, phases))
            rows[name].append(got)
            print(
                f"round {round_ + 1} {name:<8} single {got['single']:6.1f} us/request "
                f"({got['single ev/s']:,.0f}/s)  batch {got['batch']:6.1f} us/event "
                f"({got['batch ev/s']:,.0f}/s)  load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    print("\nmedian worker CPU, microseconds:")
    for name, results in rows.items():
        single = statistics.median(r["single"] for r in results)
        batch = statistics.median(r["batch"] for r in results)
        print(f"  {name:<8} single {single:6.1f} per request   batch {batch:6.1f} per event")
    if args.against:
        ratio = {
            kind: statistics.median(r[kind] for r in rows["this"])
            / statistics.median(r[kind] for r in rows["against"])
            for kind in ("single", "batch")
        }
        print(f"  ratio this / against: single {ratio['single']:.2f}, batch {ratio['batch']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
