"""Live reload: ``eventing run DIR`` (a subprocess) applies edited manifests while
events flow, and no accepted event is lost.

A sender posts events of types a, b, c, w without pause and records each 202 with the
phase it was accepted in. Each change is a file edit; the test waits (with a deadline,
no sleeps) until ``/v1/status`` shows it applied, and events accepted in between
(while the change was on its way) may go either way. At the end every trigger's id
set is checked against what it matched at acceptance time.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

from tests.support.live import (
    Sender,
    delivered,
    reported,
    status,
    triggers,
    until,
    wait_status,
    write,
)
from tests.support.process import EventingProcess
from tests.support.subscriber import RecordingSubscriber

REPLICA = Path(__file__).parent.parent / "support" / "replica_app.py"

BROKER = """apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: default}
"""


def trigger(name: str, type_: str, url: str) -> str:
    return f"""apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: {name}}}
spec:
  broker: default
  filters: [{{exact: {{type: {type_}}}}}]
  subscriber: {{uri: "{url}"}}
"""


def workload(report_url: str) -> str:
    return f"""apiVersion: eventing.local/v1alpha1
kind: Workload
metadata: {{name: worker}}
spec:
  command: ["{sys.executable}", "{REPLICA}"]
  env:
    - {{name: REPORT_URL, value: "{report_url}"}}
  readiness: {{httpGet: {{path: /healthz}}}}
  scaling: {{minReplicas: 1, maxReplicas: 2, concurrencyPerReplica: 4}}
  terminationGracePeriodSeconds: 5
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: tw}}
spec:
  broker: default
  filters: [{{exact: {{type: w}}}}]
  subscriber: {{ref: {{apiVersion: eventing.local/v1alpha1, kind: Workload, name: worker}}}}
"""


async def test_directory_watch_applies_changes_live(tmp_path: Path) -> None:
    sub = RecordingSubscriber()
    await sub.start()
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    write(manifests / "broker.yaml", BROKER)
    write(manifests / "ta.yaml", trigger("ta", "a", f"{sub.url}/a"))
    proc = EventingProcess(
        manifests, tmp_path / "data", "--watch-interval", "0.2", "--drain-timeout", "5"
    )
    await proc.start()
    sender = Sender(proc.url())
    task = asyncio.create_task(sender.run())
    admin = proc.admin_url
    try:
        sender.phase = "p0"
        await sender.wait_more()

        # 1. A new trigger starts delivering (the events accepted once it is ready).
        sender.phase = "t-add-b"
        write(manifests / "tb.yaml", trigger("tb", "b", f"{sub.url}/b"))
        await wait_status(admin, lambda s: "default/tb" in triggers(s))
        sender.phase = "p1"
        await sender.wait_more()

        # 2. Filter and subscriber of ta change together; its backlog is kept.
        sender.phase = "t-change-a"
        write(manifests / "ta.yaml", trigger("ta", "c", f"{sub.url}/a2"))
        await wait_status(admin, lambda s: triggers(s)["default/ta"]["subscriber"].endswith("/a2"))
        sender.phase = "p2"
        await sender.wait_more()

        # 3. A Workload and its trigger are created, then the Workload's env changes.
        sender.phase = "t-add-w"
        write(manifests / "worker.yaml", workload(f"{sub.url}/w1"))
        await wait_status(
            admin,
            lambda s: (
                "default/tw" in triggers(s)
                and any(w["name"] == "default/worker" and w["ready"] for w in s["workloads"])
            ),
        )
        sender.phase = "p3"
        await sender.wait_more()
        sender.phase = "t-change-w"
        applied = (await status(admin))["reconcile"]["applied"]
        write(manifests / "worker.yaml", workload(f"{sub.url}/w2"))
        await wait_status(admin, lambda s: s["reconcile"]["applied"] > applied)
        sender.phase = "p4"
        await sender.wait_more()

        # 4. tb is deleted once what it had matched was delivered: it stops.
        await until(lambda: sender.ids("b", {"p1", "p2", "p3", "p4"}) <= delivered(sub, "/b"),
                    "tb caught up")  # fmt: skip
        sender.phase = "t-delete-b"
        (manifests / "tb.yaml").unlink()
        await wait_status(admin, lambda s: "default/tb" not in triggers(s))
        sender.phase = "p5"
        await sender.wait_more()

        # 5. A broken file: validate's message in status; ta keeps its last good version.
        broken = trigger("ta", "c", f"{sub.url}/a2").replace("broker: default", "broker: [x]")
        sender.phase = "t-broken"
        write(manifests / "ta.yaml", broken)
        body = await wait_status(admin, lambda s: bool(s["reconcile"]["rejected"]))
        sender.phase = "p6"
        validate = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "eventing.app.cli",
            "validate",
            str(manifests),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        said = (await asyncio.wait_for(validate.communicate(), 60))[0].decode()
        assert validate.returncode != 0
        shown = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "eventing.app.cli", "status", "--admin", admin,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        table = (await asyncio.wait_for(shown.communicate(), 60))[0].decode()
        [rejected] = body["reconcile"]["rejected"]
        assert rejected["unit"] == str(manifests / "ta.yaml")
        for message in rejected["messages"]:
            assert message in said
            assert message in table
        assert "default/ta" in triggers(body)
        await sender.wait_more()

        # 6. The Workload and its trigger are deleted: replicas stop.
        sender.phase = "t-delete-w"
        (manifests / "worker.yaml").unlink()
        await wait_status(
            admin,
            lambda s: (
                "default/tw" not in triggers(s)
                and not any(w["name"] == "default/worker" for w in s["workloads"])
            ),
        )
        sender.phase = "p7"
        await sender.wait_more()
    finally:
        sender.stopped = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)

    try:
        phases = list(dict.fromkeys(p for _, _, p in sender.accepted))  # in order

        def span(first: str, last: str | None, *, inclusive: bool) -> set[str]:
            """Phases from ``first`` to ``last`` (None: the end); without the two
            transitions unless ``inclusive``."""
            i = phases.index(first)
            j = phases.index(last) if last is not None else len(phases) - 1
            inner = phases[i + 1 : j] if last is not None else phases[i + 1 :]
            return {*inner, first, *([last] if last else [])} if inclusive else set(inner)

        def got(*paths: str) -> set[str]:
            return set().union(*(delivered(sub, p) for p in paths))

        def done(*paths: str) -> set[str]:
            return set().union(*(reported(sub, p) for p in paths))

        stable_a = set(phases[: phases.index("t-change-a")])
        stable_c = span("t-change-a", None, inclusive=False)
        stable_b = span("t-add-b", "t-delete-b", inclusive=False)
        stable_w = span("t-add-w", "t-delete-w", inclusive=False)
        stable_w2 = span("t-change-w", "t-delete-w", inclusive=False)
        # Every event each trigger matched at acceptance is delivered (a stays in ta's
        # backlog across the change of subscriber: /a or /a2).
        await until(lambda: sender.ids("a", stable_a) <= got("/a", "/a2"), "ta's old filter")
        await until(lambda: sender.ids("c", stable_c) <= delivered(sub, "/a2"), "ta's new filter")
        await until(lambda: sender.ids("b", stable_b) <= delivered(sub, "/b"), "tb")
        await until(lambda: sender.ids("w", stable_w) <= done("/w1", "/w2"), "tw")
        await until(lambda: sender.ids("w", stable_w2) <= reported(sub, "/w2"), "tw changed")
        # ... and never one it did not match.
        a_window = {*stable_a, "t-change-a"}
        c_window = {"t-change-a", *stable_c}
        got_a = delivered(sub, "/a") | delivered(sub, "/a2")
        assert got_a <= sender.ids("a", a_window) | sender.ids("c", c_window)
        assert delivered(sub, "/a") <= sender.ids("a", a_window)
        b_window = span("t-add-b", "t-delete-b", inclusive=True)
        assert delivered(sub, "/b") <= sender.ids("b", b_window)
        w_window = span("t-add-w", "t-delete-w", inclusive=True)
        assert reported(sub, "/w1") | reported(sub, "/w2") <= sender.ids("w", w_window)
        assert not sender.ids("w", stable_w2) & reported(sub, "/w1")
        assert sender.ids("c", stable_c)
        assert sender.ids("b", stable_b)
    finally:
        await proc.terminate(30)
        await sub.stop()
