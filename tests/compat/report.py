"""The per-kind numbers of the compatibility suite, as the markdown table in
docs/reference.md (``python -m tests.compat.report``; a test keeps the two equal)."""

from __future__ import annotations

from collections import Counter

from tests.compat.expectations import EXPECTED, LOADS, REASONS


def table() -> str:
    total: Counter[str] = Counter()
    by_reason: dict[str, Counter[str]] = {}
    for docs in EXPECTED.values():
        for doc, reason in docs:
            kind = doc.split("/")[0]
            total[kind] += 1
            by_reason.setdefault(kind, Counter())[reason.split("+")[0]] += 1
    reasons = list(REASONS)
    head = (
        "| kind | documents | load | load with `--kubernetes` | "
        + " | ".join(f"refused: {r}" for r in reasons)
        + " |"
    )
    rule = "| --- | ---: | ---: | ---: | " + " | ".join("---:" for _ in reasons) + " |"
    rows = [head, rule]
    for kind in sorted(total):
        counts = by_reason[kind]
        cells = [str(counts[r]) if counts[r] else "" for r in reasons]
        k8s = counts[LOADS] + counts["service-ref"]
        rows.append(
            f"| `{kind}` | {total[kind]} | {counts[LOADS]} | {k8s} | " + " | ".join(cells) + " |"
        )
    all_counts: Counter[str] = Counter()
    for counts in by_reason.values():
        all_counts.update(counts)
    cells = [str(all_counts[r]) for r in reasons]
    k8s = all_counts[LOADS] + all_counts["service-ref"]
    rows.append(
        f"| all | {sum(total.values())} | {all_counts[LOADS]} | {k8s} | " + " | ".join(cells) + " |"
    )
    return "\n".join(rows)


if __name__ == "__main__":
    print(table())
