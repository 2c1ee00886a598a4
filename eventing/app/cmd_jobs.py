"""``eventing jobs list|logs|cancel``: the jobs a job workload ran (``spec.jobs``).

Reads the data directory the running system writes (:mod:`sinks.jobstore`), so it
works while the system runs and after it stopped; ``cancel`` signals the job's process
group, and the running system then reports the job as cancelled (not retried).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from sinks import jobstore


def add_parser(sub: Any) -> None:
    jobs = sub.add_parser("jobs", help="jobs run by workloads with 'jobs' (one per event)")
    actions = jobs.add_subparsers(metavar="ACTION")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir", type=Path, default=Path(".eventing"), help="default .eventing"
    )
    ls = actions.add_parser("list", parents=[common], help="jobs kept, oldest first")
    ls.add_argument("--workload", help="only this workload (namespace/name)")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=list_jobs)
    logs = actions.add_parser("logs", parents=[common], help="a job's output")
    logs.add_argument("id")
    logs.set_defaults(func=job_logs)
    cancel = actions.add_parser("cancel", parents=[common], help="stop a running job")
    cancel.add_argument("id")
    cancel.set_defaults(func=cancel_job)


def list_jobs(args: argparse.Namespace) -> int:
    found = jobstore.list_jobs(args.data_dir, args.workload)
    if args.json:
        print(json.dumps([s.as_dict() for s in found], indent=2))
        return 0
    print(f"{'JOB':<44} {'STATE':<10} {'EXIT':>4} {'SECONDS':>8}  {'STARTED':<20} EVENT")
    for s in found:
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(s.started))
        code = "-" if s.exit_code is None else str(s.exit_code)
        took = "-" if s.duration_seconds is None else f"{s.duration_seconds:.1f}"
        print(f"{s.id:<44} {s.state:<10} {code:>4} {took:>8}  {started:<20} {s.event_id}")
    return 0


def job_logs(args: argparse.Namespace) -> int:
    job_dir = jobstore.find_job(args.data_dir, args.id)
    if job_dir is None:
        print(f"eventing jobs: no job {args.id}", file=sys.stderr)
        return 1
    with contextlib.suppress(FileNotFoundError):
        sys.stdout.buffer.write((job_dir / "output.log").read_bytes())
    sys.stdout.flush()
    return 0


def cancel_job(args: argparse.Namespace) -> int:
    message = jobstore.cancel(args.data_dir, args.id)
    print(message)
    return 0 if message.endswith("cancel requested") else 1
