"""A Trigger's subscriber as a canary split: ``subscriber.split`` lists targets (each a
destination: a ref to a Workload, a Broker, ... or a uri) with a ``percent`` each.

Why percentages that must add up to 100, and not relative weights: the manifest then
says exactly what share each version gets (``90`` is 90 %), a typo cannot silently
change the split (``90`` and ``1`` is refused, not read as 98.9 %), and it is the rule
Knative Serving's ``traffic`` block uses. A target may have ``0`` (it keeps its
workload but gets no new events: how a version is drained before it is removed).

What is checked here, on the manifest alone: at least one target, at most
:data:`MAX_TARGETS`, each percent a whole number from 0 to 100, and the sum 100.
Whether each target resolves and whether two targets name the same place is decided
by :func:`eventing.resources.refs.resolve_split`, the function ``eventing validate``
and ``eventing run`` both call.

Not Knative: a Trigger using ``split`` does not load in Knative Eventing (its
subscriber has no such field).
"""

from __future__ import annotations

from typing import Final

from pydantic import Field, field_validator

from eventing.resources.base import Destination

MAX_TARGETS: Final = 16
"""Bound on the targets of one split (a canary has two or three)."""


class SplitTarget(Destination):
    """One target of a split: a destination and the percentage of events it gets."""

    percent: int = Field(ge=0, le=100, strict=True)
    """Whole percent of the trigger's events that go here (0 to 100)."""

    def _check_target(self) -> None:
        super()._check_target()
        if self.uri == "dlq:" and self.ref is None:
            raise ValueError(
                "uri 'dlq:' is only valid as a deadLetterSink, not as a target of a split"
            )


class Subscriber(Destination):
    """A Trigger's subscriber: one destination (``ref`` and/or ``uri``, as Knative), or
    ``split``: a weighted list of destinations (a canary)."""

    split: list[SplitTarget] | None = Field(default=None, max_length=MAX_TARGETS)

    def _check_target(self) -> None:
        if self.split is None:
            super()._check_target()
            return
        given = [n for n in ("ref", "uri", "CACerts", "audience") if self._given(n)]
        if given:
            raise ValueError(
                f"give either 'split' or {', '.join(repr(n) for n in given)}, not both: each "
                "target of a split has its own ref/uri"
            )

    def _given(self, alias: str) -> bool:
        name = {"CACerts": "ca_certs"}.get(alias, alias)
        return getattr(self, name) is not None

    @field_validator("split")
    @classmethod
    def _percents(cls, split: list[SplitTarget] | None) -> list[SplitTarget] | None:
        if split is None:
            return None
        if not split:
            raise ValueError("a split needs at least one target")
        if len(split) > MAX_TARGETS:
            raise ValueError(f"a split has at most {MAX_TARGETS} targets (got {len(split)})")
        total = sum(t.percent for t in split)
        if total != 100:
            terms = " + ".join(str(t.percent) for t in split)
            raise ValueError(f"the percents add up to {total} ({terms}); they must add up to 100")
        return split

    @property
    def targets(self) -> list[SplitTarget]:
        """The split's targets; a plain subscriber is one target with 100 %."""
        if self.split is not None:
            return list(self.split)
        fields = self.model_dump(by_alias=True, exclude={"split"}, exclude_none=True)
        return [SplitTarget.model_validate({**fields, "percent": 100})]
