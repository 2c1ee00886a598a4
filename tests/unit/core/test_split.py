"""The canary split as pure parts: the per-event draw, the sticky key hash, what
happens to keys when the percents change, and each target's share of a backlog."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventing.delivery.sink import Outcome
from eventing.delivery.split import Route, Split, apportion, key_position
from eventing.events import Event


class _Named:
    def __init__(self, target: str) -> None:
        self.target = target

    async def wait_ready(self) -> None:
        return None

    async def send(self, event: Event, *, timeout: float, structured: bool) -> Outcome:
        return Outcome(202)

    async def close(self) -> None:
        return None


def _split(*percents: int, seed: int | None = 7) -> Split:
    return Split([Route(_Named(f"t{i}"), p) for i, p in enumerate(percents)], seed=seed)


def _bound(n: int, p: float, sigmas: float = 5.0) -> float:
    """``sigmas`` standard deviations of a binomial(n, p) count."""
    return sigmas * math.sqrt(n * p * (1 - p))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_per_event_draw_follows_the_percents(seed: int) -> None:
    split = _split(90, 10, seed=seed)
    n = 10_000
    counts = {r.target: 0 for r in split.routes}
    for _ in range(n):
        counts[split.choose().target] += 1
    assert abs(counts["t1"] - n * 0.1) <= _bound(n, 0.1)
    assert counts["t0"] + counts["t1"] == n


def test_the_draw_is_seeded() -> None:
    a, b = _split(50, 30, 20, seed=11), _split(50, 30, 20, seed=11)
    assert [a.choose().target for _ in range(200)] == [b.choose().target for _ in range(200)]


def test_a_zero_percent_target_gets_nothing() -> None:
    split = _split(0, 100, 0)
    assert {split.choose().target for _ in range(1000)} == {"t1"}
    assert {split.choose(f"k{i}").target for i in range(1000)} == {"t1"}


def test_a_key_always_goes_to_the_same_target() -> None:
    split = _split(90, 10)
    keys = [f"customer-{i}" for i in range(2000)]
    first = {k: split.choose(k).target for k in keys}
    again = _split(90, 10, seed=99)  # another process, another seed: same answer
    assert all(again.choose(k).target == first[k] for k in keys)
    moved_to_canary = sum(1 for t in first.values() if t == "t1")
    assert abs(moved_to_canary - 200) <= _bound(2000, 0.1)


def test_changing_the_percents_moves_only_the_keys_between_the_old_and_new_boundary() -> None:
    keys = [f"k{i}" for i in range(5000)]
    before, after = _split(90, 10), _split(80, 20)
    for k in keys:
        old, new = before.choose(k).target, after.choose(k).target
        position = key_position(k) / 100  # percent
        if 80 <= position < 90:
            assert (old, new) == ("t0", "t1")
        else:
            assert old == new


def test_key_positions_are_in_range_and_stable() -> None:
    assert key_position("a") == key_position("a")
    assert all(0 <= key_position(str(i)) < 10_000 for i in range(1000))
    assert key_position("\udcff") >= 0  # a lone surrogate (bytes that were not UTF-8)


def test_the_percents_must_add_up_to_100() -> None:
    with pytest.raises(ValueError):
        _split(90, 5)
    with pytest.raises(ValueError):
        _split(110, -10)
    with pytest.raises(ValueError):
        Split([])


def test_one_route_needs_no_draw() -> None:
    split = _split(100)
    assert split.single is split.routes[0]
    assert split.choose("k") is split.routes[0]


def test_share_counts_routed_events_and_splits_the_rest() -> None:
    split = _split(90, 10)
    a, b = split.routes
    assert (split.share(a, 10), split.share(b, 10)) == (9, 1)
    assert (split.share(a, 1), split.share(b, 1)) == (1, 0)  # one event counts once
    b.routed = 3  # three events already routed to the canary and not finished
    assert (split.share(a, 13), split.share(b, 13)) == (9, 4)
    assert (split.share(a, 2), split.share(b, 2)) == (0, 3)  # a stale backlog reading


def test_arrivals_are_thinned_by_percent() -> None:
    split = _split(90, 10)
    heard = {"t0": 0, "t1": 0}

    def counter(target: str) -> Callable[[], None]:
        def count() -> None:
            heard[target] += 1

        return count

    for r in split.routes:
        r.listeners.append(counter(r.target))
    for _ in range(1000):
        split.arrived()
    assert heard == {"t0": 900, "t1": 100}


def _percents(cuts: list[int]) -> list[int]:
    """Percents adding up to 100 from cut points in [0, 100]."""
    edges = [0, *sorted(cuts), 100]
    return [b - a for a, b in itertools.pairwise(edges)]


@given(
    st.integers(min_value=0, max_value=10_000),
    st.lists(st.integers(min_value=0, max_value=100), max_size=15).map(_percents),
)
def test_apportion_adds_up_and_stays_within_one_of_the_exact_share(
    count: int, percents: list[int]
) -> None:
    routes = [Route(_Named(str(i)), p) for i, p in enumerate(percents)]
    parts = apportion(count, routes)
    assert sum(parts) == count
    for part, p in zip(parts, percents, strict=True):
        assert abs(part - count * p / 100) < 1


def test_a_split_reads_as_its_targets_and_percents() -> None:
    from eventing.app.explain import destination_text
    from eventing.resources.split import Subscriber

    sub = Subscriber.model_validate(
        {
            "split": [
                {"ref": {"kind": "Workload", "name": "shop-v1"}, "percent": 90},
                {"uri": "http://127.0.0.1:9/canary", "percent": 10},
            ]
        }
    )
    assert destination_text(sub, "shop") == (
        "split: workload:shop/shop-v1 90%, http://127.0.0.1:9/canary 10%"
    )
    assert [t.percent for t in sub.targets] == [90, 10]
    plain = Subscriber.model_validate({"uri": "log:"})
    assert [(t.uri, t.percent) for t in plain.targets] == [("log:", 100)]


def test_dlq_is_not_a_target_of_a_split(tmp_path: Path) -> None:
    from eventing.app.registry import kind_registry
    from eventing.resources.loader import LoadError, load_resources

    (tmp_path / "t.yaml").write_text(
        "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: default}\n---\n"
        "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {name: t}\n"
        "spec:\n  broker: default\n  subscriber:\n    split:\n"
        "      - {uri: 'log:', percent: 50}\n"
        "      - {uri: 'dlq:', percent: 50}\n"
    )
    with pytest.raises(LoadError) as info:
        load_resources(tmp_path, kind_registry())
    (error,) = info.value.errors
    assert (error.line, error.path) == (13, "spec.subscriber.split[1]")
    assert "only valid as a deadLetterSink" in error.message
