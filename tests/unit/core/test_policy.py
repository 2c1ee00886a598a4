"""Knative's retry table and the backoff formulas (reference §5.3, §b.1)."""

from __future__ import annotations

import random

import pytest

from eventing.delivery.policy import RetryPolicy, is_retryable, parse_retry_after
from eventing.resources.delivery import DeliverySpec


@pytest.mark.parametrize(
    ("status", "retry"),
    [
        (None, True),
        (404, True),
        (408, True),
        (409, True),
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (599, True),
        (600, True),
        (99, True),
        (400, False),
        (401, False),
        (403, False),
        (405, False),
        (410, False),
        (413, False),
        (422, False),
        (301, False),
        (302, False),
        (101, False),
    ],
)
def test_retryable_statuses(status: int | None, retry: bool) -> None:
    assert is_retryable(status) is retry


def test_exponential_and_linear_backoff_without_jitter() -> None:
    exp = RetryPolicy(backoff_policy="exponential", backoff_delay=0.5, jitter=0)
    lin = RetryPolicy(backoff_policy="linear", backoff_delay=0.5, jitter=0)
    assert [exp.backoff(n) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]
    assert [lin.backoff(n) for n in (1, 2, 3)] == [0.5, 1.0, 1.5]


def test_jitter_stays_within_its_fraction() -> None:
    policy = RetryPolicy(backoff_delay=1.0, jitter=0.2, backoff_policy="linear")
    rng = random.Random(7)
    values = [policy.backoff(1, rng=rng) for _ in range(200)]
    assert min(values) >= 0.8
    assert max(values) <= 1.2
    assert len(set(values)) > 100


def test_retry_after_is_honoured_and_capped() -> None:
    policy = RetryPolicy(backoff_delay=0.1, jitter=0, retry_after_max=10)
    assert policy.backoff(1, retry_after=5) == 5
    assert policy.backoff(1, retry_after=500) == 10
    assert RetryPolicy(jitter=0, retry_after_max=0, backoff_delay=0.1).backoff(
        1, retry_after=5
    ) == pytest.approx(0.2)


def test_parse_retry_after() -> None:
    assert parse_retry_after("7") == 7
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0


def test_policy_from_delivery_spec() -> None:
    spec = DeliverySpec.model_validate(
        {
            "retry": 3,
            "backoffPolicy": "linear",
            "backoffDelay": "PT1S",
            "timeout": "PT5S",
            "format": "json",
            "ordering": "ordered",
            "maxInFlight": 4,
        }
    )
    policy = RetryPolicy.from_spec(spec)
    assert (policy.retry, policy.backoff_policy, policy.backoff_delay, policy.timeout) == (
        3,
        "linear",
        1.0,
        5.0,
    )
    assert policy.structured
    assert policy.ordered
    assert policy.max_in_flight == 4
    assert RetryPolicy.from_spec(DeliverySpec()).retry == 10
