"""No job outlives ``eventing``: a running job (``spec.jobs``) is stopped by the orphan
guardian after ``kill -9`` of eventing, and by the dispatch being cancelled on SIGTERM."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.support.mesh import wait_until
from tests.support.process import EventingProcess, alive, post_events

pytestmark = pytest.mark.e2e

JOB = """import os, time
open(os.path.join(os.environ["PID_DIR"], str(os.getpid())), "w").close()
time.sleep(600)
"""


def manifests(tmp_path: Path, pid_dir: Path) -> Path:
    script = tmp_path / "job.py"
    script.write_text(JOB)
    directory = tmp_path / "manifests"
    directory.mkdir()
    (directory / "system.yaml").write_text(f"""apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {{name: default}}
---
apiVersion: eventing.local/v1alpha1
kind: Workload
metadata: {{name: build}}
spec:
  command: ["{sys.executable}", "{script}"]
  env: [{{name: PID_DIR, value: "{pid_dir}"}}]
  jobs: {{parallelism: 2}}
  timeoutSeconds: 900
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: builds}}
spec:
  broker: default
  subscriber: {{ref: {{apiVersion: eventing.local/v1alpha1, kind: Workload, name: build}}}}
""")
    return directory


@pytest.mark.parametrize("how", ["kill -9", "SIGTERM"])
async def test_no_job_survives_eventing(tmp_path: Path, how: str) -> None:
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    proc = EventingProcess(manifests(tmp_path, pid_dir), tmp_path / "data")
    await proc.start()
    try:
        await post_events(proc.url(), ["b0", "b1"], "push")
        await wait_until(lambda: len(os.listdir(pid_dir)) == 2, 60, "2 running jobs")
        pids = [int(name) for name in os.listdir(pid_dir)]
        assert all(alive(pid) for pid in pids)
    finally:
        if how == "kill -9":
            await proc.kill()
        else:
            await proc.terminate(60)
    await wait_until(lambda: not any(alive(pid) for pid in pids), 30, "jobs gone")
