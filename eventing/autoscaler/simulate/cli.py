"""``eventing simulate``: run traces through our policy, KEDA and Knative, print the table.

Why two functions and no parser of its own: the ``eventing`` CLI owns the command tree;
it calls :func:`add_arguments` on its ``simulate`` sub-parser and :func:`run` with the
parsed namespace. ``python -m eventing.autoscaler.simulate`` uses :func:`main`, which
does the same on a parser of its own.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, replace

import yaml

from eventing.autoscaler.simulate.profiles import PROFILES, Workload
from eventing.autoscaler.simulate.report import format_report, report_dict
from eventing.autoscaler.simulate.runner import POLICIES, run_matrix
from eventing.autoscaler.simulate.tracefile import TraceFileError, load_trace_file
from eventing.autoscaler.simulate.traces import BUILTIN, Trace, generate

DEFAULT_DURATION = 7200.0
DEFAULT_SEED = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``simulate`` options to ``parser``."""
    parser.add_argument(
        "--trace",
        action="append",
        metavar="NAME|FILE",
        help=(
            "a built-in trace (" + ", ".join(BUILTIN) + ") or a file of arrival times, one "
            "per line in seconds, optionally ',service_seconds'; repeatable (default: every "
            "built-in trace)"
        ),
    )
    parser.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default="process",
        help="replica startup times: local subprocess or Kubernetes pod (default: process)",
    )
    parser.add_argument(
        "--policy",
        action="append",
        choices=POLICIES,
        help="policies to run; repeatable (default: ours, keda and kpa)",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed (default: 1)")
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help=(
            f"length of built-in traces (default: {DEFAULT_DURATION:.0f}); a trace file runs "
            "at least until its last arrival"
        ),
    )
    parser.add_argument(
        "-o",
        "--output",
        choices=("table", "json", "yaml"),
        help="how to print the results: table (the default), json or yaml",
    )
    parser.add_argument("--json", action="store_true", help="short for --output json")


def _load_traces(names: Sequence[str] | None, seed: int, duration: float | None) -> list[Trace]:
    traces: list[Trace] = []
    for name in names or list(BUILTIN):
        if name in BUILTIN:
            traces.append(generate(name, seed, duration or DEFAULT_DURATION))
            continue
        trace = load_trace_file(name)
        if duration is not None and duration > trace.duration:
            trace = replace(trace, duration=duration)
        traces.append(trace)
    return traces


def run(args: argparse.Namespace) -> int:
    """Run the simulation described by ``args``; print the table (or JSON). Exit code."""
    if args.duration is not None and not args.duration > 0:
        print("eventing simulate: --duration must be > 0", file=sys.stderr)
        return 2
    try:
        traces = _load_traces(args.trace, args.seed, args.duration)
    except TraceFileError as exc:
        print(f"eventing simulate: {exc}", file=sys.stderr)
        return 2
    policies: list[str] = list(dict.fromkeys(args.policy or POLICIES))
    workload = Workload()
    results = run_matrix(traces, policies, profile=args.profile, seed=args.seed, workload=workload)
    output = getattr(args, "output", None) or ("json" if args.json else "table")
    if output != "table":
        doc = report_dict(results, profile=args.profile, seed=args.seed, workload=asdict(workload))
        if output == "yaml":
            print(yaml.safe_dump(doc, sort_keys=False), end="")
        else:
            print(json.dumps(doc, indent=2))
        return 0
    title = (
        f"eventing simulate: profile {args.profile} ({PROFILES[args.profile].description}); "
        f"seed {args.seed}; workload: {workload.concurrency} events at once per replica, "
        f"service lognormal median {workload.service_median:g} s sigma {workload.service_sigma:g}"
    )
    print(format_report(results, title=title))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m eventing.autoscaler.simulate``."""
    parser = argparse.ArgumentParser(
        prog="python -m eventing.autoscaler.simulate",
        description="Compare our autoscaling policy with KEDA and Knative KPA on traces.",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))
