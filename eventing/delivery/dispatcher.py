"""The per-trigger dispatcher: subscription in, deliveries out, ack only when done.

An event is acked (removed from the trigger's backlog) only after the subscriber
answered 2xx (and a reply, if any, was stored) or the event was kept by the
dead-letter sink. Anything else leaves it pending, so a crash redelivers it.

One delivery path: every attempt of an event (the first, a retry, one after a
reroute) is started by :meth:`Dispatcher._start` and its outcome comes back to
:meth:`Dispatcher._answered`, which decides: ack; publish the reply, then ack; retry
after the policy's backoff (a loop timer, ``call_later``: no task waits); or dead-letter.
The attempt is ``FastSend.try_send`` with a callback when the route has a fast sender
and a connection is free; otherwise one small named task awaits ``wait_ready`` and
``send`` and then calls the same handler. Only the genuinely asynchronous steps (such
a send, publishing a reply, a dead letter) are tasks.

Concurrency: at most ``limit`` attempts in flight (adaptive, see
:mod:`eventing.delivery.limiter`); an event that finds it full (or its subscriber's
host full: connections are shared by every trigger) waits in a queue, not in a task,
until an attempt ends (or the host frees a connection). With ``ordering: ordered``,
events that share a ``partitionkey`` go one at a time in arrival order (the next
starts when the previous is finished) while other keys proceed; every event held
counts against a separate bound (:class:`~eventing.delivery.gate.Gate`) so memory
stays bounded.

A trigger's subscriber may be a canary split (:mod:`eventing.delivery.split`): the
route is chosen once per event when it is taken, and its retries, its reply and its
dead letter all go through that route's sink.

Shutdown (``stop``): no new event is taken and no new attempt starts; events waiting
for a retry are left pending for the next run at once; attempts on the wire may
finish until the deadline; then what is left is cancelled (and stays pending).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from eventing import stages
from eventing.broker.base import Delivery, Subscription
from eventing.delivery.gate import Gate
from eventing.delivery.limiter import AdaptiveLimit
from eventing.delivery.policy import RetryPolicy, is_retryable, is_success, shared
from eventing.delivery.pumps import PumpRound, pump_round
from eventing.delivery.sink import FastSend, Outcome, Sink
from eventing.delivery.split import Route, Split
from eventing.delivery.stamps import arrival, dead_letter, reply_ttl
from eventing.errors import StoreError
from eventing.events import PARTITION_KEY, TTL, Event
from eventing.metrics import LocalHistogram, Metrics

logger = logging.getLogger(__name__)

Publish = Callable[[Event], Awaitable[None]]


@dataclass(slots=True)
class DispatchStats:
    delivered: int = 0
    failed: int = 0
    dead_lettered: int = 0
    retried: int = 0
    replies: int = 0
    in_flight: int = 0
    last_error: str | None = None


@dataclass
class DeadLetterTarget:
    """Where exhausted events go: the built-in store (``sink is None``) or a sink."""

    sink: Sink | None = None


@runtime_checkable
class Pushing(Protocol):
    """A subscription that hands events over without a task switch: it calls the
    hook given to ``push_to`` once for each event it puts in memory, and
    ``take_nowait`` returns it (``StoreSubscription``). The dispatcher takes as many
    as it was offered (fewer if ``take_nowait`` says None: its ``get`` took some), and
    after each ``get`` whatever else ``take_nowait`` has (the rest of a page the
    ``get`` read from disk)."""

    def push_to(self, ready: Callable[[], None]) -> bool: ...

    def take_nowait(self) -> Delivery | None: ...


class Dispatcher:
    # Slots, not a __dict__: with a thousand triggers every event goes to a different
    # dispatcher whose state is cold in the CPU's caches, and each object touched per
    # event is a few more cache misses; slots keep the attributes in the object itself.
    __slots__ = (
        "_active",
        "_crowded",
        "_held",
        "_host_waits",
        "_idle",
        "_keys",
        "_offers",
        "_parked",
        "_pump_now",
        "_pump_soon",
        "_pump_stalled",
        "_round",
        "_stopped",
        "_stopping",
        "_take_nowait",
        "_tasks",
        "_timers",
        "_unsent",
        "_wakes",
        "attempts",
        "broker",
        "dead_letter",
        "durations",
        "latency",
        "limit",
        "metrics",
        "policy",
        "publish_reply",
        "sink",
        "split",
        "stats",
        "subscription",
        "trigger",
    )

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
        """``sink`` (with ``fast``, its task-free attempt) is the subscriber; with
        ``split``, the subscriber's targets are its routes and ``sink`` only names the
        whole (shown in status)."""
        self.trigger = trigger
        self.broker = broker
        self.subscription = subscription
        self.sink = sink
        self.policy = shared(policy)
        self.dead_letter = dead_letter
        self.publish_reply = publish_reply
        self.metrics = metrics
        self.stats = DispatchStats()
        self.limit = AdaptiveLimit(policy.max_in_flight)
        self._held = Gate(policy.max_in_flight * 10)
        self.split = split if split is not None else Split([Route(sink, 100, fast)])
        # Ordered keys with an event being delivered: the events of that key behind it.
        self._keys: dict[str, deque[_Job]] = {}
        # Events waiting for a retry: the loop timer that starts the next attempt.
        self._timers: dict[_Job, asyncio.TimerHandle] = {}
        # The named tasks of the asynchronous steps (a send, a reply, a dead letter),
        # and those of them whose attempt is not on the wire yet (wait_ready, the limit).
        self._tasks: set[asyncio.Task[None]] = set()
        self._unsent: set[asyncio.Task[Any]] = set()
        # Attempts on the wire by callback plus live tasks: stop() waits for zero.
        self._active = 0
        # What stop() waits on while attempts end (made only then: at 1,000 triggers a
        # dispatcher goes idle after nearly every event, and an Event set and cleared
        # per event was a cost the run never needed).
        self._idle: asyncio.Future[None] | None = None
        self._stopping = False
        self._stopped = False  # stop()'s deadline passed: late outcomes only ack or stay
        # Labelled metric children, looked up once (labels() costs a lock and a dict).
        self.latency = LocalHistogram()  # arrival -> delivered
        self.durations = LocalHistogram()  # one attempt
        self.attempts: dict[int | None, int] = {}  # by status (None: no response)
        # Events whose attempt cannot start now (the limit is full, or their fast
        # target's host has no connection free, or others wait before them), in order:
        # the end of an attempt or the host's wake-up starts them.
        self._parked: deque[_Job] = deque()
        # The fast targets whose host was full when an event was tried (connections
        # are shared by every trigger): each has our wake-up queued once.
        self._host_waits: dict[int, Callable[[], None]] = {}
        # The fast targets whose host was full at our last try (by id), and our wake-up
        # for each, made once: while a host stays full (a thousand triggers sharing its
        # connections), a new event queues for its turn at once instead of first
        # taking a slot of the limit, trying to send and giving the slot back.
        self._crowded: set[int] = set()
        self._wakes: dict[int, Callable[[], None]] = {}
        # Events handed over by the subscription (Pushing) are taken by _pump, once per
        # loop turn for all that arrived, instead of waking the run loop per event; the
        # pumps of every dispatcher of the loop run in one callback (PumpRound).
        self._pump_soon = False
        self._pump_stalled = False
        # Events offered and not yet taken by _pump (at least: the run loop's get()
        # may take some): the pump stops at zero, without asking the subscription once
        # more for nothing (with events spread over a thousand triggers, nearly every
        # pump takes one event, and that last call was one more per event).
        self._offers = 0
        self._round: PumpRound | None = None
        self._pump_now = self._pump  # bound once: registered per loop turn with work
        self._take_nowait: Callable[[], Delivery | None] = lambda: None

    # -- taking events ------------------------------------------------------------

    async def run(self) -> None:
        """Take events until cancelled; the composition root runs this as a named task.
        With a subscription that pushes, events waiting in memory are taken by
        :meth:`_pump` and this loop takes the rest (paged from the store)."""
        subscription = self.subscription
        self._round = pump_round(asyncio.get_running_loop())
        if isinstance(subscription, Pushing) and subscription.push_to(self._offered):
            self._take_nowait = subscription.take_nowait
        held = self._held
        while not self._stopping:
            await held.wait_free()
            delivery = await subscription.get()
            held.take()  # with a pump, the one place may have gone meanwhile
            self._take(delivery)
            # The rest of what that get() read (a page from the store, when the backlog
            # outgrew the subscription's memory), as many as there are places for: one
            # call each instead of the awaits of a get() each.
            take_nowait = self._take_nowait
            while held.free > 0 and not self._stopping:
                more = take_nowait()
                if more is None:
                    break
                held.take()
                self._take(more)

    def _offered(self) -> None:
        """An event waits in the subscription's memory: take it (and any others that
        arrive in this loop turn) in the loop's next pump round, not a task switch each."""
        self._offers += 1
        if not self._pump_soon:  # _schedule_pump inlined: once per event at 1,000 triggers
            self._pump_soon = True
            pumps = self._round
            if pumps is None:
                pumps = self._round = pump_round(asyncio.get_running_loop())
            pumps.add(self._pump_now)

    def _schedule_pump(self) -> None:
        self._pump_soon = True
        pumps = self._round
        if pumps is None:
            pumps = self._round = pump_round(asyncio.get_running_loop())
        pumps.add(self._pump_now)

    def _pump(self) -> None:
        self._pump_soon = False
        self._pump_stalled = False
        if self._stopping:
            return
        take_nowait = self._take_nowait
        try:
            while self._offers > 0:
                if self._held.free <= 0:
                    self._pump_stalled = True  # the next release of a place pumps again
                    return
                delivery = take_nowait()
                if delivery is None:  # taken by the run loop meanwhile (or paging)
                    self._offers = 0
                    return
                self._offers -= 1
                self._held.take()
                self._take(delivery)
        except Exception:
            logger.exception("dispatcher %s failed to take an event", self.trigger)

    def _take(self, delivery: Delivery) -> None:
        """Start delivering one event taken from the subscription (holding a place)."""
        if stages.ON:
            stages.mark("dispatch", delivery.event)
        key = delivery.event.attributes.get(PARTITION_KEY) if self.policy.ordered else None
        if key is None:
            route = self.split.choose(None)
            route.routed += 1
            self._start(_Job(self, delivery, route, None))
            return
        key = str(key)
        route = self.split.choose(key)
        route.routed += 1
        job = _Job(self, delivery, route, key)
        queue = self._keys.get(key)
        if queue is None:
            self._keys[key] = deque()
            self._start(job)
        else:
            queue.append(job)  # started when the one before it is finished

    # -- one attempt --------------------------------------------------------------

    def _start(self, job: _Job) -> None:
        """Start the next attempt of ``job`` now, or park it until there is room."""
        if self._stopping:
            self._finish(job)  # stays pending; the next run delivers it
            return
        fast = job.route.fast
        if fast is not None and (self._parked or (self._crowded and self._queued_at_host(fast))):
            # In order behind those already waiting (a route without a fast sender
            # does not park: its task waits for the limit itself), or at a host that
            # was full at our last try and still is (queued for our turn there).
            self._parked.append(job)
        elif not self._attempt(job):
            self._parked.append(job)

    def _queued_at_host(self, fast: FastSend) -> bool:
        """True when ``fast``'s host was full at our last try and still is: our
        wake-up is (or already was) queued there, so the event is to park. A host
        found with room again is forgotten as full (the next event tries at once)."""
        key = id(fast)
        if key not in self._crowded:
            return False
        if key in self._host_waits:
            return True
        wake = self._wakes[key]
        if fast.when_free(wake):
            self._host_waits[key] = wake
            return True
        self._crowded.discard(key)
        return False

    def _attempt(self, job: _Job) -> bool:
        """Start an attempt: by ``try_send`` with ``job`` as the callback when the
        route has a fast sender, the limit has room and a connection is free; else
        by a task (no fast sender, or a new connection is needed). False, starting
        nothing, when the limit is full with something in flight (its end makes
        room: :meth:`_unpark`) or the fast target's host is full (its wake-up will:
        :meth:`_host_wake`). A route retired by :meth:`retarget` is chosen again first."""
        route = job.route
        if route.retired:
            route = self._reroute(job)
        fast = route.fast
        if fast is not None:
            if id(fast) in self._host_waits:
                return False  # our turn at that host is queued: it is full for us till then
            if not self.limit.try_acquire():
                if self.limit.in_use:  # the end of an attempt holding a slot unparks
                    return False
            else:
                job.started = time.monotonic()
                policy = self.policy
                event = job.delivery.event
                if fast.try_send(
                    event, timeout=policy.timeout, structured=policy.structured, done=job
                ):
                    self.stats.in_flight += 1
                    self._active += 1
                    return True
                key = id(fast)
                wake = self._wakes.get(key)
                if wake is None:
                    wake = self._wakes[key] = self._host_wake(fast)
                if fast.when_free(wake):
                    self.limit.release()
                    self._host_waits[key] = wake
                    self._crowded.add(key)
                    return False
                # A new connection is needed: the task sends with the slot taken
                # here, so a burst makes at most ``limit`` such tasks, the rest park.
                self._spawn(self._send(job, route.sink, holding=True), "deliver", job)
                return True
        self._spawn(self._send(job, route.sink), "deliver", job)
        return True

    async def _send(self, job: _Job, sink: Sink, *, holding: bool = False) -> None:
        """The attempt of a route without a fast sender (or, ``holding`` a slot of the
        limit already, of a fast one that needs a new connection): wait until the sink
        is ready (a workload activating from zero: no retry is burnt meanwhile) and
        for a slot of the limit, send, then hand the outcome to :meth:`_answered`.
        Until it sends, ``stop_taking`` cancels it."""
        if not holding:
            task = asyncio.current_task()
            assert task is not None
            self._unsent.add(task)
            try:
                await sink.wait_ready()
                await self.limit.acquire()
            except asyncio.CancelledError:
                self._finish(job)  # stays pending
                raise
            finally:
                self._unsent.discard(task)
        if self._stopping:  # stopped while it waited: no new attempt
            self.limit.release()
            self._finish(job)
            return
        self.stats.in_flight += 1
        started = time.monotonic()
        try:
            outcome = await sink.send(
                job.delivery.event, timeout=self.policy.timeout, structured=self.policy.structured
            )
        except asyncio.CancelledError:
            self._finish(job)  # cancelled at the drain deadline: stays pending
            raise
        except Exception as exc:
            logger.exception("sink %s failed", sink.target)
            outcome = Outcome(None, error=f"sink error: {exc}")
        finally:
            self.stats.in_flight -= 1
            self.limit.release()
        self._answered(job, outcome, time.monotonic() - started)

    def _fast_answered(self, job: _Job, outcome: Outcome) -> None:
        """The callback of a ``try_send`` attempt (through ``_Job.__call__``)."""
        self.stats.in_flight -= 1
        self.limit.release()
        self._answered(job, outcome, time.monotonic() - job.started)
        self._active -= 1
        if not self._active and self._idle is not None:
            self._became_idle()

    # -- the outcome ----------------------------------------------------------------

    def _answered(self, job: _Job, outcome: Outcome, elapsed: float) -> None:
        """The one handler of every attempt's outcome: ack; publish the reply, then
        ack; retry after the backoff; or dead-letter. Then start parked events."""
        self._record(outcome, elapsed)
        job.attempts += 1
        status = outcome.status
        if status is not None and is_success(status):
            if stages.ON:
                stages.mark("subscriber answered", job.delivery.event)
            reply = outcome.reply
            if reply is None:
                self._ack(job)
            else:
                self._reply(job, reply)
        else:
            self._failed(job, outcome)
        if self._parked:
            self._unpark()

    def _reply(self, job: _Job, reply: Event) -> None:
        ttl = reply_ttl(job.delivery.event)
        if ttl <= 0:
            self.metrics.dropped.labels(self.broker, self.trigger, "ttl").inc()
            self._ack(job)
        elif self._stopped:
            self._finish(job)  # too late to store the reply: stays pending
        else:
            reply.attributes[TTL] = str(ttl)
            self._spawn(self._publish(job, reply), "reply", job)

    async def _publish(self, job: _Job, reply: Event) -> None:
        """Store the reply in the broker, then ack (the reply is never lost)."""
        try:
            await self.publish_reply(reply)
        except StoreError:
            self._failed(job, Outcome(502, error="reply could not be stored"))
            return
        except asyncio.CancelledError:
            self._finish(job)
            raise
        except Exception:
            logger.exception("trigger %s: reply not published", self.trigger)
            self._finish(job)  # stays pending
            return
        self.stats.replies += 1
        self.metrics.replies.labels(self.trigger).inc()
        self._ack(job)

    def _failed(self, job: _Job, outcome: Outcome) -> None:
        """Retry (a timer, not a task) while the policy allows; else dead-letter."""
        if is_retryable(outcome.status):
            if self._stopping:
                self._finish(job)  # stays pending; the next run delivers it
                return
            if job.attempts <= self.policy.retry:
                self.stats.retried += 1
                delay = self.policy.backoff(job.attempts, outcome.retry_after)
                loop = asyncio.get_running_loop()
                self._timers[job] = loop.call_later(delay, self._retry_due, job)
                return
        if self._stopped:
            self._finish(job)
        else:
            self._spawn(self._give_up(job, outcome), "dead-letter", job)

    def _retry_due(self, job: _Job) -> None:
        del self._timers[job]
        self._start(job)

    def _ack(self, job: _Job) -> None:
        self.subscription.ack(job.delivery.receipt)
        self._delivered(job.delivery.event, job.route)
        self._finish(job)

    def _finish(self, job: _Job) -> None:
        """``job`` is done here (acked, dead-lettered, or left pending): free its
        place and start the next event of its key."""
        job.route.routed -= 1
        self._release_place()
        key = job.key
        if key is None:
            return
        queue = self._keys[key]
        if queue and not self._stopping:
            self._start(queue.popleft())
            return
        del self._keys[key]
        for waiting in queue:  # stopping: they stay pending
            waiting.route.routed -= 1
            self._release_place()

    def _release_place(self) -> None:
        self._held.release()
        if self._pump_stalled and not self._pump_soon:
            self._schedule_pump()

    def _host_wake(self, fast: FastSend) -> Callable[[], None]:
        key = id(fast)

        def wake() -> None:
            self._host_waits.pop(key, None)
            if self._parked:
                self._unpark()

        return wake

    def _unpark(self) -> None:
        """Room under the limit or at a host: start parked events, in order, while
        there is room; when stopping, leave them all pending."""
        parked = self._parked
        while parked:
            if self._stopping:
                while parked:
                    self._finish(parked.popleft())
                return
            if not self._attempt(parked[0]):
                return
            parked.popleft()

    def _reroute(self, job: _Job) -> Route:
        route = self.split.choose(job.key)
        job.route.routed -= 1
        route.routed += 1
        job.route = route
        return route

    def _spawn(self, step: Coroutine[Any, Any, None], name: str, job: _Job) -> None:
        task = asyncio.create_task(
            step, name=f"{name} {self.trigger} id={job.delivery.event.attributes.get('id')}"
        )
        self._tasks.add(task)
        self._active += 1
        task.add_done_callback(self._task_done)

    def _became_idle(self) -> None:
        idle = self._idle
        if idle is not None and not idle.done():
            idle.set_result(None)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._active -= 1
        if not self._active and self._idle is not None:
            self._became_idle()
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "dispatcher %s: %s failed", self.trigger, task.get_name(), exc_info=task.exception()
            )

    def _record(self, outcome: Outcome, elapsed: float) -> None:
        """Account for one finished attempt: limit, metrics, stats."""
        self.limit.observe(outcome.status, elapsed)
        self.durations.observe(elapsed)
        status = outcome.status
        self.attempts[status] = self.attempts.get(status, 0) + 1
        if status is None or not is_success(status):
            self.stats.last_error = outcome.error or f"HTTP {status}"

    def _delivered(self, event: Event, route: Route) -> None:
        self.stats.delivered += 1
        route.delivered += 1
        arrived = arrival(event)
        if arrived is not None:
            self.latency.observe(max(0.0, time.time() - arrived))

    async def _give_up(self, job: _Job, outcome: Outcome) -> None:
        """Send to the dead-letter sink, or keep in the broker's dead-letter store;
        ack only once the dead letter is kept."""
        try:
            await self._dead_letter(job, outcome)
        except asyncio.CancelledError:
            self._finish(job)
            raise
        except Exception:
            logger.exception("trigger %s: dead letter not kept", self.trigger)
            self._finish(job)  # stays pending
            return
        self.stats.dead_lettered += 1
        self._finish(job)

    async def _dead_letter(self, job: _Job, outcome: Outcome) -> None:
        self.stats.failed += 1
        route, delivery = job.route, job.delivery
        route.failed += 1
        dead = dead_letter(
            delivery.event,
            dest=route.sink.target,
            outcome=outcome,
            attempts=job.attempts,
            trigger=self.trigger,
        )
        reason = outcome.error or f"HTTP {outcome.status}"
        target = self.dead_letter
        if target is not None and target.sink is not None:
            sent = await target.sink.send(dead, timeout=self.policy.timeout, structured=False)
            if sent.status is not None and is_success(sent.status):
                self.subscription.ack(delivery.receipt)
                return
            reason = f"{reason}; dead-letter sink {target.sink.target} failed too"
        if target is None:
            # No dead-letter sink: Knative drops the event. We keep it in the built-in
            # store instead, so nothing is lost (see docs/delivery.md).
            reason = f"{reason} (no deadLetterSink configured)"
        await self.subscription.dead_letter(
            delivery.receipt, dead, attempts=job.attempts, reason=reason, status=outcome.status
        )

    # -- changes and shutdown -------------------------------------------------------

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
        self._crowded.clear()  # (wake-ups already queued still work: they hold their target)
        self._wakes = {k: w for k, w in self._wakes.items() if k in self._host_waits}
        if policy.max_in_flight != self.policy.max_in_flight:
            self.limit.resize(policy.max_in_flight)
            self._held.resize(policy.max_in_flight * 10 - self.policy.max_in_flight * 10)
        self.policy = shared(policy)
        if self._parked:
            self._unpark()  # a larger limit or a new route may have room now

    def stop_taking(self) -> None:
        """Take no new event and start no new attempt: parked events and events
        waiting for a retry stay pending at once; what is on the wire goes on.
        Synchronous, so the composition root can stop every dispatcher before
        anything they wait for wakes up."""
        self._stopping = True
        self._unpark()  # releases the parked: they stay pending
        timers, self._timers = self._timers, {}
        for job, timer in timers.items():
            timer.cancel()
            self._finish(job)
        for task in list(self._unsent):
            task.cancel()

    async def stop(self, deadline: float) -> None:
        """Stop taking events; let attempts on the wire (and the replies and dead
        letters they lead to) finish until ``deadline`` (loop time); cancel the rest
        (their events stay pending)."""
        self.stop_taking()
        loop = asyncio.get_running_loop()
        remaining = deadline - loop.time()
        if self._active and remaining > 0:
            idle = self._idle
            if idle is None or idle.done():
                idle = self._idle = loop.create_future()
            try:
                async with asyncio.timeout(remaining):
                    await asyncio.shield(idle)
            except TimeoutError:
                pass
        self._stopped = True
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


class _Job:
    """One event being delivered: the route it goes through (which
    :meth:`Dispatcher.retarget` may change before its next attempt), its ordering key,
    the attempts made. Also the callback ``try_send`` calls with the outcome (no
    closure per attempt)."""

    __slots__ = ("attempts", "delivery", "dispatcher", "key", "route", "started")

    def __init__(
        self, dispatcher: Dispatcher, delivery: Delivery, route: Route, key: str | None
    ) -> None:
        self.dispatcher = dispatcher
        self.delivery = delivery
        self.route = route
        self.key = key
        self.attempts = 0
        self.started = 0.0

    def __call__(self, outcome: Outcome) -> None:
        self.dispatcher._fast_answered(self, outcome)
