"""Knative's windowed average of 1 s metric buckets (``TimedFloat64Buckets``).

Why its own module: the KPA's behaviour at the edges (first request after a long idle,
traffic stopping, scale to zero) comes from how this window averages *partial* data,
not from the decider's formulas. Re-implemented from the behaviour documented in
``knative/serving`` ``pkg/autoscaler/aggregation/bucketing.go``:

- values recorded in the same bucket add up (pods' and activator's stats);
- if nothing was written for a whole window, the next write resets every bucket and
  the "first write" time, so the average starts over a 1-bucket window;
- the average is floored to 6 decimal digits (``roundToNDigits``), which also keeps
  float residue from reading as load;
- the average divides by the number of buckets since the first write (at most the
  window), minus the trailing buckets with no write yet; with no write for longer than
  the window it is 0, and :meth:`is_empty` says so (the decider then has no data).

Times are truncated to whole seconds, as the Go code truncates to the granularity.
"""

from __future__ import annotations

import math


class TimedBuckets:
    """A ring of 1 s buckets over ``window`` seconds."""

    def __init__(self, window: float) -> None:
        self.window = math.ceil(window)
        self._buckets = [0.0] * self.window
        self._total = 0.0
        self._first: int | None = None
        self._last: int | None = None

    def record(self, now: float, value: float) -> None:
        """Add ``value`` to the bucket of second ``floor(now)``."""
        b = math.floor(now)
        n = self.window
        if self._last == b:
            self._buckets[b % n] += value
            self._total += value
            return
        if self._last is not None and b + n < self._last:
            return  # older than a window
        if self._first is None or self._first > b:
            self._first = b
        if self._last is None or b > self._last:
            if self._last is None or b - self._last >= n:
                self._first = b
                self._buckets = [0.0] * n
                self._total = 0.0
            else:
                for i in range(self._last + 1, b + 1):
                    self._total -= self._buckets[i % n]
                    self._buckets[i % n] = 0.0
            self._last = b
        self._buckets[b % n] += value
        self._total += value

    def is_empty(self, now: float) -> bool:
        """No write within the last window (the decider's ``ErrNoData``)."""
        return self._last is None or math.floor(now) - self._last > self.window

    def window_average(self, now: float) -> float:
        """Average bucket value over the window ending at ``now``."""
        if self._last is None or self._first is None or self.is_empty(now):
            return 0.0
        now_b = math.floor(now)
        n = self.window
        d = now_b - self._last
        if d <= 0:
            return _floor6(self._total / min(self._last - self._first + 1, n))
        if d < n:
            total = self._total
            for i in range(self._last + 1, now_b + 1):
                total -= self._buckets[i % n]
            return _floor6(total / min(self._last - self._first + 1, n - d))
        return 0.0


def _floor6(value: float) -> float:
    return math.floor(value * 1e6) / 1e6
