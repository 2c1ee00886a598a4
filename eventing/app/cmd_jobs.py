"""``eventing jobs list|logs|cancel``: the jobs a job workload ran (``spec.jobs``).

Local jobs: reads the data directory the running system writes (:mod:`sinks.jobstore`),
so it works while the system runs and after it stopped; ``cancel`` signals the job's
process group, and the running system then reports the job as cancelled (not retried).

With ``--kubernetes``: the Jobs of workloads with a ``jobTemplate``, from the API
server (:mod:`eventing.kube.jobsview`); ``cancel`` deletes the Job.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from eventing.kube import jobsview
from eventing.kube.api import KubeApi, KubeError
from sinks import jobstore


def add_parser(sub: Any) -> None:
    jobs = sub.add_parser("jobs", help="jobs run by workloads with 'jobs' (one per event)")
    actions = jobs.add_subparsers(metavar="ACTION")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir", type=Path, default=Path(".eventing"), help="default .eventing"
    )
    common.add_argument(
        "--kubernetes",
        action="store_true",
        help="Kubernetes Jobs of workloads with a jobTemplate, from the API server",
    )
    common.add_argument("--kubeconfig", help="with --kubernetes (default: as kubectl)")
    common.add_argument(
        "-n", "--namespace", help="with --kubernetes: this namespace (list: default all)"
    )
    ls = actions.add_parser("list", parents=[common], help="jobs kept, oldest first")
    ls.add_argument("--workload", help="only this workload (namespace/name)")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=list_jobs)
    logs = actions.add_parser("logs", parents=[common], help="a job's output")
    logs.add_argument("id", help="job id; with --kubernetes the Job's name or namespace/name")
    logs.set_defaults(func=job_logs)
    cancel = actions.add_parser("cancel", parents=[common], help="stop a running job")
    cancel.add_argument("id")
    cancel.set_defaults(func=cancel_job)


def list_jobs(args: argparse.Namespace) -> int:
    if getattr(args, "kubernetes", False):
        with _api(args) as api:
            if api is None:
                return 1
            try:
                rows = jobsview.list_jobs(api, args.namespace, args.workload)
            except KubeError as exc:
                print(f"eventing jobs: {exc}", file=sys.stderr)
                return 1
    else:
        found = jobstore.list_jobs(args.data_dir, args.workload)
        rows = [s.as_dict() for s in found]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'JOB':<44} {'STATE':<10} {'EXIT':>4} {'SECONDS':>8}  {'STARTED':<20} EVENT")
    for s in rows:
        started = "-"
        if s["started"] is not None:
            started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(s["started"]))
        code = "-" if s["exit_code"] is None else str(s["exit_code"])
        took = "-" if s["duration_seconds"] is None else f"{s['duration_seconds']:.1f}"
        print(f"{s['id']:<44} {s['state']:<10} {code:>4} {took:>8}  {started:<20} {s['event_id']}")
    return 0


def job_logs(args: argparse.Namespace) -> int:
    if getattr(args, "kubernetes", False):
        with _api(args) as api:
            if api is None:
                return 1
            namespace, name = _job_ref(args)
            try:
                out, problem = jobsview.logs(api, namespace, name)
            except KubeError as exc:
                out, problem = b"", str(exc)
        sys.stdout.buffer.write(out)
        sys.stdout.flush()
        if problem is not None:
            print(f"eventing jobs: {problem}", file=sys.stderr)
            return 1
        return 0
    job_dir = jobstore.find_job(args.data_dir, args.id)
    if job_dir is None:
        print(f"eventing jobs: no job {args.id}", file=sys.stderr)
        return 1
    with contextlib.suppress(FileNotFoundError):
        sys.stdout.buffer.write((job_dir / "output.log").read_bytes())
    sys.stdout.flush()
    return 0


def cancel_job(args: argparse.Namespace) -> int:
    if getattr(args, "kubernetes", False):
        with _api(args) as api:
            if api is None:
                return 1
            message = jobsview.cancel(api, *_job_ref(args))
    else:
        message = jobstore.cancel(args.data_dir, args.id)
    print(message)
    return 0 if "cancel requested" in message else 1


def _job_ref(args: argparse.Namespace) -> tuple[str, str]:
    namespace, _, name = str(args.id).rpartition("/")
    return namespace or args.namespace or "default", name


@contextlib.contextmanager
def _api(args: argparse.Namespace) -> Any:
    try:
        api = KubeApi.connect(args.kubeconfig)
    except KubeError as exc:
        print(f"eventing jobs: {exc}", file=sys.stderr)
        yield None
        return
    try:
        yield api
    finally:
        api.close()
