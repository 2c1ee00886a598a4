"""The compatibility suite: real manifests from Knative's documentation and
repositories (tests/compat/manifests, each with its source in a header comment) load,
or are refused for the reason tests/compat/expectations.py gives, document by
document, on one machine; the ones refused only for a Service ref load with
``--kubernetes``. The per-kind numbers in docs/reference.md come from here
(``python -m tests.compat.report``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from eventing.app.registry import kind_registry
from eventing.resources.loader import LoadError, load_resources
from tests.compat.expectations import EXPECTED, LOADS, REASONS
from tests.compat.outcomes import MANIFESTS, all_files, outcomes
from tests.compat.report import table

FILES = [str(p.relative_to(MANIFESTS)) for p in all_files()]


def test_every_manifest_has_an_expectation_and_a_source() -> None:
    assert sorted(EXPECTED) == sorted(FILES)
    for name in FILES:
        head = (MANIFESTS / name).read_text().splitlines()[0]
        assert re.match(r"# Source: https://github\.com/[\w.-]+/[\w.-]+ \S+", head), name


def test_the_set_covers_every_kind_we_serve_from_knative() -> None:
    kinds = {doc.split("/")[0] for docs in EXPECTED.values() for doc, _ in docs}
    served = {
        "Broker", "Trigger", "PingSource", "KafkaSource", "RabbitmqSource", "GitHubSource",
        "GitLabSource", "Sequence", "Parallel", "Channel", "InMemoryChannel", "Subscription",
    }  # fmt: skip
    assert served <= kinds, served - kinds


@pytest.mark.parametrize("name", FILES)
def test_manifest_loads_or_is_refused_for_its_reason(name: str) -> None:
    got = outcomes(MANIFESTS / name)
    expected = EXPECTED[name]
    assert [f"{o.kind}/{o.name}" for o in got] == [doc for doc, _ in expected]
    for outcome, (doc, reason) in zip(got, expected, strict=True):
        if reason == LOADS:
            assert outcome.loaded, (doc, outcome.errors)
            continue
        patterns = [REASONS[part][0] for part in reason.split("+")]
        assert outcome.errors, f"{doc} loads, but is expected to be refused ({reason})"
        for message in outcome.errors:
            assert any(re.search(p, message) for p in patterns), (doc, reason, message)


SERVICE_REF_ONLY = [
    name for name in FILES if {reason for _, reason in EXPECTED[name]} <= {LOADS, "service-ref"}
]


@pytest.mark.parametrize("name", SERVICE_REF_ONLY)
def test_refused_only_for_a_service_ref_loads_for_kubernetes(name: str, tmp_path: Path) -> None:
    try:
        load_resources(MANIFESTS / name, kind_registry(), local=False, partial=True)
    except LoadError as exc:  # pragma: no cover - the assertion message is the point
        pytest.fail(str(exc))


def test_the_numbers_in_the_reference_are_current() -> None:
    reference = (Path(__file__).parents[2] / "docs" / "reference.md").read_text()
    assert table() in reference, "run: python -m tests.compat.report, paste into docs/reference.md"
