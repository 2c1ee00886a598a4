"""The tri-state result every filter node returns, as Knative's ``eventfilter`` does.

``PASS`` is ``None`` so the common case costs nothing; ``NO_FILTER`` is what an empty
filter says (``all`` of nothing, a blank CESQL expression) so that ``any`` of it does
not pass everything; any other string is a *fail* and names the reason the event was
dropped (``"filtered"``, or ``"cesql:<kind>"`` when an expression erred), which the
broker counts per trigger.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from eventing.events import AttributeValue

Verdict = str | None
Node = Callable[[Mapping[str, AttributeValue]], Verdict]

PASS: Final = None
NO_FILTER: Final = "no-filter"
FILTERED: Final = "filtered"


def passed(verdict: Verdict) -> bool:
    return verdict is None


def failed(verdict: Verdict) -> bool:
    return verdict is not None and verdict != NO_FILTER
