"""A workload replica sees only the environment its manifest asks for, plus ``PORT``,
``K_SERVICE`` and what a process needs to run: never eventing's secrets (issue 11,
defect 7)."""

from __future__ import annotations

import asyncio
import json
import sys

import pytest

from eventing.workloads.replica import Replica, ReplicaConfig

PRINT_ENV = "import json, os; print(json.dumps(dict(os.environ)))"


async def test_a_replica_does_not_inherit_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTING_SECRET_GH_TOKEN", "do-not-leak")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "do-not-leak")
    monkeypatch.setenv("EVENTING_SECRET_ASKED_FOR", "shared")
    lines: list[str] = []
    exited = asyncio.Event()
    config = ReplicaConfig(
        workload="default/printer",
        command=[sys.executable, "-c", PRINT_ENV],
        env={"GREETING": "hello", "EVENTING_SECRET_ASKED_FOR": "given"},
    )
    replica = Replica(config, 1, on_exit=lambda _: exited.set(), output=lines.append)
    await replica.start()
    async with asyncio.timeout(30):
        await exited.wait()
        for task in replica._tasks:  # the output pumps end with the process's pipes
            await task
    env = json.loads(lines[0].split("] ", 1)[1])
    assert "EVENTING_SECRET_GH_TOKEN" not in env
    assert "AWS_SECRET_ACCESS_KEY" not in env
    assert env["EVENTING_SECRET_ASKED_FOR"] == "given"  # what the manifest names, it gets
    assert env["GREETING"] == "hello"
    assert env["PORT"] == str(replica.port)
    assert env["K_SERVICE"] == "printer"
    assert "PATH" in env
