"""Fan-out benchmark (not a test): cost per event as the number of triggers grows.

    .venv/bin/python bench/bench_fanout.py                  # routing + e2e, ~4 min
    .venv/bin/python bench/bench_fanout.py --skip-e2e       # routing only, ~30 s
    .venv/bin/python bench/bench_fanout.py --seconds 5 --kinds exact

1, 10, 100 and 1,000 triggers, each with one filter of one kind, and events of which
every one matches exactly one trigger (cycling over all of them):

- ``exact``: ``exact: {type: fanout.<i>}``;
- ``prefix``: ``prefix: {type: fanout.<i>.}`` (events ``fanout.<i>.created``);
- ``cesql``: ``type = 'fanout.<i>' AND source = '/fanout'``;
- ``suffix`` (routing only): ``suffix: {type: .<i>}``, a filter the index cannot use,
  so every trigger is asked: the linear cost, for comparison.

Three measures:

1. **routing** (in process): microseconds per event through the broker's trigger index
   (:class:`eventing.broker.index.Router`) and through the linear scan
   (:func:`eventing.broker.routing.route`) in the same run;
2. **store** (in process): the embedded broker's durable store path alone, publishes of
   100 events into SQLite (fsync full) and every event acked by its trigger as the
   dispatchers do (taken from memory, acked without waiting), a backlog of about 2,000
   events; CPU microseconds per event of the process (event loop, syncer, checkpointer)
   and of the event-loop thread alone (where the store commits), so a change to how the
   store handles many triggers can be compared without the noise of the e2e run;
3. **e2e** (``eventing run`` as a subprocess, as bench_pipeline runs it): batched
   ingress, 100 events per request from ``wrk``, to a lean local subscriber that every
   trigger delivers to; events/s accepted and delivered end to end.

Each table ends with the ratio N triggers / 1 trigger (goal at 1,000: >= 0.8 for the
e2e rate; routing cost <= 50 us per event). The e2e table also gives the CPU the main
process (all its threads) spent per delivered event and its ratio 1 / N: on a shared
machine the rate moves with the other load, the CPU per event much less. Needs
``wrk`` for the e2e part.

A single 8 s phase per count swings by +-0.15 in the ratio on a shared machine; to say
whether the goal holds *reliably*, ``--repeat R`` runs R rounds of the e2e phases
alternated (round 1: exact 1, exact 1,000, prefix 1, ..., round 2: the same again),
so drift in the load hits both sides of every pair, and prints each round's ratios and
their median with its spread:

    .venv/bin/python bench/bench_fanout.py --kinds exact prefix cesql --counts 1 1000 \
        --skip-store --quick --seconds 8 --repeat 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_pipeline import batched_phase, wrk_missing

from eventing.broker.base import Filter, Receipt
from eventing.broker.embedded import EmbeddedBroker, SharedStore
from eventing.broker.index import Router
from eventing.broker.routing import route
from eventing.broker.sqlite_store import SqliteSettings, SqliteStore
from eventing.broker.subscription import StoreSubscription
from eventing.events import Event
from eventing.resources.trigger import TriggerSpec
from triggers.materialize import materialize

COUNTS = (1, 10, 100, 1000)
KINDS = ("exact", "prefix", "cesql", "suffix")


def filter_yaml(kind: str, i: int) -> str:
    if kind == "exact":
        return f"{{exact: {{type: fanout.{i}}}}}"
    if kind == "prefix":
        return f"{{prefix: {{type: fanout.{i}.}}}}"
    if kind == "suffix":
        return f"{{suffix: {{type: .{i}}}}}"
    return f"{{cesql: \"type = 'fanout.{i}' AND source = '/fanout'\"}}"


def event_type(kind: str, i: int) -> str:
    return f"fanout.{i}.created" if kind == "prefix" else f"fanout.{i}"


def filters(kind: str, n: int) -> dict[str, Filter]:
    out: dict[str, Filter] = {}
    for i in range(n):
        spec = {"broker": "b", "subscriber": {"uri": "http://h/"}, "filters": [_filter(kind, i)]}
        out[f"t{i}"] = materialize(TriggerSpec.model_validate(spec))
    return out


def _filter(kind: str, i: int) -> dict[str, object]:
    if kind == "exact":
        return {"exact": {"type": f"fanout.{i}"}}
    if kind == "prefix":
        return {"prefix": {"type": f"fanout.{i}."}}
    if kind == "suffix":
        return {"suffix": {"type": f".{i}"}}
    return {"cesql": f"type = 'fanout.{i}' AND source = '/fanout'"}


def events(kind: str, n: int, count: int) -> list[Event]:
    return [
        Event(
            {
                "specversion": "1.0",
                "id": str(k),
                "source": "/fanout",
                "type": event_type(kind, k % n),
                "datacontenttype": "application/json",
            },
            b'{"n": 1}',
        )
        for k in range(count)
    ]


def per_event_us(fn: Callable[[Event], object], batch: list[Event], rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        for event in batch:
            fn(event)
        samples.append((time.perf_counter() - started) / len(batch) * 1e6)
    return statistics.median(samples)


def routing_table(kinds: list[str], quick: bool) -> None:
    count, rounds = (2_000, 3) if quick else (10_000, 5)
    print(f"\nrouting, python {platform.python_version()}: us per event (median of {rounds})")
    print(f"{'kind':<8} {'triggers':>8} {'index us':>9} {'linear us':>10} {'index 1/N':>10}")
    for kind in kinds:
        base = 0.0
        for n in COUNTS:
            fs = filters(kind, n)
            router = Router()
            for trigger, event_filter in fs.items():
                router.add(trigger, event_filter)
            batch = events(kind, n, count)
            assert all(router.route(e)[0] == route(fs, e)[0] for e in batch[:200])
            assert all(len(router.route(e)[0]) == 1 for e in batch[:200])
            indexed = per_event_us(router.route, batch, rounds)
            few = batch[: max(200, count * 10 // n)]  # the linear scan is slow at 1,000
            linear = per_event_us(lambda e, fs=fs: route(fs, e), few, rounds)  # type: ignore[misc]
            base = base or indexed
            print(f"{kind:<8} {n:>8} {indexed:>9.2f} {linear:>10.2f} {base / indexed:>10.2f}")


def thread_cpu(native_id: int) -> float:
    """CPU seconds of one thread of this process so far (10 ms ticks, from /proc)."""
    fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def store_path(kind: str, n: int, batches: int) -> tuple[float, float]:
    """(process CPU us per event, event-loop thread CPU us per event) of publishing
    ``batches`` x 100 events to ``n`` triggers (batch ``b`` to triggers ``100 b`` to
    ``100 b + 99``, cycling) and acking each event."""
    with tempfile.TemporaryDirectory(prefix="bench-fanout-store-") as work:
        store = SqliteStore(SqliteSettings(Path(work) / "store.db"))
        broker = EmbeddedBroker("default/default", "MTChannelBasedBroker", SharedStore(store))
        ready: list[StoreSubscription] = []
        subs = []
        for trigger, event_filter in filters(kind, n).items():
            sub = broker.subscribe(trigger, event_filter)
            sub.push_to(lambda sub=sub: ready.append(sub))  # type: ignore[misc]
            subs.append(sub)
        await broker.open()
        made = []
        for b in range(batches + 21):
            batch = events(kind, n, 100)
            for k, event in enumerate(batch):
                event.attributes["type"] = event_type(kind, (b * 100 + k) % n)
            made.append(batch)
        backlog: list[tuple[StoreSubscription, Receipt]] = []

        async def first(sub: StoreSubscription) -> None:
            """As a dispatcher's run task: the first event comes through ``get`` (which
            reads what the store has pending), the rest are pushed from memory."""
            delivery = await sub.get()
            backlog.append((sub, delivery.receipt))

        firsts = [asyncio.create_task(first(sub), name="bench first take") for sub in subs]
        try:
            # The store commits on the event loop (this thread); its syncer and
            # checkpointer threads are the rest of the process's CPU.
            loop_thread = threading.get_native_id()
            for number, batch in enumerate(made):
                if number == 20:  # warmed up, backlog built
                    cpu, wall = time.process_time(), time.perf_counter()
                    writer_cpu = thread_cpu(loop_thread)
                await broker.publish(batch)
                while ready:  # as the dispatchers' pump: take what was offered
                    sub = ready.pop()
                    while (delivery := sub.take_nowait()) is not None:
                        backlog.append((sub, delivery.receipt))
                if len(backlog) > 2_000:  # acked as their deliveries end, oldest first
                    done, backlog[:] = backlog[:100], backlog[100:]
                    for sub, receipt in done:
                        sub.ack(receipt)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            writer_cpu = thread_cpu(loop_thread) - writer_cpu
        finally:
            for task in firsts:
                task.cancel()
            await asyncio.gather(*firsts, return_exceptions=True)
            await broker.close()
    count = batches * 100
    return cpu / count * 1e6, writer_cpu / count * 1e6


def store_table(kinds: list[str], counts: list[int], batches: int) -> None:
    print(
        f"\nstore path: publishes of 100 events, each acked (backlog ~2,000), {batches}"
        f" batches, load {os.getloadavg()[0]:.1f}: CPU us per event"
    )
    print(f"{'kind':<8} {'triggers':>8} {'process':>8} {'1 / N':>6} {'loop':>7} {'1 / N':>6}")
    for kind in kinds:
        if kind == "suffix":
            continue
        base = base_writer = 0.0
        for n in counts:
            process, writer = asyncio.run(store_path(kind, n, batches))
            base, base_writer = base or process, base_writer or writer
            print(
                f"{kind:<8} {n:>8} {process:>8.1f} {base / process:>6.2f}"
                f" {writer:>7.1f} {base_writer / max(writer, 1e-9):>6.2f}"
            )


WRK_ROTATING = """
local bodies = {%s}
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/cloudevents-batch+json"
request = function()
  i = i %% #bodies + 1
  return wrk.format(nil, nil, nil, bodies[i])
end
"""


def wrk_script(kind: str, n: int) -> str:
    """Ten different bodies of 100 events, rotating, so the events of a run cover up to
    1,000 triggers (each request costs the generator one table look-up)."""
    bodies = []
    for b in range(10):
        batch = [
            {
                "specversion": "1.0",
                "id": f"f-{b}-{k}",
                "source": "/fanout",
                "type": event_type(kind, (b * 100 + k) % n),
                "datacontenttype": "application/json",
                "data": {"n": k},
            }
            for k in range(100)
        ]
        bodies.append("[=[" + json.dumps(batch) + "]=]")
    return WRK_ROTATING % ", ".join(bodies)


def manifests(directory: Path, kind: str, n: int, sub_url: str) -> None:
    parts = ["apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: default}\n"]
    for i in range(n):
        parts.append(
            "apiVersion: eventing.knative.dev/v1\nkind: Trigger\n"
            f"metadata: {{name: t{i}}}\nspec:\n  broker: default\n"
            f"  filters: [{filter_yaml(kind, i)}]\n"
            f'  subscriber: {{uri: "{sub_url}/events"}}\n'
        )
    (directory / "fanout.yaml").write_text("---\n".join(parts))


def e2e_rate(kind: str, n: int, seconds: int, workers: str) -> tuple[float, float, float]:
    """(accepted ev/s, delivered ev/s, CPU us per delivered event of the main process,
    all its threads: the dispatchers, the delivery client, the store's commits and fsyncs)."""
    accepted, delivered, cpu = e2e_phase(kind, n, seconds, workers)
    return accepted, delivered, cpu["main"]


def e2e_phase(
    kind: str,
    n: int,
    seconds: int,
    workers: str,
    every_process: bool = False,
    connections: int = 8,
) -> tuple[float, float, dict[str, float]]:
    """:func:`e2e_rate` with the CPU us per delivered event by process: ``main``, and
    with ``every_process`` each ingress worker's and the subscriber's too; ``wrk``
    keeps ``connections`` requests of 100 events outstanding."""
    return batched_phase(
        lambda work, sub_url: manifests(work, kind, n, sub_url),
        wrk_script(kind, n),
        seconds,
        extra=("--ingress-workers", workers),
        prefix="eventing-fanout-",
        workers=every_process,
        subscriber_cpu=every_process,
        connections=connections,
    )


def e2e_table(kinds: list[str], seconds: int, workers: str, counts: list[int]) -> None:
    print(f"\ne2e: batched ingress (100/request, wrk -c8 -d{seconds}s) -> N triggers -> subscriber")
    print(
        f"{'kind':<8} {'triggers':>8} {'accepted/s':>11} {'delivered/s':>12} {'N / 1':>7}"
        f" {'main us/ev':>11} {'1 / N':>6}"
    )
    for kind in kinds:
        if kind == "suffix":
            continue
        base = base_cpu = 0.0
        for n in counts:
            accepted, delivered, cpu = e2e_rate(kind, n, seconds, workers)
            sustained = min(accepted, delivered)
            base = base or sustained
            base_cpu = base_cpu or cpu
            print(
                f"{kind:<8} {n:>8} {accepted:>11,.0f} {delivered:>12,.0f} {sustained / base:>7.2f}"
                f" {cpu:>11.0f} {base_cpu / cpu:>6.2f}"
            )


def spread(values: list[float]) -> str:
    """``median [min-max]`` of a list of ratios."""
    return f"{statistics.median(values):.2f} [{min(values):.2f}-{max(values):.2f}]"


def e2e_repeated(
    kinds: list[str],
    seconds: int,
    workers: str,
    counts: list[int],
    repeat: int,
    connections: int = 8,
) -> None:
    """``repeat`` rounds, each running every kind's phases in turn (1, N, ..., then the
    next kind), so the phases of a pair are minutes apart at most and drift in the
    machine's load hits the one-trigger phases as much as the others. A round's phases
    of one kind are a pair (a set with ``--counts`` of more than two): its ratios are
    against that round's first count. Prints every phase as it ends, then per kind and
    count the median ratio with its spread over the rounds, for the sustained rate, for
    the main process's CPU per delivered event and for that of every process of the
    pipeline (main, ingress workers, subscriber; not wrk): on a machine with fewer cores
    than busy processes the rate is bound by the latter. ``connections``: wrk's
    outstanding requests (8, as the single-phase table; more make the phases bound by
    CPU rather than by the time a batch takes through the system)."""
    kinds = [kind for kind in kinds if kind != "suffix"]
    print(
        f"\ne2e, {repeat} rounds of alternated phases: batched ingress (100/request,"
        f" wrk -c{connections} -d{seconds}s) -> N triggers -> subscriber; CPU us per"
        " delivered event of the main process, the subscriber and all (main + ingress"
        " workers + subscriber)"
    )
    print(
        f"{'round':>5} {'kind':<8} {'triggers':>8} {'load':>5} {'accepted/s':>11}"
        f" {'delivered/s':>12} {'N / 1':>6} {'main':>6} {'1 / N':>6} {'sub':>5}"
        f" {'all':>6} {'1 / N':>6}"
    )
    samples: dict[tuple[str, int], dict[str, list[float]]] = {}
    for number in range(1, repeat + 1):
        for kind in kinds:
            base: dict[str, float] = {}
            for n in counts:
                load = os.getloadavg()[0]
                accepted, delivered, cpu = e2e_phase(kind, n, seconds, workers, True, connections)
                row = {
                    "rate": min(accepted, delivered),
                    "main": cpu["main"],
                    "all": sum(cpu.values()),
                }
                base = base or row
                got = samples.setdefault((kind, n), {})
                for name, value in row.items():
                    got.setdefault(name, []).append(value)
                ratios = {
                    "rate": row["rate"] / base["rate"],
                    "main": base["main"] / row["main"],
                    "all": base["all"] / row["all"],
                }
                for name, value in ratios.items():
                    got.setdefault(f"{name} ratio", []).append(value)
                print(
                    f"{number:>5} {kind:<8} {n:>8} {load:>5.1f} {accepted:>11,.0f}"
                    f" {delivered:>12,.0f} {ratios['rate']:>6.2f} {row['main']:>6.1f}"
                    f" {ratios['main']:>6.2f} {cpu.get('subscriber', 0.0):>5.1f}"
                    f" {row['all']:>6.1f} {ratios['all']:>6.2f}",
                    flush=True,
                )
    print(
        f"\nover {repeat} rounds, median [min-max]: sustained ev/s and its ratio N / 1 per"
        " round; CPU us per delivered event (main process; all processes) and its ratio"
        " 1 / N per round"
    )
    print(
        f"{'kind':<8} {'triggers':>8} {'ev/s':>7} {'rate N / 1':>17} {'main':>5}"
        f" {'main 1 / N':>17} {'all':>5} {'all 1 / N':>17}"
    )
    for kind in kinds:
        for n in counts:
            got = samples[(kind, n)]
            print(
                f"{kind:<8} {n:>8} {statistics.median(got['rate']):>7,.0f}"
                f" {spread(got['rate ratio']):>17} {statistics.median(got['main']):>5.1f}"
                f" {spread(got['main ratio']):>17} {statistics.median(got['all']):>5.1f}"
                f" {spread(got['all ratio']):>17}"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--ingress-workers", default="auto")
    parser.add_argument("--skip-e2e", action="store_true")
    parser.add_argument("--skip-store", action="store_true")
    parser.add_argument("--store-batches", type=int, default=500)
    parser.add_argument("--counts", nargs="+", type=int, default=list(COUNTS))
    parser.add_argument("--quick", action="store_true", help="fewer routing samples")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="e2e: this many rounds of alternated phases (1, N, 1, N, ...) and the"
        " median ratio with its spread (default 1: one phase per count, as before)",
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=8,
        help="e2e with --repeat: wrk's outstanding requests of 100 events (default 8)",
    )
    args = parser.parse_args()
    routing_table(args.kinds, args.quick)
    if not args.skip_store:
        store_table(args.kinds, args.counts, args.store_batches)
    if not args.skip_e2e:
        if wrk_missing("bench: the e2e part"):
            return 2
        if args.repeat > 1:
            e2e_repeated(
                args.kinds,
                args.seconds,
                args.ingress_workers,
                args.counts,
                args.repeat,
                args.connections,
            )
        else:
            e2e_table(args.kinds, args.seconds, args.ingress_workers, args.counts)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
