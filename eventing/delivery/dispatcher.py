"""The per-trigger dispatcher: subscription in, deliveries out, ack only when done.

An event is acked (removed from the trigger's backlog) only after the subscriber
answered 2xx (and a reply, if any, was stored) or the event was kept by the
dead-letter sink. Anything else leaves it pending, so a crash redelivers it.

Concurrency: at most ``limit`` attempts in flight (adaptive, see
:mod:`eventing.delivery.limiter`). With ``ordering: ordered``, events that share a
``partitionkey`` go one at a time in arrival order while other keys proceed; events
held back that way count against a separate bound so memory stays bounded.

A trigger's subscriber may be a canary split (:mod:`eventing.delivery.split`): the
route is chosen once per event when it is taken, and its retries, its reply and its
dead letter all go through that route's sink.

Shutdown (``stop``): no new event is taken; attempts already on the wire may finish
until the deadline; events waiting for a retry are left pending for the next run.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable

from eventing import stages
from eventing.broker.base import Delivery, Subscription
from eventing.delivery.limiter import AdaptiveLimit
from eventing.delivery.policy import RetryPolicy, is_retryable, is_success
from eventing.delivery.sink import FastSend, Outcome, Sink
from eventing.delivery.split import Route, Split
from eventing.errors import StoreError
from eventing.events import ARRIVAL_TIME, PARTITION_KEY, TTL, Event
from eventing.metrics import LocalHistogram, Metrics

logger = logging.getLogger(__name__)

ERROR_DATA_MAX = 1024
Publish = Callable[[Event], Awaitable[None]]


@dataclass
class DispatchStats:
    delivered: int = 0
    failed: int = 0
    dead_lettered: int = 0
    retried: int = 0
    replies: int = 0
    in_flight: int = 0
    last_error: str | None = None
    service_times: deque[float] = field(default_factory=lambda: deque(maxlen=256))


@dataclass
class DeadLetterTarget:
    """Where exhausted events go: the built-in store (``sink is None``) or a sink."""

    sink: Sink | None = None


@runtime_checkable
class Pushing(Protocol):
    """A subscription that hands events over without a task switch: it calls the
    hook given to ``push_to`` when an event waits in memory, and ``take_nowait``
    returns it (``StoreSubscription``)."""

    def push_to(self, ready: Callable[[], None]) -> bool: ...

    def take_nowait(self) -> Delivery | None: ...


_SENT, _FULL, _NOT_SENT = object(), object(), object()
"""What :meth:`Dispatcher._try_fast` did."""


class Dispatcher:
    def __init__(
        self,
        *,
        trigger: str,
        subscription: Subscription,
        sink: Sink,
        policy: RetryPolicy,
        dead_letter: DeadLetterTarget | None,
        publish_reply: Publish,
        metrics: Metrics,
        broker: str = "",
        fast: FastSend | None = None,
        split: Split | None = None,
    ) -> None:
        """``sink`` (with ``fast``, its task-free first attempt) is the subscriber; with
        ``split``, the subscriber's targets are its routes and ``sink`` only names the
        whole (shown in status)."""
        self.trigger = trigger
        self.broker = broker
        self.subscription = subscription
        self.sink = sink
        self.policy = policy
        self.dead_letter = dead_letter
        self.publish_reply = publish_reply
        self.metrics = metrics
        self.stats = DispatchStats()
        self.limit = AdaptiveLimit(policy.max_in_flight)
        self._held = _Gate(policy.max_in_flight * 10)
        self.split = split if split is not None else Split([Route(sink, 100, fast)])
        self._keys: dict[str, deque[_Taken]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._retrying: set[asyncio.Task[Any] | None] = set()
        self._stopping = False
        # Labelled metric children, looked up once (labels() costs a lock and a dict).
        self.latency = LocalHistogram()  # arrival -> delivered
        self.durations = LocalHistogram()  # one attempt
        self.attempts: dict[int | None, int] = {}  # by status (None: no response)
        # The fast path: a sink that can send without a task (HttpSink.try_send), given
        # by the composition root per route (a capability, not a probe).
        self._fast_in_flight = 0
        self._fast_idle = asyncio.Event()
        self._fast_idle.set()
        # Events taken while the concurrency limit is full wait here for the next
        # attempt to finish, then go by the fast path: a batch of hundreds would
        # otherwise make a task per event, each waiting on the limit.
        self._parked: deque[_Taken] = deque()
        # The fast targets whose host was full when an event was tried (connections
        # are shared by every trigger): each has our wake-up queued once, and the
        # parked events wait for it instead of a task each waiting for a connection.
        self._host_waits: dict[int, Callable[[], None]] = {}
        # Events handed over by the subscription (Pushing) are taken by _pump, once per
        # loop turn for all that arrived, instead of waking the run loop per event.
        self._pump_soon = False
        self._pump_stalled = False
        self._take_nowait: Callable[[], Delivery | None] = lambda: None

    # -- the loop ---------------------------------------------------------------

    async def run(self) -> None:
        """Take events until cancelled; the composition root runs this as a named task.
        With a subscription that pushes, events waiting in memory are taken by
        :meth:`_pump` and this loop takes the rest (paged from the store)."""
        subscription = self.subscription
        if isinstance(subscription, Pushing) and subscription.push_to(self._offered):
            self._take_nowait = subscription.take_nowait
        while not self._stopping:
            await self._held.wait_free()
            delivery = await subscription.get()
            self._held.take()  # with a pump, the one place may have gone meanwhile
            self._take(delivery)

    def _offered(self) -> None:
        """An event waits in the subscription's memory: take it (and any others that
        arrive in this loop turn) in one call soon, not a task switch each."""
        if not self._pump_soon:
            self._pump_soon = True
            asyncio.get_running_loop().call_soon(self._pump)

    def _pump(self) -> None:
        self._pump_soon = False
        self._pump_stalled = False
        if self._stopping:
            return
        take_nowait = self._take_nowait
        try:
            while self._held.free > 0:
                delivery = take_nowait()
                if delivery is None:
                    return
                self._held.take()
                self._take(delivery)
            self._pump_stalled = True  # the next release of a place pumps again
        except Exception:
            logger.exception("dispatcher %s failed to take an event", self.trigger)

    def _release_place(self) -> None:
        self._held.release()
        if self._pump_stalled and not self._pump_soon:
            self._pump_soon = True
            asyncio.get_running_loop().call_soon(self._pump)

    def _take(self, delivery: Delivery) -> None:
        """Start delivering one event taken from the subscription (holding a place)."""
        if stages.ON:
            stages.mark("dispatch", delivery.event)
        key = delivery.event.attributes.get(PARTITION_KEY) if self.policy.ordered else None
        route = self.split.choose(None if key is None else str(key))
        route.routed += 1
        if key is None:
            if self._parked:  # in order behind those already waiting
                self._parked.append(_Taken(delivery, route))
                return
            sent = self._try_fast(delivery, route)
            if sent is _FULL:
                self._parked.append(_Taken(delivery, route))
            elif sent is not _SENT:
                self._spawn(delivery, None, route)
        else:
            queue = self._keys.get(str(key))
            if queue is None:
                self._keys[str(key)] = deque()
                self._spawn(delivery, str(key), route)
            else:
                queue.append(_Taken(delivery, route))

    def _spawn(
        self, delivery: Delivery, key: str | None, route: Route, first: Outcome | None = None
    ) -> None:
        task = asyncio.create_task(
            self._deliver_chain(delivery, key, route, first),
            name=f"deliver {self.trigger} id={delivery.event.attributes.get('id')}",
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _try_fast(self, delivery: Delivery, route: Route) -> object:
        """First attempt without a task: most events succeed at once, and a task with
        its chain of coroutines costs as much as the rest of the delivery. Anything but
        a plain success (a failure, a reply) continues on the task path below.
        ``_SENT``; ``_FULL`` when the concurrency limit is reached and something is in
        flight (its end will make room: :meth:`_unpark`) or when the subscriber's host
        has no connection free (its wake-up will: :meth:`_host_free`); ``_NOT_SENT``
        otherwise."""
        fast = route.fast
        if fast is None or self._stopping:
            return _NOT_SENT
        if not self.limit.try_acquire():
            return _FULL if self.stats.in_flight else _NOT_SENT
        started = time.monotonic()

        def done(outcome: Outcome) -> None:
            self._fast_done(delivery, route, outcome, started)

        sent = fast.try_send(
            delivery.event,
            timeout=self.policy.timeout,
            structured=self.policy.structured,
            done=done,
        )
        if not sent:
            self.limit.release()
            if id(fast) in self._host_waits:
                return _FULL  # our turn at that host is queued already
            wake = self._host_wake(fast)
            if fast.when_free(wake):
                self._host_waits[id(fast)] = wake
                return _FULL
            return _NOT_SENT
        self.stats.in_flight += 1
        self._fast_in_flight += 1
        self._fast_idle.clear()
        return _SENT

    def _host_wake(self, fast: FastSend) -> Callable[[], None]:
        def wake() -> None:
            self._host_waits.pop(id(fast), None)
            if self._parked:
                self._unpark()

        return wake

    def _unpark(self) -> None:
        """An attempt finished (room under the limit): send parked events, in order,
        while there is room."""
        parked = self._parked
        while parked:
            if self._stopping:
                while parked:  # they stay pending; the next run delivers them
                    taken = parked.popleft()
                    taken.route.routed -= 1
                    self._release_place()
                return
            taken = parked[0]
            if taken.route.retired:  # the subscriber changed while it waited
                self._reroute(taken)
            sent = self._try_fast(taken.delivery, taken.route)
            if sent is _FULL:
                return
            parked.popleft()
            if sent is not _SENT:
                self._spawn(taken.delivery, None, taken.route)

    def _fast_done(
        self, delivery: Delivery, route: Route, outcome: Outcome, started: float
    ) -> None:
        self._fast_in_flight -= 1
        if self._fast_in_flight == 0:
            self._fast_idle.set()
        self.stats.in_flight -= 1
        self.limit.release()
        self._record(outcome, time.monotonic() - started)
        if outcome.status is not None and is_success(outcome.status) and outcome.reply is None:
            if stages.ON:
                stages.mark("subscriber answered", delivery.event)
            self.subscription.ack(delivery.receipt)
            self._delivered(delivery.event, route)
            route.routed -= 1
            self._release_place()
        elif self._stopping:
            route.routed -= 1
            self._release_place()  # stays pending; the next run delivers it
        else:
            self._spawn(delivery, None, route, outcome)  # retries, replies, dead letters
        if self._parked:
            self._unpark()

    async def _deliver_chain(
        self, delivery: Delivery, key: str | None, route: Route, first: Outcome | None
    ) -> None:
        current: _Taken | None = _Taken(delivery, route)
        while current is not None:
            try:
                await self._deliver(current, first)
                first = None
            finally:
                current.route.routed -= 1
                self._release_place()
            current = None
            if key is not None:
                queue = self._keys[key]
                if queue and not self._stopping:
                    current = queue.popleft()
                else:
                    del self._keys[key]

    def retarget(
        self,
        *,
        sink: Sink,
        policy: RetryPolicy,
        dead_letter: DeadLetterTarget | None,
        publish_reply: Publish,
        fast: FastSend | None = None,
        split: Split | None = None,
    ) -> None:
        """A changed subscriber or delivery spec, applied while running (the reconciler):
        the next attempt of every event, including retries of events already taken,
        goes to ``sink`` (or a route of ``split``, chosen again for that event) under
        ``policy``; attempts on the wire finish against the old sink. The
        subscription, and so the trigger's backlog, stays as it is. A target the new
        split keeps (the same destination) keeps its delivered and failed counts."""
        self.sink = sink
        self.dead_letter = dead_letter
        self.publish_reply = publish_reply
        new = split if split is not None else Split([Route(sink, 100, fast)])
        old = {r.target: r for r in self.split.routes}
        for r in new.routes:
            before = old.get(r.target)
            if before is not None:
                r.delivered, r.failed = before.delivered, before.failed
        for r in self.split.routes:
            r.retired = True
        self.split = new
        if policy.max_in_flight != self.policy.max_in_flight:
            self.limit.resize(policy.max_in_flight)
            self._held.resize(policy.max_in_flight * 10 - self.policy.max_in_flight * 10)
        self.policy = policy

    def stop_taking(self) -> None:
        """Take no new event and start no new attempt (events waiting for a retry
        stay pending); what is on the wire goes on. Synchronous, so the composition
        root can stop every dispatcher before anything they wait for wakes up."""
        self._stopping = True
        self._unpark()  # releases the parked: they stay pending
        for waiting in list(self._retrying):
            if waiting is not None:
                waiting.cancel()

    async def stop(self, deadline: float) -> None:
        """Stop taking events; let attempts on the wire finish until ``deadline``
        (loop time); cancel the rest (their events stay pending)."""
        self.stop_taking()
        remaining = deadline - asyncio.get_running_loop().time()
        if self._fast_in_flight and remaining > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._fast_idle.wait()
        remaining = deadline - asyncio.get_running_loop().time()
        if self._tasks and remaining > 0:
            await asyncio.wait(list(self._tasks), timeout=remaining)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- one event ----------------------------------------------------------------

    async def _deliver(self, taken: _Taken, first: Outcome | None = None) -> None:
        """Deliver through ``taken.route`` with retries; ``first`` is the outcome of an
        attempt the fast path already made. A route retired by :meth:`retarget` is
        replaced before the next attempt by the new split's choice for the event."""
        delivery, route = taken.delivery, taken.route
        event = delivery.event
        attempt = 0
        outcome = Outcome(None, error="not attempted")
        task: asyncio.Task[Any] | None = asyncio.current_task()
        while True:
            if first is not None:
                outcome, first = first, None
                attempt += 1
            else:
                if route.retired:
                    route = self._reroute(taken)
                await route.sink.wait_ready()
                attempt += 1
                outcome = await self._attempt(event, route.sink)
            if outcome.status is not None and is_success(outcome.status):
                if await self._accept(delivery, outcome, route):
                    return
                outcome = Outcome(502, error="reply could not be stored")
            if self._stopping or not is_retryable(outcome.status) or attempt > self.policy.retry:
                break
            self.stats.retried += 1
            self._retrying.add(task)  # stop() cancels these at once
            try:
                await asyncio.sleep(self.policy.backoff(attempt, outcome.retry_after))
            finally:
                self._retrying.discard(task)
        if self._stopping and is_retryable(outcome.status):
            return  # stays pending; the next run delivers it
        await self._give_up(delivery, attempt, outcome, route)

    def _reroute(self, taken: _Taken) -> Route:
        attributes = taken.delivery.event.attributes
        key = attributes.get(PARTITION_KEY) if self.policy.ordered else None
        route = self.split.choose(None if key is None else str(key))
        taken.route.routed -= 1
        route.routed += 1
        taken.route = route
        return route

    async def _attempt(self, event: Event, sink: Sink) -> Outcome:
        await self.limit.acquire()
        self.stats.in_flight += 1
        started = time.monotonic()
        try:
            outcome = await sink.send(
                event, timeout=self.policy.timeout, structured=self.policy.structured
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.exception("sink %s failed", sink.target)
            outcome = Outcome(None, error=f"sink error: {exc}")
        finally:
            self.stats.in_flight -= 1
            elapsed = time.monotonic() - started
            self.limit.release()
            if self._parked:
                self._unpark()
        self._record(outcome, elapsed)
        return outcome

    def _record(self, outcome: Outcome, elapsed: float) -> None:
        """Account for one finished attempt: limit, metrics, stats."""
        self.limit.observe(outcome.status, elapsed)
        self.durations.observe(elapsed)
        status = outcome.status
        self.attempts[status] = self.attempts.get(status, 0) + 1
        if outcome.status is not None and is_success(outcome.status):
            self.stats.service_times.append(elapsed)
        else:
            self.stats.last_error = outcome.error or f"HTTP {outcome.status}"

    async def _accept(self, delivery: Delivery, outcome: Outcome, route: Route) -> bool:
        """Store the reply (if any), then ack. False if the reply could not be stored."""
        event = delivery.event
        if outcome.reply is not None:
            reply = outcome.reply
            ttl = _ttl(event) - 1
            if ttl <= 0:
                self.metrics.dropped.labels(self.broker, self.trigger, "ttl").inc()
            else:
                reply.attributes[TTL] = str(ttl)
                try:
                    await self.publish_reply(reply)
                except StoreError:
                    return False
                self.stats.replies += 1
                self.metrics.replies.labels(self.trigger).inc()
        self.subscription.ack(delivery.receipt)
        self._delivered(event, route)
        return True

    def _delivered(self, event: Event, route: Route) -> None:
        self.stats.delivered += 1
        route.delivered += 1
        arrival = _arrival(event)
        if arrival is not None:
            self.latency.observe(max(0.0, time.time() - arrival))

    async def _give_up(
        self, delivery: Delivery, attempts: int, outcome: Outcome, route: Route
    ) -> None:
        self.stats.failed += 1
        route.failed += 1
        dead = delivery.event.copy()
        ext = dead.attributes
        ext["knativeerrordest"] = route.sink.target
        if outcome.status is not None:
            ext["knativeerrorcode"] = str(outcome.status)
        if outcome.body:
            ext["knativeerrordata"] = base64.b64encode(outcome.body[:ERROR_DATA_MAX]).decode()
        ext["eventingattempts"] = str(attempts)
        ext["eventingtrigger"] = self.trigger
        reason = outcome.error or f"HTTP {outcome.status}"
        target = self.dead_letter
        if target is not None and target.sink is not None:
            sent = await target.sink.send(dead, timeout=self.policy.timeout, structured=False)
            if sent.status is not None and is_success(sent.status):
                self.subscription.ack(delivery.receipt)
                self._count_dead()
                return
            reason = f"{reason}; dead-letter sink {target.sink.target} failed too"
        if target is None:
            # No dead-letter sink: Knative drops the event. We keep it in the built-in
            # store instead, so nothing is lost (see docs/delivery.md).
            reason = f"{reason} (no deadLetterSink configured)"
        await self.subscription.dead_letter(
            delivery.receipt, dead, attempts=attempts, reason=reason, status=outcome.status
        )
        self._count_dead()

    def _count_dead(self) -> None:
        self.stats.dead_lettered += 1


class _Taken:
    """An event taken from the subscription and the route it goes through (which
    :meth:`Dispatcher.retarget` may change before its next attempt)."""

    __slots__ = ("delivery", "route")

    def __init__(self, delivery: Delivery, route: Route) -> None:
        self.delivery = delivery
        self.route = route


class _Gate:
    """A counting gate cheaper than ``asyncio.Semaphore`` for one waiter (the run loop)."""

    __slots__ = ("_free", "_opened")

    def __init__(self, size: int) -> None:
        self._free = size
        self._opened = asyncio.Event()

    @property
    def free(self) -> int:
        return self._free

    async def wait_free(self) -> None:
        """Until a place is free (not taking it: the pump may take it meanwhile)."""
        while self._free <= 0:
            self._opened.clear()
            await self._opened.wait()

    def take(self) -> None:
        """Take a place; may go one below zero (the run loop's event that was being
        fetched when the pump took the last place): the bound is held within one."""
        self._free -= 1

    def release(self) -> None:
        self._free += 1
        if self._free == 1:
            self._opened.set()

    def resize(self, delta: int) -> None:
        """Grow (or shrink) the gate by ``delta`` places; held places stay held."""
        self._free += delta
        if self._free > 0:
            self._opened.set()


def _ttl(event: Event) -> int:
    try:
        return int(event.attributes.get(TTL, 255))
    except ValueError:
        return 255


def _arrival(event: Event) -> float | None:
    """The arrival time stamped by our ingress as epoch seconds (for the latency
    histogram): as recorded in memory when the broker accepted it, or parsed from
    ``knativearrivaltime`` (the whole-second part once per second) after a restart."""
    if event.arrived:
        return event.arrived
    raw = event.attributes.get(ARRIVAL_TIME)
    if not isinstance(raw, str):
        return None
    second, dot, fraction = raw.partition(".")
    if dot and fraction.endswith("Z") and fraction[:-1].isdigit():
        base = _epoch_second(second)
        return None if base is None else base + float("0." + fraction[:-1])
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@lru_cache(maxsize=64)
def _epoch_second(text: str) -> float | None:
    try:
        return datetime.fromisoformat(text + "+00:00").timestamp()
    except ValueError:
        return None
