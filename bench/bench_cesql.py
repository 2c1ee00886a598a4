"""Benchmark: compiled CESQL filters next to an exact-match filter, same events, same run.

Run from the repository root::

    .venv/bin/python bench/bench_cesql.py            # full run (about 30 s)
    .venv/bin/python bench/bench_cesql.py --quick    # smoke run

Prints evaluations per second for typical trigger expressions, for
``CompiledExpression.matches`` (what a trigger calls) and ``evaluate`` (which
also builds a ``Result``), and the cost ratio against the exact filter.  Budget:
the three-comparison expression may cost at most 5x the exact filter; the
script exits with status 1 if ``matches`` exceeds it.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from triggers.cesql import compile_expression
from triggers.filters.attributes import exact

Attributes = Mapping[str, object]
Check = Callable[[Attributes], object]

BUDGET = 5.0  # max cost of the three-comparison CESQL filter relative to the exact filter
THREE_COMPARISONS = "type = 'com.example.a' AND source = '/s' AND subject = 'x'"


# --- The exact filter ---------------------------------------------------------------
# The project's own ``exact`` dialect, as materialised for a trigger
# (triggers/filters/attributes.py): the baseline the CESQL filter is measured against.
def make_exact_filter(spec: Mapping[str, str]) -> Check:
    return exact(spec)  # type: ignore[return-value]  # a Node takes AttributeValue maps


# --- Workload ---------------------------------------------------------------------
CASES: list[tuple[str, str, dict[str, str]]] = [
    # (label, CESQL expression, exact-filter spec it is compared with)
    (
        "3 comparisons (budget)",
        THREE_COMPARISONS,
        {"type": "com.example.a", "source": "/s", "subject": "x"},
    ),
    ("1 comparison", "type = 'com.example.a'", {"type": "com.example.a"}),
    ("prefix LIKE", "type LIKE 'com.example.%'", {"type": "com.example.a"}),
    (
        "IN list of 3",
        "type IN ('com.example.a', 'com.example.b', 'com.example.c')",
        {"type": "com.example.a"},
    ),
    (
        "DNF, LIKE, EXISTS",
        "(type = 'com.example.a' AND source LIKE '/s%') OR "
        "(type = 'com.example.b' AND EXISTS subject)",
        {"type": "com.example.a", "source": "/s"},
    ),
    ("functions + casts", "LOWER(subject) = 'x' AND INT(seq) > 5", {"subject": "x", "seq": "7"}),
    ("missing attribute (error)", "myext = 'v'", {"myext": "v"}),
]


def make_events(count: int) -> list[dict[str, object]]:
    """Broker-shaped attribute maps (all strings), a mix of matching and not."""
    types = ["com.example.a", "com.example.b", "com.example.c", "org.other.event"]
    events: list[dict[str, object]] = []
    for index in range(count):
        event: dict[str, object] = {
            "specversion": "1.0",
            "id": f"id-{index}",
            "source": "/s" if index % 3 else "/other",
            "type": types[index % len(types)],
            "time": "2024-06-13T12:00:00Z",
            "datacontenttype": "application/json",
            "seq": str(index % 11),
        }
        if index % 5:
            event["subject"] = "x" if index % 2 else "X"
        events.append(event)
    return events


def _batch(check: Check, events: list[dict[str, object]], loops: int) -> float:
    start = time.perf_counter()
    for _ in range(loops):
        for event in events:
            check(event)
    return time.perf_counter() - start


def rates(
    checks: list[Check], events: list[dict[str, object]], min_time: float, repeats: int
) -> list[float]:
    """Best-of-``repeats`` evaluations per second of each check over ``events``.

    The checks are timed in turn within each repeat, so a noisy neighbour on a
    shared machine slows all of them alike and the ratios stay meaningful.
    """
    loops = []
    for check in checks:  # calibrate like timeit: a batch should take at least min_time
        count = 1
        while _batch(check, events, count) < min_time:
            count *= 2
        loops.append(count)
    best = [float("inf")] * len(checks)
    for _ in range(repeats):
        for index, check in enumerate(checks):
            best[index] = min(best[index], _batch(check, events, loops[index]))
    return [count * len(events) / elapsed for count, elapsed in zip(loops, best, strict=True)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    args = parser.parse_args()
    min_time, repeats = (0.02, 2) if args.quick else (0.1, 7)
    events = make_events(1000)

    print(
        f"CESQL benchmark - Python {platform.python_version()} on {platform.machine()}, "
        f"{len(events)} events, best of {repeats}"
    )
    header = (
        f"{'case':<27} {'exact ev/s':>12} {'matches ev/s':>13} {'ratio':>6} "
        f"{'evaluate ev/s':>14} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    verdict = 0
    for label, text, spec in CASES:
        expression = compile_expression(text)
        checks = [make_exact_filter(spec), expression.matches, expression.evaluate]
        exact_rate, matches_rate, evaluate_rate = rates(checks, events, min_time, repeats)
        matches_ratio = exact_rate / matches_rate
        evaluate_ratio = exact_rate / evaluate_rate
        print(
            f"{label:<27} {exact_rate:>12,.0f} {matches_rate:>13,.0f} {matches_ratio:>5.2f}x "
            f"{evaluate_rate:>14,.0f} {evaluate_ratio:>5.2f}x"
        )
        if text == THREE_COMPARISONS and matches_ratio > BUDGET:
            verdict = 1
    print()
    print("ratio = cost of the CESQL filter / cost of the exact filter (lower is better)")
    print(f"budget: {THREE_COMPARISONS!r} <= {BUDGET:.0f}x exact -> {'FAIL' if verdict else 'OK'}")
    return verdict


if __name__ == "__main__":
    sys.exit(main())
