"""Which target of a trigger gets an event: one sink, or a canary split over several.

A :class:`Route` is one target (its sink, its percent, what it delivered and failed,
how many events are routed to it and not finished). :class:`Split` chooses a route
once per event, when the dispatcher takes the event; every retry of that event goes
to the same route, and its dead letter names that route's sink.

How the choice is made:

- **Per event** (no ordering, or no ``partitionkey``): weighted random, a position in
  basis points [0, 10000) drawn from the split's own ``random.Random`` (seeded in
  tests), mapped to the target whose cumulative range holds it.
- **Sticky per key** (``ordering: ordered`` and the event has a ``partitionkey``): the
  position is a stable hash of the key (BLAKE2b, not Python's salted ``hash``), so a
  key goes to the same target every time, in every process and after a restart, and
  the per-key order the dispatcher keeps is the order that target sees.

When the percents change (a new manifest), a key keeps its position and only the
ranges move: with two targets, going from 90/10 to 80/20 moves exactly the keys whose
position lies in [80, 90) from the first target to the second; every other key stays.
With more targets, a change to one percent shifts the ranges of the targets after it,
so keys there may move too. Events of a key already handed out finish on the target
they were routed to.

:meth:`Split.share` is what each target's autoscaler reads as its backlog: the events
routed to it and not finished, plus its percent of the events not routed yet.
"""

from __future__ import annotations

import hashlib
import random
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol

from eventing.delivery.sink import FastSend, Outcome, Sink
from eventing.events import Event


@dataclass(eq=False, slots=True)
class Route:
    """One target of a trigger and what went there."""

    sink: Sink
    percent: int = 100
    fast: FastSend | None = None
    """The sink's task-free attempts (an HTTP sink), or None."""
    delivered: int = 0
    failed: int = 0
    """Events given up on here (dead-lettered after the retries)."""
    routed: int = 0
    """Events routed here and not finished yet (waiting behind a key, in a retry, in
    flight): this route's part of the backlog already decided."""
    workload: str = ""
    """``namespace/name`` of the Workload this route delivers to ("" for a URL, ...)."""
    share: RouteShare | None = None
    """What that workload's autoscaler reads of this route (None without a workload)."""
    retired: bool = False
    """Replaced by a new split (a changed subscriber, applied live): events routed
    here go to the new split's choice at their next attempt."""
    listeners: list[Callable[[], None]] = field(default_factory=list)
    """Told of this route's share of the trigger's arrivals (see :meth:`Split.arrived`)."""
    _credit: int = 0

    @property
    def target(self) -> str:
        return self.sink.target


class Split:
    """The routes of one trigger and the rule that chooses among them."""

    __slots__ = ("_ends", "_rng", "routes", "single")

    def __init__(self, routes: Sequence[Route], *, seed: int | None = None) -> None:
        if not routes:
            raise ValueError("a split needs at least one route")
        if sum(r.percent for r in routes) != 100 or any(r.percent < 0 for r in routes):
            raise ValueError("the percents of a split must be >= 0 and add up to 100")
        self.routes = list(routes)
        self._ends: list[int] = []
        total = 0
        for r in self.routes:
            total += r.percent * 100
            self._ends.append(total)  # in basis points: positions are in [0, 10000)
        self._rng = random.Random(seed)
        self.single = self.routes[0] if len(self.routes) == 1 else None
        """The only route of a trigger that does not split (the common case: no draw)."""

    def choose(self, key: str | None = None) -> Route:
        """The route for one event: by ``key`` when given (sticky), else at random."""
        if self.single is not None:
            return self.single
        position = key_position(key) if key is not None else int(self._rng.random() * 10_000)
        return self.routes[bisect_right(self._ends, position)]

    def arrived(self) -> None:
        """One event arrived for the trigger: each route's listeners hear of its share
        (a route with 10 % is told of every tenth arrival), so each target's autoscaler
        sees its share of the arrival rate before the event is routed."""
        for r in self.routes:
            r._credit += r.percent
            while r._credit >= 100:
                r._credit -= 100
                for listener in r.listeners:
                    listener()

    def share(self, route: Route, backlog: int) -> int:
        """``route``'s part of a trigger ``backlog`` (waiting plus in flight): the events
        routed to it and not finished, plus its part of those not routed yet, split by
        the percents with the largest-remainder rule (the parts are whole events and add
        up to what is not routed: one unrouted event counts once, for the largest share,
        not once per target)."""
        routed = sum(r.routed for r in self.routes)
        return (
            route.routed
            + apportion(max(0, backlog - routed), self.routes)[self.routes.index(route)]
        )


@lru_cache(maxsize=65_536)
def key_position(key: str) -> int:
    """A stable position in [0, 10000) (basis points) for a partition key."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return (int.from_bytes(digest, "big") * 10_000) >> 64


def apportion(count: int, routes: Sequence[Route]) -> list[int]:
    """``count`` whole events split by the routes' percents (largest remainder; ties to
    the earlier route)."""
    exact = [count * r.percent for r in routes]
    parts = [e // 100 for e in exact]
    left = count - sum(parts)
    order = sorted(range(len(routes)), key=lambda i: (-(exact[i] % 100), i))
    for i in order[:left]:
        parts[i] += 1
    return parts


class RouteShare:
    """A route as its target workload's autoscaler sees it, in place of the trigger's
    subscription: its share of the arrivals (:meth:`Split.arrived`) and of the backlog
    (:meth:`Split.share`). Made before the route's sink exists (the workload hands out
    the sink when it is attached), then bound to its split."""

    def __init__(self, subscription: _Backlog) -> None:
        self.subscription = subscription
        self.listeners: list[Callable[[], None]] = []
        self._split: Split | None = None
        self._route: Route | None = None

    def bind(self, split: Split, route: Route) -> None:
        route.listeners = self.listeners
        self._split, self._route = split, route

    def local_backlog(self) -> int:
        if self._split is None or self._route is None:
            return 0
        return self._split.share(self._route, self.subscription.local_backlog())


class _Backlog(Protocol):
    def local_backlog(self) -> int: ...


class SplitSink:
    """What a split trigger shows as its subscriber (``eventing status``, Kubernetes
    status) and closes; events never go through it, only through its routes."""

    def __init__(self, split: Split) -> None:
        self.split = split
        self.target = "split: " + ", ".join(f"{r.target} {r.percent}%" for r in split.routes)

    async def wait_ready(self) -> None:
        return None

    async def send(self, event: Event, *, timeout: float, structured: bool) -> Outcome:
        raise RuntimeError("a split delivers through its routes (Dispatcher), not as one sink")

    async def close(self) -> None:
        for r in self.split.routes:
            await r.sink.close()
