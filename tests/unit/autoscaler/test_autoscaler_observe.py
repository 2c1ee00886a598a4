"""ScalingSpec validation, Observations, MetricSample folding and the recorder."""

from __future__ import annotations

import inspect

import pytest

from eventing.autoscaler import (
    DeciderState,
    MetricSample,
    ObservationRecorder,
    Observations,
    ScalingSpec,
    decide,
    fold_sample,
)
from eventing.errors import ConfigError


def test_spec_defaults() -> None:
    spec = ScalingSpec()
    assert (spec.min_replicas, spec.max_replicas, spec.activation_threshold) == (0, 100, 0.0)
    assert spec.keep_alive == "adaptive"
    assert spec.scale_to_zero_after == 60.0
    assert spec.keep_alive_max == 300.0
    assert spec.polling_interval is None
    assert spec.scales_to_zero


def test_every_knob_documents_its_yaml_name() -> None:
    text = inspect.getsource(ScalingSpec)
    for yaml_name in (
        "minReplicas",
        "maxReplicas",
        "concurrencyPerReplica",
        "targetUtilization",
        "targetPerReplica",
        "activationThreshold",
        "stabilizationWindowSeconds",
        "drainHorizonSeconds",
        "keepAlive",
        "cooldownPeriod",
        "maxKeepAliveSeconds",
        "coldStartCostSeconds",
        "pollingInterval",
        "minReplicaCount",
        "maxReplicaCount",
        "activationValue",
        "lagThreshold",
        "queueLength",
    ):
        assert yaml_name in text, yaml_name


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_replicas": -1}, "minReplicas must be >= 0"),
        ({"min_replicas": 5, "max_replicas": 3}, "maxReplicas must be >= max(1, minReplicas=5)"),
        ({"concurrency_per_replica": 0}, "concurrencyPerReplica must be >= 1"),
        ({"target_utilization": 0.0}, "targetUtilization must be in (0, 1]"),
        ({"target_utilization": 1.5}, "targetUtilization must be in (0, 1]"),
        ({"target_per_replica": 0.0}, "targetPerReplica must be > 0"),
        ({"scale_to_zero_after": -1.0}, "cooldownPeriod must be a finite number >= 0"),
        ({"drain_horizon": 0.0}, "drainHorizonSeconds must be > 0"),
        ({"keep_alive": "sometimes"}, "keepAlive must be 'fixed' or 'adaptive'"),
    ],
)
def test_spec_validation_names_the_yaml_field(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        ScalingSpec(**kwargs)  # type: ignore[arg-type]
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("value", "includes_in_flight", "in_flight", "backlog"),
    [
        (120.0, False, 0, 120),
        (120.0, True, 20, 100),  # RabbitMQ 'messages' counts our unacked events
        (5.0, True, 8, 0),
        (0.5, False, 0, 1),  # fractional lag still means work
        (0.0, False, 0, 0),
        (-3.0, False, 0, 0),
    ],
)
def test_fold_sample_sets_backlog(
    value: float, includes_in_flight: bool, in_flight: int, backlog: int
) -> None:
    obs = Observations(in_flight=in_flight, ready=1)
    folded = fold_sample(
        obs, MetricSample(value, active=value > 0), includes_in_flight=includes_in_flight
    )
    assert folded.backlog == backlog
    assert folded.source_active is (value > 0)
    assert folded.in_flight == in_flight


def test_fold_sample_rejects_nan() -> None:
    with pytest.raises(ValueError, match="finite"):
        fold_sample(Observations(), MetricSample(float("nan"), True), includes_in_flight=False)


def test_folded_sample_drives_activation() -> None:
    obs = fold_sample(Observations(), MetricSample(3.0, active=True), includes_in_flight=False)
    d = decide(ScalingSpec(), obs, 0.0, DeciderState())
    assert d.replicas == 3
    assert d.reason.startswith("activate 0 -> 3")


def snapshot(
    rec: ObservationRecorder, now: float, backlog: int = 0, in_flight: int = 0
) -> Observations:
    return rec.snapshot(now, backlog=backlog, in_flight=in_flight, starting=0, ready=1, draining=0)


def test_recorder_arrival_rate_over_the_window() -> None:
    rec = ObservationRecorder(concurrency=1)
    for i in range(400):  # 10 events/s for 40 s
        rec.arrival(i / 10, work_before=1)
    assert snapshot(rec, 40.0).arrival_rate == pytest.approx(10.0, rel=0.05)
    # Later the window reaches back to the last 50 arrivals (35-40 s), so a rate is
    # never counted over fewer: 50 events over the 65 s since.
    assert snapshot(rec, 100.0).arrival_rate == pytest.approx(50 / 65, rel=0.05)
    assert snapshot(rec, 2000.0).arrival_rate == 0.0  # past the longest window (30 min)


def test_recorder_rate_window_grows_with_the_service_time() -> None:
    rec = ObservationRecorder(concurrency=1)
    for i in range(400):  # 10 events/s for 40 s
        rec.arrival(i / 10, work_before=1)
    rec.completion(40.0, service_time=100.0, work_after=1)  # jobs take 100 s
    # 4 service times = 400 s: the 400 events of the first 40 s still count.
    assert rec.rate_window(200.0) == pytest.approx(400.0)
    assert snapshot(rec, 200.0).arrival_rate == pytest.approx(400 / 400, rel=0.05)


def test_recorder_sees_a_surge_within_seconds() -> None:
    rec = ObservationRecorder(concurrency=1)
    for i in range(60):  # 2/s for 30 s
        rec.arrival(i / 2, work_before=1)
    calm = snapshot(rec, 30.0).arrival_rate
    for i in range(300):  # then 100/s for 3 s
        rec.arrival(30.0 + i / 100, work_before=1)
    surge = snapshot(rec, 33.0).arrival_rate
    assert calm == pytest.approx(2.0, rel=0.1)
    assert surge > 50.0


def test_recorder_service_rate_and_startup() -> None:
    rec = ObservationRecorder(concurrency=4)
    assert snapshot(rec, 0.0).service_rate is None
    assert snapshot(rec, 0.0).startup_time is None
    for _ in range(10):
        rec.completion(1.0, service_time=0.5, work_after=3)
    rec.replica_ready(2.0)
    obs = snapshot(rec, 1.0)
    assert obs.service_rate == pytest.approx(8.0)  # 4 slots / 0.5 s
    assert obs.startup_time == 2.0


def test_recorder_idle_gaps_and_last_activity() -> None:
    rec = ObservationRecorder(concurrency=1, min_idle_gap=1.0)
    rec.arrival(0.0, work_before=0)
    rec.completion(2.0, service_time=2.0, work_after=0)
    assert snapshot(rec, 5.0).last_activity == 2.0
    assert snapshot(rec, 5.0, backlog=1).last_activity == 5.0  # busy: now
    rec.arrival(12.0, work_before=0)  # 10 s gap
    rec.completion(13.0, service_time=1.0, work_after=0)
    rec.arrival(13.5, work_before=0)  # 0.5 s: not an idle period
    rec.arrival(13.6, work_before=1)  # not idle at all
    obs = snapshot(rec, 14.0)
    assert obs.idle_gaps == (10.0,)
    assert obs.last_arrival == 13.6


def test_recorder_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        ObservationRecorder(concurrency=0)
    with pytest.raises(ValueError, match="rate_window"):
        ObservationRecorder(concurrency=1, rate_window=0)
