"""What the dashboard, ``tail`` and ``explain`` routes need of the running system,
provided by the composition root (``eventing.app.observatory``), so this package
stays free of the plugins (filters, CESQL) and of the concrete system."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from eventing.ui.series import Sampler
from eventing.ui.tap import Seen, Tap

#: Decides whether a tailed event is shown; built once per ``tail`` request.
Matcher = Callable[[Seen], bool]


@dataclass
class UiHooks:
    tap: Tap
    sampler: Sampler
    explain: Callable[[Mapping[str, Any]], Awaitable[dict[str, Any]]]
    """``POST /v1/explain``: raises ValueError for a bad request, LookupError when the
    named event or dead letter is not there."""
    matcher: Callable[[str | None, Mapping[str, str], str | None], Matcher]
    """(broker, exact attributes, CESQL) -> matcher; raises ValueError when invalid."""
    verdicts: Callable[[Seen], dict[str, Any]]
    """Which triggers of its broker an event matched, and why the others did not."""
    topology: Callable[[], dict[str, Any]]
    """Sources, brokers, triggers and workloads, and what connects to what."""
