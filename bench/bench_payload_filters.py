"""Benchmark: routing cost with payload (``data.``) filters, and without them.

Run from the repository root::

    .venv/bin/python bench/bench_payload_filters.py           # about 20 s
    .venv/bin/python bench/bench_payload_filters.py --quick   # smoke run

Routes the same events through ``eventing.broker.routing.route`` with 10 triggers:

1. ``baseline``: attribute-only triggers through a copy of ``route`` as it was before
   payload filters (the loop without the NEEDS_DATA branch), measured in this run;
2. ``attribute-only``: the same triggers through today's ``route``: the cost for a
   broker without payload triggers (the ratio should be 1.0 within noise);
3. ``1 payload trigger`` and ``10 payload triggers``: the data is parsed once per
   event whatever the number of payload triggers.

Prints events/s and the ratio to the baseline.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eventing.broker.base import Filter
from eventing.broker.routing import route
from eventing.events import Event
from eventing.resources.trigger import TriggerSpec
from triggers.materialize import materialize

Route = Callable[[Mapping[str, Filter], Event], object]


def route_before(filters: Mapping[str, Filter], event: Event) -> object:
    """``route`` as it was before payload filters: the baseline of this run."""
    matched: list[str] = []
    dropped: list[tuple[str, str]] = []
    attributes = event.attributes
    for trigger, event_filter in filters.items():
        reason = event_filter(attributes)
        if reason is None:
            matched.append(trigger)
        else:
            dropped.append((trigger, reason))
    if not matched:
        dropped.append(("", "no-trigger"))
    return tuple(matched), dropped


def spec(cesql: str) -> TriggerSpec:
    return TriggerSpec.model_validate(
        {"broker": "b", "filters": [{"cesql": cesql}], "subscriber": {"uri": "http://h/"}}
    )


def triggers(payload: int) -> dict[str, Filter]:
    out: dict[str, Filter] = {}
    for i in range(10):
        if i < payload:
            expression = f"data.order.total > {i * 50} AND data.order.currency = 'EUR'"
        else:
            expression = f"type = 'order.created' AND source = '/shop/{i % 3}'"
        out[f"t{i}"] = materialize(spec(expression))
    return out


def events(n: int) -> list[Event]:
    body = {"order": {"id": "o", "total": 120, "currency": "EUR", "lines": [1, 2, 3]}}
    data = json.dumps(body).encode()
    return [
        Event(
            {
                "specversion": "1.0",
                "id": str(i),
                "source": f"/shop/{i % 3}",
                "type": "order.created",
                "datacontenttype": "application/json",
            },
            data,
        )
        for i in range(n)
    ]


def once(fn: Route, filters: Mapping[str, Filter], batch: list[Event]) -> float:
    start = time.perf_counter()
    for event in batch:
        fn(filters, event)
    return len(batch) / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    batch = events(2_000 if args.quick else 20_000)
    rounds = 3 if args.quick else 7
    attribute_only = triggers(0)
    cases: list[tuple[str, Route, dict[str, Filter]]] = [
        ("baseline (route before payload filters)", route_before, attribute_only),
        ("attribute-only triggers", route, attribute_only),
        ("1 payload trigger + 9 attribute", route, triggers(1)),
        ("10 payload triggers", route, triggers(10)),
    ]
    print(f"python {platform.python_version()}, {len(batch)} events x {rounds} rounds, 10 triggers")
    print(f"{'case':<42} {'events/s':>12} {'vs baseline':>12}")
    for _, fn, filters in cases:  # warm up every path first
        once(fn, filters, batch)
    samples: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    for _ in range(rounds):  # interleaved, so drift hits every case alike
        for name, fn, filters in cases:
            samples[name].append(once(fn, filters, batch))
    baseline = statistics.median(samples[cases[0][0]])
    for name, _, _ in cases:
        value = statistics.median(samples[name])
        print(f"{name:<42} {value:>12,.0f} {value / baseline:>11.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
