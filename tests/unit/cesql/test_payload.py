"""``data.`` paths (our CESQL extension over JSON data): types, missing paths, data
that is not JSON, bounds, and the routing contract (parsed once per event, never for
a broker without such a trigger)."""

from __future__ import annotations

import json

import pytest

from eventing.broker.routing import NEEDS_DATA, route
from eventing.events import Event
from eventing.resources.trigger import TriggerSpec
from triggers.cesql import CesqlParseError, compile_expression
from triggers.cesql import payload as payload_module
from triggers.cesql.errors import ErrorKind
from triggers.cesql.payload import MAX_DEPTH, MAX_PAYLOAD_BYTES, data_view
from triggers.materialize import DataTriggerFilter, TriggerFilter, materialize

ORDER = {
    "order": {"id": "o-7", "status": "paid", "total": 250, "express": True, "note": None},
    "items": [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 1}],
    "price": 9.99,
    "big": 3_000_000_000,
}
JSON = {
    "specversion": "1.0",
    "id": "1",
    "source": "/s",
    "type": "order",
    "datacontenttype": "application/json",
}


def run(expression: str, data: bytes | None, **attributes: str) -> tuple[object, object]:
    attrs = {**JSON, **attributes}
    result = compile_expression(expression).evaluate(data_view(attrs, data, {}))
    return result.value, (result.error.kind if result.error else None)


BODY = json.dumps(ORDER).encode()


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("data.order.status = 'paid'", True),
        ("data.order.status", "paid"),
        ("data.order.total", 250),
        ("data.order.total > 100", True),
        ("data.order.total + 1", 251),
        ("data.order.express", True),
        ("data.order.express = FALSE", False),
        ("data.items.0.sku = 'a'", True),
        ("data.items.1.qty * 10", 10),
        ("data.price", "9.99"),  # not an Integer: the String of its JSON text
        ("data.price = '9.99'", True),
        ("data.big", "3000000000"),  # beyond 32 bits
        ("INT(data.items.0.qty) = 2", True),
        ("UPPER(data.order.id)", "O-7"),
        ("data.order.status IN ('paid', 'shipped')", True),
        ("data.order.id LIKE 'o-%'", True),
        ("type = 'order' AND data.order.total >= 250", True),
        ("EXISTS data.order", True),  # an object exists
        ("EXISTS data.order.total", True),
        ("EXISTS data.order.note", False),  # null is absent
        ("EXISTS data.nope", False),
        ("EXISTS data.items.5", False),
        ("NOT EXISTS data.order.nope", True),
    ],
)
def test_values_and_types(expression: str, value: object) -> None:
    assert run(expression, BODY) == (value, None)


@pytest.mark.parametrize(
    "expression",
    [
        "data.nope = 1",
        "data.order.note = 'x'",  # null
        "data.order = 'x'",  # an object is not a value
        "data.items > 1",  # an array neither
        "data.items.x = 1",  # a name on an array
        "data.order.total.x = 1",  # a name on a number
    ],
)
def test_missing_paths_are_missing_attribute_errors(expression: str) -> None:
    _value, kind = run(expression, BODY)
    assert kind == ErrorKind.MISSING_ATTRIBUTE
    assert compile_expression(expression).matches(data_view(JSON, BODY, {})) == (
        False,
        ErrorKind.MISSING_ATTRIBUTE,
    )


@pytest.mark.parametrize(
    ("data", "content_type", "why"),
    [
        (b"order total 250", "text/plain", "is not JSON"),
        (b"{not json", "application/json", "not valid JSON"),
        (b"\xff\xfe", "application/json", "not valid JSON"),
        (None, "application/json", "no data"),
        (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), "application/json", "deeper"),
        (b'{"a": "' + b"x" * MAX_PAYLOAD_BYTES + b'"}', "application/json", "larger"),
    ],
)
def test_data_that_is_not_readable_json_has_no_paths(
    data: bytes | None, content_type: str, why: str
) -> None:
    attrs = {**JSON, "datacontenttype": content_type}
    view = data_view(attrs, data, {})
    assert compile_expression("EXISTS data.a").evaluate(view).value is False
    result = compile_expression("data.a = 'x'").evaluate(view)
    assert result.error is not None
    assert result.error.kind == ErrorKind.MISSING_ATTRIBUTE
    assert why in result.error.message


@pytest.mark.parametrize(
    "content_type",
    [None, "application/json", "application/json; charset=utf-8", "text/json",
     "application/cloudevents+json", "application/vnd.shop.order+json"],
)  # fmt: skip
def test_json_content_types(content_type: str | None) -> None:
    attrs = dict(JSON)
    if content_type is None:
        del attrs["datacontenttype"]
    else:
        attrs["datacontenttype"] = content_type
    view = data_view(attrs, b'{"a": "x"}', {})
    assert compile_expression("data.a = 'x'").evaluate(view).value is True


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    deep_text = "[" * 100 + '\\"{' * 50
    body = json.dumps({"text": deep_text, "a": 1}).encode()
    assert run("data.a = 1", body) == (True, None)


def test_nesting_at_the_bound_is_read() -> None:
    body = b'{"a": ' + b"[" * (MAX_DEPTH - 1) + b"1" + b"]" * (MAX_DEPTH - 1) + b"}"
    assert run("EXISTS data.a", body) == (True, None)


def test_paths_are_bounded_and_only_under_data() -> None:
    with pytest.raises(CesqlParseError, match="at most 16 segments"):
        compile_expression("data." + ".".join(["a"] * 17) + " = 1")
    assert not compile_expression("dataset = 'x'").reads_data  # an attribute
    assert not compile_expression("data = 'x'").reads_data  # the attribute 'data'
    assert compile_expression("EXISTS data.a").reads_data
    assert compile_expression("LENGTH(data.a) > 1 OR type = 'x'").reads_data


def test_without_the_data_a_path_says_so() -> None:
    result = compile_expression("data.a = 1").evaluate(JSON)
    assert result.error is not None
    assert "not given to this filter" in result.error.message


# --- the routing contract ----------------------------------------------------------


def spec(cesql: str) -> TriggerSpec:
    return TriggerSpec.model_validate(
        {"broker": "b", "filters": [{"cesql": cesql}], "subscriber": {"uri": "http://h/"}}
    )


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[bytes | None]:
    calls: list[bytes | None] = []
    real = payload_module.parse_payload

    def counting(attributes: object, data: bytes | None) -> object:
        calls.append(data)
        return real(attributes, data)  # type: ignore[arg-type]

    monkeypatch.setattr(payload_module, "parse_payload", counting)
    return calls


def test_payload_is_parsed_once_per_event_for_all_data_triggers(parses: list[bytes | None]) -> None:
    filters = {
        "big": materialize(spec("data.order.total > 100")),
        "paid": materialize(spec("data.order.status = 'paid'")),
        "express": materialize(spec("data.order.express AND type = 'order'")),
        "attrs": materialize(spec("type = 'order'")),
        "missing": materialize(spec("data.nope = 1")),
    }
    assert isinstance(filters["big"], DataTriggerFilter)
    assert type(filters["attrs"]) is TriggerFilter
    matched, dropped = route(filters, Event(dict(JSON), BODY))
    assert matched == ("big", "paid", "express", "attrs")
    assert dropped == [("missing", "cesql:missingAttribute")]
    assert parses == [BODY]
    route(filters, Event(dict(JSON), BODY))
    assert len(parses) == 2  # once per event


def test_a_broker_without_data_triggers_never_reads_the_data(parses: list[bytes | None]) -> None:
    filters = {
        "a": materialize(spec("type = 'order'")),
        "b": materialize(spec("source LIKE '/s%' AND id != '2'")),
        "c": materialize(spec("type = 'other'")),
    }
    for f in filters.values():
        assert f(JSON) is not NEEDS_DATA
    matched, dropped = route(filters, Event(dict(JSON), BODY))
    assert matched == ("a", "b")
    assert dropped == [("c", "filtered")]
    assert parses == []


def test_a_data_filter_in_logical_dialects_is_found() -> None:
    nested = TriggerSpec.model_validate(
        {
            "broker": "b",
            "filters": [{"any": [{"exact": {"type": "x"}}, {"not": {"cesql": "data.a = 1"}}]}],
            "subscriber": {"uri": "http://h/"},
        }
    )
    assert isinstance(materialize(nested), DataTriggerFilter)


def test_the_cesql_command_takes_data() -> None:
    import subprocess
    import sys

    cli = [sys.executable, "-m", "eventing.app.cli", "cesql"]
    run_ok = subprocess.run(
        [*cli, "data.order.total > 100", "--data", '{"order": {"total": 250}}'],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run_ok.returncode == 0, run_ok.stderr
    assert run_ok.stdout.strip() == "value: true"
    not_json = subprocess.run(
        [*cli, "EXISTS data.a", "--data", "a", "--attr", "datacontenttype=text/plain"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert not_json.stdout.strip() == "value: false"


def test_explain_judges_a_data_trigger_on_the_data() -> None:
    from triggers.explain import explain_trigger

    trigger = spec("data.order.total > 100")
    matched = explain_trigger(trigger, JSON, BODY)
    assert matched["matched"] is True
    assert matched["clauses"][0]["verdict"] == "pass"
    without = explain_trigger(trigger, JSON)
    assert without["matched"] is False
    assert without["reason"] == "cesql:missingAttribute"
