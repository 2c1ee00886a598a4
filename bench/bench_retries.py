"""Retry-heavy delivery benchmark (not a test): every event's first attempt fails.

Batched ingress (100 events per request, every id unique) -> one trigger -> the
``flaky`` subscriber of ``bench_servers.py``, which answers 500 to the first attempt of
each event id and 202 to the second; the trigger retries after ``backoffDelay``
(50 ms, exponential, with the default jitter). Prints accepted and delivered events/s
and the CPU microseconds per delivered event of the main process (all its threads),
over the phase and its drain: the cost of a delivery that needs one retry.

    .venv/bin/python bench/bench_retries.py [--seconds 8] [--rounds 1]

To compare two source trees, run each tree's copy through ``bench/run_tree.py`` (the
``eventing run`` process imports from the tree the script lives in), alternating.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_pipeline import batched_phase, wrk_missing

# Each request a new batch: the counter goes into every id (no id seen twice).
WRK_UNIQUE = """
local template = [=[%s]=]
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/cloudevents-batch+json"
request = function()
  i = i + 1
  return wrk.format(nil, nil, nil, (template:gsub("@", tostring(i))))
end
"""


def wrk_script() -> str:
    events = [
        {
            "specversion": "1.0",
            "id": f"r@-{k}",
            "source": "/retry",
            "type": "bench.event",
            "datacontenttype": "application/json",
            "data": {"n": k},
        }
        for k in range(100)
    ]
    return WRK_UNIQUE % json.dumps(events, separators=(",", ":"))


def manifests(directory: Path, sub_url: str) -> None:
    (directory / "retries.yaml").write_text(f"""apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {{name: default}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: flaky}}
spec:
  broker: default
  subscriber: {{uri: "{sub_url}/events"}}
  delivery: {{retry: 3, backoffPolicy: exponential, backoffDelay: PT0.05S}}
""")


def measure(seconds: int) -> tuple[float, float, float]:
    """(accepted ev/s, delivered ev/s, main process CPU us per delivered event)."""
    accepted, delivered, cpu = batched_phase(
        manifests, wrk_script(), seconds, subscriber="flaky", prefix="eventing-retries-"
    )
    return accepted, delivered, cpu["main"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    if wrk_missing():
        return 2
    print(f"\nretry-heavy: batched ingress (100/request, wrk -c8 -d{args.seconds}s), every")
    print("event's first attempt answered 500, the retry 202")
    print(f"{'round':>5} {'accepted/s':>11} {'delivered/s':>12} {'main us/ev':>11}")
    for n in range(args.rounds):
        accepted, delivered, cpu = measure(args.seconds)
        print(f"{n + 1:>5} {accepted:>11,.0f} {delivered:>12,.0f} {cpu:>11.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
