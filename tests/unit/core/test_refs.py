"""``validate`` and ``run`` resolve refs with one function, so they agree: each case is
loaded as ``eventing validate`` loads it and built as ``eventing run`` builds it, and
both must accept it (with the same sink) or both refuse it with the same message."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from eventing.app.registry import kind_registry
from eventing.app.system import StoreSettings, build_system
from eventing.errors import ConfigError
from eventing.metrics import Metrics
from eventing.resources.loader import LoadError, ResourceSet, load_resources
from eventing.resources.refs import Platform

HEAD = """apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: default}
---
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: other}
---
apiVersion: eventing.local/v1alpha1
kind: Workload
metadata: {name: local}
spec: {command: ["true"]}
---
apiVersion: eventing.local/v1alpha1
kind: Workload
metadata: {name: deploy}
spec: {scaleTargetRef: {name: web}, url: "http://127.0.0.1:9/x"}
---
apiVersion: eventing.local/v1alpha1
kind: Workload
metadata: {name: mute}
spec: {scaleTargetRef: {name: web}}
---
apiVersion: eventing.local/v1alpha1
kind: Workload
metadata: {name: kjob}
spec:
  jobs: {}
  jobTemplate: {spec: {template: {spec: {containers: [{name: c, image: i}]}}}}
---
apiVersion: sinks.knative.dev/v1alpha1
kind: JobSink
metadata: {name: knjob}
spec:
  job: {spec: {template: {spec: {containers: [{name: c, image: i}]}}}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: t}
spec:
  broker: default
"""

ONE = Platform()
K8S = Platform(kubernetes=True)

CASES = [
    # (id, trigger spec tail, platform, sink target or error fragment)
    ("broker", "subscriber: {ref: {kind: Broker, name: other}}", ONE, "broker:default/other"),
    ("missing-broker", "subscriber: {ref: {kind: Broker, name: nope}}", ONE, "!no Broker named"),
    ("workload", "subscriber: {ref: {kind: Workload, name: local}}", ONE, "workload:default/local"),
    ("k8s-workload", "subscriber: {ref: {kind: Workload, name: deploy}}", ONE, "workload:"),
    ("no-address", "subscriber: {ref: {kind: Workload, name: mute}}", ONE, "!names no address"),
    (
        "service-here",
        "subscriber: {ref: {apiVersion: v1, kind: Service, name: web}}",
        ONE,
        "!cannot be resolved on one machine",
    ),
    (
        "service-k8s",
        "subscriber: {ref: {apiVersion: v1, kind: Service, name: web}}",
        K8S,
        "http://web.default.svc.cluster.local/",
    ),
    (
        "ksvc-k8s",
        "subscriber: {ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: b}, "
        "uri: /build}",
        K8S,
        "http://b.default.svc.cluster.local/build",
    ),
    (
        "ksvc-here",
        "subscriber: {ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: b}}",
        ONE,
        "!Knative Service cannot be resolved on one machine",
    ),
    ("job-k8s", "subscriber: {ref: {kind: Workload, name: kjob}}", K8S, "jobs:default/kjob"),
    (
        "job-here",
        "subscriber: {ref: {kind: Workload, name: kjob}}",
        ONE,
        "!runs a Kubernetes Job per event",
    ),
    (
        "jobsink-k8s",
        "subscriber: {ref: {apiVersion: sinks.knative.dev/v1alpha1, kind: JobSink, name: knjob}}",
        K8S,
        "jobs:default/knjob",
    ),
    ("configmap", "subscriber: {ref: {kind: ConfigMap, name: c}}", K8S, "!a ref may name"),
    (
        "dls-workload",
        "subscriber: {uri: 'log:'}\n  delivery: {deadLetterSink: {ref: {kind: Workload, "
        "name: local}}}",
        ONE,
        "!can only be a Trigger's subscriber",
    ),
    (
        "dls-broker",
        "subscriber: {uri: 'log:'}\n  delivery: {deadLetterSink: {ref: {kind: Broker, "
        "name: other}}}",
        ONE,
        "log:",
    ),
]


@pytest.mark.parametrize(
    ("tail", "platform", "expect"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
async def test_validate_and_run_agree(
    tmp_path: Path, tail: str, platform: Platform, expect: str
) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "all.yaml").write_text(HEAD + "  " + tail + "\n")
    registry = kind_registry()
    if expect.startswith("!"):
        with pytest.raises(LoadError, match=expect[1:]):
            load_resources(tmp_path / "m", registry, platform=platform)
        # run, handed the same documents without the loader's cross-checks, refuses
        # them with the same words
        unchecked = ResourceSet()
        for doc in yaml.safe_load_all((tmp_path / "m" / "all.yaml").read_text()):
            model = registry.models[(doc["apiVersion"], doc["kind"])]
            unchecked.resources.append(model.model_validate(doc))
        with pytest.raises(ConfigError, match=expect[1:]):
            await build_system(
                unchecked, StoreSettings(data_dir=tmp_path / "d", platform=platform), Metrics()
            )
        return
    resources = load_resources(tmp_path / "m", registry, platform=platform)
    system = await build_system(
        resources, StoreSettings(data_dir=tmp_path / "d", platform=platform), Metrics()
    )
    try:
        assert system.triggers["default/t"].sink.target.startswith(expect)
    finally:
        await system.close()


def test_validate_kubernetes_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from eventing.app import cli

    (tmp_path / "all.yaml").write_text(
        HEAD + "  subscriber: {ref: {apiVersion: v1, kind: Service, name: web}}\n"
    )
    assert cli.main(["validate", str(tmp_path)]) == 1
    assert "cannot be resolved on one machine" in capsys.readouterr().err
    assert cli.main(["validate", "--kubernetes", str(tmp_path)]) == 0


def test_a_jobsink_needs_kubernetes(tmp_path: Path) -> None:
    """A JobSink loads as the job Workload it stands for (a loader derivation, which
    ``run`` gets from the same loader), so one machine refuses it as it does that."""
    tail = "subscriber: {ref: {apiVersion: sinks.knative.dev/v1alpha1, kind: JobSink, name: knjob}}"
    (tmp_path / "all.yaml").write_text(HEAD + "  " + tail + "\n")
    with pytest.raises(LoadError, match="runs a Kubernetes Job per event"):
        load_resources(tmp_path, kind_registry(), platform=ONE)
    loaded = load_resources(tmp_path, kind_registry(), platform=K8S)
    assert any(r.kind == "Workload" and r.name == "knjob" for r in loaded.resources)
