"""``triggers.explain`` never disagrees with routing: the trigger's verdict is the
materialised filter's, and every clause's is that clause's own node's."""

from __future__ import annotations

from typing import Any

import pytest

from eventing.app.explain import admission
from eventing.events import AttributeValue
from eventing.resources.trigger import SubscriptionsAPIFilter, TriggerSpec
from triggers.explain import explain_trigger, why_not
from triggers.materialize import clause_node, materialize

FILTERS: list[list[dict[str, Any]]] = [
    [{"exact": {"type": "a"}}],
    [{"prefix": {"type": "com."}}, {"suffix": {"source": "/x"}}],
    [{"any": [{"exact": {"region": "eu"}}, {"not": {"exact": {"tier": "free"}}}]}],
    [{"all": [{"cesql": "INT(amount) > 10"}, {"cesql": ""}]}],
    [{"not": {"any": []}}],
    [{"cesql": "flag"}],
]
EVENTS: list[dict[str, AttributeValue]] = [
    {"type": "a", "source": "/x"},
    {"type": "com.b", "source": "/y/x", "region": "eu"},
    {"type": "com.c", "source": "/x", "tier": "free", "amount": "11"},
    {"type": "com.c", "source": "/x", "amount": "zz", "flag": True},
    {"type": "b", "source": "/x", "amount": 5, "flag": "true"},
]


def _spec(filters: list[dict[str, Any]]) -> TriggerSpec:
    return TriggerSpec.model_validate(
        {"broker": "default", "filters": filters, "subscriber": {"uri": "log:"}}
    )


def _walk(clause: dict[str, Any], f: SubscriptionsAPIFilter, event: dict[str, Any]) -> None:
    verdict = clause_node(f)(event)
    expected = "pass" if verdict is None else ("no-filter" if verdict == "no-filter" else "fail")
    assert clause["verdict"] == expected, clause["path"]
    children = f.all or f.any or ([f.not_] if f.not_ is not None else [])
    for child, model in zip(clause.get("children", []), children, strict=True):
        _walk(child, model, event)


@pytest.mark.parametrize("filters", FILTERS)
@pytest.mark.parametrize("event", EVENTS)
def test_every_verdict_is_the_routing_verdict(
    filters: list[dict[str, Any]], event: dict[str, AttributeValue]
) -> None:
    spec = _spec(filters)
    result = explain_trigger(spec, event)
    reason = materialize(spec)(event)
    assert result["matched"] is (reason is None)
    assert result["reason"] == reason
    for clause, f in zip(result["clauses"], spec.filters, strict=True):
        _walk(clause, f, event)
    assert bool(why_not(result)) is (reason is not None)


def test_legacy_attributes_and_no_filter() -> None:
    legacy = TriggerSpec.model_validate(
        {
            "broker": "b",
            "filter": {"attributes": {"type": "a", "region": ""}},
            "subscriber": {"uri": "log:"},
        }
    )
    result = explain_trigger(legacy, {"type": "a"})
    assert result["mode"] == "attributes"
    assert not result["matched"]
    assert why_not(result) == "filter.attributes attributes: region is missing (wants present)"
    everything = explain_trigger(_spec([]), {"type": "x"})
    assert everything == {"matched": True, "reason": None, "mode": "none", "clauses": []}


def test_why_not_names_the_failing_check() -> None:
    result = explain_trigger(_spec(FILTERS[1]), {"type": "org.x", "source": "/x"})
    assert why_not(result) == "filters[0] prefix: type='org.x' (wants prefix 'com.')"
    result = explain_trigger(_spec(FILTERS[5]), {"type": "t"})
    assert why_not(result).startswith("filters[0] cesql 'flag': missingAttribute")


def test_admission_uses_the_ingress_checks() -> None:
    ok = admission({"specversion": "1.0", "id": "1", "source": "/s", "type": "t"})
    assert ok["accepted"]
    assert ok["ttl"]["stored"] == "255"
    missing = admission({"specversion": "1.0", "id": "1", "source": "/s"})
    assert missing["status"] == 400
    assert "'type'" in missing["reason"]
    spent = admission(
        {"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "knativebrokerttl": "0"}
    )
    assert not spent["accepted"]
