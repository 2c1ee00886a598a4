"""No replica outlives ``eventing``: not after SIGTERM, and not after ``kill -9`` of the
parent (the guardian ends them; see eventing/workloads/guardian.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.support.mesh import wait_until
from tests.support.process import EventingProcess, alive, post_events

pytestmark = pytest.mark.e2e
REPLICA = str(Path(__file__).resolve().parents[1] / "support" / "replica_app.py")


def manifests(tmp_path: Path, pid_dir: Path) -> Path:
    directory = tmp_path / "manifests"
    directory.mkdir()
    (directory / "system.yaml").write_text(f"""apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {{name: default}}
---
apiVersion: eventing.local/v1alpha1
kind: Workload
metadata: {{name: worker}}
spec:
  command: ["{sys.executable}", "{REPLICA}"]
  env: [{{name: PID_DIR, value: "{pid_dir}"}}, {{name: WORK_SECONDS, value: "0.5"}}]
  readiness: {{httpGet: {{path: /healthz}}}}
  scaling: {{minReplicas: 3, maxReplicas: 3}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: jobs}}
spec:
  broker: default
  subscriber: {{ref: {{apiVersion: eventing.local/v1alpha1, kind: Workload, name: worker}}}}
""")
    return directory


async def started_replicas(proc: EventingProcess, pid_dir: Path) -> list[int]:
    await wait_until(lambda: len(os.listdir(pid_dir)) == 3, 60, "3 replicas")
    pids = [int(name) for name in os.listdir(pid_dir)]
    # keep them busy so a graceful stop has something to drain
    await post_events(proc.url(), [f"e{n}" for n in range(6)], "job")
    return pids


@pytest.mark.parametrize("how", ["kill -9", "SIGTERM"])
async def test_no_replica_survives_eventing(tmp_path: Path, how: str) -> None:
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    proc = EventingProcess(manifests(tmp_path, pid_dir), tmp_path / "data")
    await proc.start()
    try:
        pids = await started_replicas(proc, pid_dir)
        assert all(alive(pid) for pid in pids)
    finally:
        if how == "kill -9":
            await proc.kill()
        else:
            assert await proc.terminate(60) == 0
    await wait_until(lambda: not any(alive(pid) for pid in pids), 30, "replicas gone")
