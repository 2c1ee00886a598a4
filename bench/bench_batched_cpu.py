"""CPU per delivered event on the batched path (not a test): ``eventing run`` with one
trigger to the lean subscriber, ``wrk -c8`` posting batches of 100 events for a few
seconds, CPU of the main process and of the ingress worker read from /proc over the
phase and its drain, divided by the events delivered. With ``--against TREE`` it
alternates rounds of another source tree (before) and this checkout (after) and prints
the ratio of the medians: a before/after in one run. (The ingress worker, a process
the main one starts with ``python -m``, comes from this checkout on both sides: compare
the main process.)

    .venv/bin/python bench/bench_batched_cpu.py [--rounds 4] [--seconds 10] [--against TREE]

Make TREE with ``mkdir /tmp/before && git archive COMMIT | tar -x -C /tmp/before``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pipeline import PAYLOAD, ROOT, WRK_BATCH, batched_phase, manifests, wrk_missing


def batch_script() -> str:
    events = [
        {
            "specversion": "1.0",
            "id": f"b-{i}",
            "source": "/bench",
            "type": "bench.event",
            "datacontenttype": "application/json",
            "data": json.loads(PAYLOAD),
        }
        for i in range(100)
    ]
    return WRK_BATCH % json.dumps(events)


def one_round(tree: str | None, seconds: int) -> dict[str, float]:
    runner = [str(ROOT / "bench" / "run_tree.py"), tree] if tree else []
    _, delivered, cpu = batched_phase(
        manifests, batch_script(), seconds, runner=runner, workers=True,
        prefix="eventing-batched-cpu-",
    )  # fmt: skip
    return {"delivered/s": delivered, **cpu}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--against", metavar="TREE", help="another source tree (before)")
    args = parser.parse_args()
    if wrk_missing():
        return 2
    sides = [("before", args.against), ("after", None)] if args.against else [("this", None)]
    rows: dict[str, list[dict[str, float]]] = {name: [] for name, _ in sides}
    for n in range(args.rounds):
        for name, tree in sides:
            row = one_round(tree, args.seconds)
            rows[name].append(row)
            load = os.getloadavg()[0]
            cells = "  ".join(f"{k} {v:,.1f}" for k, v in row.items())
            print(f"round {n + 1} {name:<6} {cells}  (load {load:.1f})", flush=True)
    print("\nmedians (CPU in microseconds per delivered event):")
    medians = {
        name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in rows.items()
    }
    for name, values in medians.items():
        print(f"  {name:<6} " + "  ".join(f"{k} {v:,.1f}" for k, v in values.items()))
    if args.against:
        before, after = medians["before"], medians["after"]
        ratio = after["main"] / before["main"]
        print(f"\nratio after / before, main process CPU per event: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
