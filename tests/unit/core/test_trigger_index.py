"""The trigger index routes exactly as the linear scan: the same triggers matched, in
the same order, and the same drops counted per (trigger, reason), for random triggers
of every dialect (CESQL shapes that are indexed and some that must not be) and random
events (missing attributes, integers and booleans where strings are compared), also
while triggers are added, refiltered and removed."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from eventing.broker.index import Guard, Router
from eventing.broker.routing import count, route
from eventing.events import AttributeValue, Event
from eventing.resources.trigger import SubscriptionsAPIFilter, TriggerFilter, TriggerSpec
from triggers.guards import cesql_guards, guards
from triggers.materialize import materialize

NAMES = ["type", "source", "subject", "n", "flag", "Type"]
VALUES = ["", "a", "ab", "abc", "b", "1", "true"]
CESQL = [
    "type = 'a'",
    "type = 'ab' AND source LIKE 'a%'",
    "type LIKE 'a%'",
    "TYPE = 'abc' AND subject = 'b'",
    "n = '1'",
    "n = '1' AND type = 'a'",
    "flag = 'true' AND type LIKE 'ab%'",
    "subject = 'a' AND INT(n) > 0",
    "1 / 0 = 1 AND type = 'a'",
    "type = 'a' AND 1 / 0 = 1",
    "type = 'a' OR source = 'b'",
    "NOT (type = 'a')",
    "'a' = type",
    "type LIKE 'a_%'",
    "type LIKE '%b'",
    "source LIKE '%ab' AND type = 'a'",
    "type LIKE '%a_'",
    "n LIKE '%1'",
    "missing = 'x' AND type = 'a'",
    "(type = 'ab' AND EXISTS subject) AND source = 'a'",
    "type = 'a' AND data.k = 'v'",
    "data.k = 'v' AND type = 'a'",
    "subject",
    "",
]


def spec(**fields: object) -> TriggerSpec:
    subscriber = {"uri": "http://127.0.0.1:9/"}
    return TriggerSpec.model_validate({"broker": "b", "subscriber": subscriber, **fields})


def _pairs() -> st.SearchStrategy[dict[str, str]]:
    keys = st.sampled_from([n for n in NAMES if n.islower()])
    return st.dictionaries(keys, st.sampled_from(VALUES), min_size=1, max_size=2)


def _clause(depth: int) -> st.SearchStrategy[SubscriptionsAPIFilter]:
    leaves = st.one_of(
        _pairs().map(lambda p: SubscriptionsAPIFilter(exact=p)),
        _pairs().map(lambda p: SubscriptionsAPIFilter(prefix=p)),
        _pairs().map(lambda p: SubscriptionsAPIFilter(suffix=p)),
        st.sampled_from(CESQL).map(lambda c: SubscriptionsAPIFilter(cesql=c)),
    )
    if depth == 0:
        return leaves
    inner = st.lists(_clause(depth - 1), max_size=3)
    return st.one_of(
        leaves,
        inner.map(lambda c: SubscriptionsAPIFilter(all=c)),
        inner.map(lambda c: SubscriptionsAPIFilter(any=c)),
        _clause(depth - 1).map(lambda c: SubscriptionsAPIFilter.model_validate({"not": c})),
    )


SPECS = st.one_of(
    st.lists(_clause(2), min_size=1, max_size=3).map(lambda f: spec(filters=f)),
    st.dictionaries(st.sampled_from(["type", "source", "n"]), st.sampled_from(VALUES)).map(
        lambda a: spec(filter=TriggerFilter(attributes=a))
    ),
)

VALUE: st.SearchStrategy[AttributeValue] = st.one_of(
    st.sampled_from(VALUES), st.sampled_from([0, 1, 7]), st.booleans()
)


@st.composite
def events(draw: st.DrawFn) -> Event:
    attributes: dict[str, AttributeValue] = {
        "specversion": "1.0",
        "id": "1",
        "source": draw(st.sampled_from(VALUES)),
        "type": draw(st.sampled_from(VALUES)),
    }
    for name in ("subject", "n", "flag"):
        if draw(st.booleans()):
            attributes[name] = draw(VALUE)
    data = draw(st.sampled_from([None, b'{"k": "v"}', b"{}", b"not json"]))
    return Event(attributes, data)


def _linear(filters: dict[str, object], batch: list[Event], drops: dict) -> list:  # type: ignore[type-arg]
    out = []
    for event in batch:
        matched, dropped = route(filters, event)  # type: ignore[arg-type]
        count(drops, dropped)
        out.append(matched)
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(SPECS, min_size=1, max_size=12), st.lists(events(), min_size=1, max_size=12))
def test_index_routes_as_the_linear_scan(specs: list[TriggerSpec], batch: list[Event]) -> None:
    filters = {f"t{i}": materialize(spec) for i, spec in enumerate(specs)}
    router = Router()
    for trigger, event_filter in filters.items():
        router.add(trigger, event_filter)
    drops: dict[tuple[str, str], int] = {}
    expected = _linear(filters, batch, drops)  # type: ignore[arg-type]
    routings = [router.route(event) for event in batch]
    assert [r[0] for r in routings] == expected
    router.record(routings)
    assert router.drops() == drops


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(0, 5), SPECS),
        st.tuples(st.just("remove"), st.integers(0, 5), st.none()),
        st.tuples(st.just("route"), st.just(0), st.lists(events(), min_size=1, max_size=4)),
    ),
    max_size=20,
)


@settings(max_examples=200, deadline=None)
@given(OPS)
def test_index_stays_exact_while_triggers_come_and_go(ops: list[tuple]) -> None:  # type: ignore[type-arg]
    filters: dict[str, object] = {}
    router = Router()
    drops: dict[tuple[str, str], int] = {}
    for op, number, arg in ops:
        trigger = f"t{number}"
        if op == "add":
            filters[trigger] = event_filter = materialize(arg)
            router.add(trigger, event_filter)
        elif op == "remove":
            filters.pop(trigger, None)
            router.remove(trigger)
        else:
            expected = _linear(filters, arg, drops)
            routings = [router.route(event) for event in arg]
            assert [r[0] for r in routings] == expected
            router.record(routings)
        assert router.drops() == drops
        assert list(router.filters()) == list(filters)


def test_plain_callables_are_always_asked() -> None:
    router = Router()
    router.add("x", lambda attributes: None if attributes.get("type") == "a" else "filtered")
    router.add("y", materialize(spec(filters=[SubscriptionsAPIFilter(exact={"type": "b"})])))
    event = Event({"specversion": "1.0", "id": "1", "source": "s", "type": "a"})
    assert router.route(event) == (("x",), [])
    router.record([router.route(event)])
    assert router.drops() == {("y", "filtered"): 1}


def test_guards_of_the_common_shapes() -> None:
    exact = SubscriptionsAPIFilter(exact={"type": "t", "source": "s"})
    assert guards(spec(filters=[exact])) == (Guard("type", "t"), Guard("source", "s"))
    assert cesql_guards("type = 'a' AND source = 'b'") == [Guard("type", "a", strict=True)]
    assert cesql_guards("type LIKE 'com.%'") == [Guard("type", "com.", prefix=True, strict=True)]
    assert cesql_guards("type LIKE '%.created' AND x = 1") == [
        Guard("type", ".created", suffix=True, strict=True)
    ]
    tail = SubscriptionsAPIFilter(suffix={"type": ".created"})
    assert guards(spec(filters=[tail, exact])) == (
        Guard("type", "t"),
        Guard("source", "s"),
        Guard("type", ".created", suffix=True),
    )
    shapes = ("type = 'a' OR source = 'b'", "type LIKE 'a_%'", "type LIKE '%_a'", "x = y")
    for shape in (*shapes, "type LIKE '%a%'", "type = 1"):
        assert cesql_guards(shape) == []
    # a CESQL clause before an exact one may fail with its own reason: nothing after it
    clauses = [SubscriptionsAPIFilter(cesql="INT(n) > 1"), exact]
    assert guards(spec(filters=clauses)) == ()
    data_first = spec(filters=[SubscriptionsAPIFilter(cesql="data.k = 'v'"), exact])
    assert guards(data_first) == ()


def test_a_payload_filter_with_an_exact_conjunct_is_indexed_and_still_reads_data() -> None:
    payload = spec(filters=[SubscriptionsAPIFilter(cesql="type = 'a' AND data.k = 'v'")])
    router = Router()
    router.add("p", materialize(payload))
    attributes = {"specversion": "1.0", "id": "1", "source": "s", "type": "a"}
    good = Event(dict(attributes), json.dumps({"k": "v"}).encode())
    bad = Event(dict(attributes), json.dumps({"k": "w"}).encode())
    other = Event({**attributes, "type": "b"}, json.dumps({"k": "v"}).encode())
    assert router.route(good)[0] == ("p",)
    assert router.route(bad) == ((), [("p", "filtered"), ("", "no-trigger")])
    assert router.route(other) == ((), [("", "no-trigger")])  # not asked: filtered
