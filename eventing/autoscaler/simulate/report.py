"""The simulator table, its comparisons and the issue's acceptance checks.

Why computed here and not eyeballed: the acceptance criteria of the autoscaling issues
are statements about this table, so the table states them itself, per trace:

- cost: our replica-seconds <= 50 % of KEDA's (defaults);
- latency: our p95 queueing delay <= KEDA's;
- on the sparse shapes (:data:`~eventing.autoscaler.simulate.traces.SPARSE`): at most
  half of Knative KPA's cold starts, with no more idle replica-seconds;
- kept: no busy replica of ours was stopped (no event redelivered).

A check is ``None`` (shown as "-") when a policy it needs was not run. Where a goal is
not met, docs/autoscaling.md says why, with the numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eventing.autoscaler.simulate.results import RunResult
from eventing.autoscaler.simulate.traces import SPARSE

COST_GOAL = 0.5
COLD_GOAL = 0.5


@dataclass(frozen=True, slots=True)
class Comparison:
    """Ours against the baselines on one trace."""

    trace: str
    cost_ratio_vs_keda: float | None
    p95_ours: float | None
    p95_keda: float | None
    cold_ours: int | None
    cold_kpa: int | None
    idle_ours: float | None
    idle_kpa: float | None
    cost_ok: bool | None
    latency_ok: bool | None
    cold_ok: bool | None
    redelivered_ours: int | None = None
    kept_ok: bool | None = None

    @property
    def met(self) -> bool | None:
        checks = [
            c for c in (self.cost_ok, self.latency_ok, self.cold_ok, self.kept_ok) if c is not None
        ]
        return all(checks) if checks else None

    def as_dict(self) -> dict[str, object]:
        return {
            "trace": self.trace,
            "cost_ratio_vs_keda": self.cost_ratio_vs_keda,
            "p95_ours_s": self.p95_ours,
            "p95_keda_s": self.p95_keda,
            "cold_starts_ours": self.cold_ours,
            "cold_starts_kpa": self.cold_kpa,
            "idle_replica_seconds_ours": self.idle_ours,
            "idle_replica_seconds_kpa": self.idle_kpa,
            "cost_ok": self.cost_ok,
            "latency_ok": self.latency_ok,
            "cold_ok": self.cold_ok,
            "redelivered_ours": self.redelivered_ours,
            "kept_ok": self.kept_ok,
            "met": self.met,
        }


def _by_trace(results: Sequence[RunResult]) -> dict[str, dict[str, RunResult]]:
    table: dict[str, dict[str, RunResult]] = {}
    for r in results:
        table.setdefault(r.trace, {})[r.policy] = r
    return table


def compare(results: Sequence[RunResult]) -> list[Comparison]:
    """One comparison per trace, in the order the traces first appear."""
    out: list[Comparison] = []
    for trace, runs in _by_trace(results).items():
        ours, keda, kpa = runs.get("ours"), runs.get("keda"), runs.get("kpa")
        ratio = cost_ok = latency_ok = cold_ok = None
        if ours is not None and keda is not None:
            ratio = ours.replica_seconds / keda.replica_seconds if keda.replica_seconds else None
            cost_ok = ratio is not None and ratio <= COST_GOAL
            latency_ok = ours.delay_p95 <= keda.delay_p95
        if ours is not None and kpa is not None and trace in SPARSE:
            cold_ok = (
                ours.cold_starts <= COLD_GOAL * kpa.cold_starts
                and ours.idle_replica_seconds <= kpa.idle_replica_seconds
            )
        out.append(
            Comparison(
                trace=trace,
                cost_ratio_vs_keda=ratio,
                p95_ours=ours.delay_p95 if ours else None,
                p95_keda=keda.delay_p95 if keda else None,
                cold_ours=ours.cold_starts if ours else None,
                cold_kpa=kpa.cold_starts if kpa else None,
                idle_ours=ours.idle_replica_seconds if ours else None,
                idle_kpa=kpa.idle_replica_seconds if kpa else None,
                cost_ok=cost_ok,
                latency_ok=latency_ok,
                cold_ok=cold_ok,
                redelivered_ours=ours.redelivered if ours else None,
                kept_ok=ours.redelivered == 0 if ours else None,
            )
        )
    return out


_HEADER = (
    f"{'trace':<17} {'policy':<5} {'events':>7} {'replica-s':>10} {'idle r-s':>9} "
    f"{'scale ev':>8} {'cold':>5} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'max rep':>7} "
    f"{'redeliv':>7}"
)


def _row(r: RunResult) -> str:
    return (
        f"{r.trace:<17} {r.policy:<5} {r.events:>7} {r.replica_seconds:>10.0f} "
        f"{r.idle_replica_seconds:>9.0f} {r.scale_events:>8} {r.cold_starts:>5} "
        f"{r.delay_p50 * 1000:>7.0f} {r.delay_p95 * 1000:>7.0f} {r.delay_p99 * 1000:>7.0f} "
        f"{r.max_replicas:>7} {r.redelivered:>7}"
    )


def _mark(ok: bool | None) -> str:
    return "-" if ok is None else ("yes" if ok else "NO")


def _comparison_row(c: Comparison) -> str:
    ratio = "-" if c.cost_ratio_vs_keda is None else f"{c.cost_ratio_vs_keda:.2f}"
    p95 = (
        "-"
        if c.p95_ours is None or c.p95_keda is None
        else f"{c.p95_ours * 1000:.0f} vs {c.p95_keda * 1000:.0f}"
    )
    cold = "-" if c.cold_ours is None or c.cold_kpa is None else f"{c.cold_ours} vs {c.cold_kpa}"
    idle = (
        "-"
        if c.idle_ours is None or c.idle_kpa is None
        else f"{c.idle_ours:.0f} vs {c.idle_kpa:.0f}"
    )
    return (
        f"{c.trace:<17} {ratio:>8} {p95:>17} {cold:>13} {idle:>15}   "
        f"{_mark(c.cost_ok):>4} {_mark(c.latency_ok):>7} {_mark(c.cold_ok):>4} "
        f"{_mark(c.kept_ok):>4}"
    )


def format_report(results: Sequence[RunResult], *, title: str) -> str:
    """The human table: runs, then ours-vs-baselines with the acceptance checks."""
    lines = [title, "", _HEADER, "-" * len(_HEADER)]
    previous = None
    for r in results:
        if previous is not None and r.trace != previous:
            lines.append("")
        lines.append(_row(r))
        previous = r.trace
    comparisons = compare(results)
    if any(c.cost_ratio_vs_keda is not None or c.cold_ours is not None for c in comparisons):
        head = (
            f"{'trace':<17} {'r-s/KEDA':>8} {'p95 ms ours/KEDA':>17} {'cold ours/KPA':>13} "
            f"{'idle r-s ours/KPA':>15}   {'cost':>4} {'latency':>7} {'cold':>4} {'kept':>4}"
        )
        lines += ["", head, "-" * len(head)]
        lines += [_comparison_row(c) for c in comparisons]
        lines += [
            "",
            f"goals: cost = ours <= {COST_GOAL:.0%} of KEDA's replica-seconds; latency = our p95"
            f" <= KEDA's; cold (sparse shapes) = at most {COLD_GOAL:.0%} of KPA's cold starts"
            " at no more idle replica-seconds; kept = no busy replica of ours stopped",
        ]
    return "\n".join(lines)


def report_dict(
    results: Sequence[RunResult], *, profile: str, seed: int, workload: dict[str, object]
) -> dict[str, object]:
    """The JSON document of ``eventing simulate --json``."""
    return {
        "profile": profile,
        "seed": seed,
        "workload": workload,
        "results": [r.as_dict() for r in results],
        "comparisons": [c.as_dict() for c in compare(results)],
    }
