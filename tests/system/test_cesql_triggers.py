"""Triggers with CESQL filters in a running broker deliver exactly the events their
expressions select (with and without extensions); an expression that errs on an
event does not deliver it and the drop is counted by error kind."""

from __future__ import annotations

import aiohttp

from tests.conftest import SystemFactory
from tests.support.subscriber import RecordingSubscriber

EXPRESSIONS = {
    "eu-orders": "type = 'order.created' AND region = 'eu'",
    "big": "type LIKE 'order.%' AND INT(amount) >= 100",
    "not-test": "NOT (source LIKE '/test%') AND EXISTS subject",
    "in-set": "subject IN ('a', 'b') OR UPPER(region) = 'US'",
    "divide": "1000 / INT(amount) >= 10",
}

# (id, type, source, subject or None, extensions)
EVENTS: list[tuple[str, str, str, str | None, dict[str, str]]] = [
    ("e1", "order.created", "/shop", "a", {"region": "eu", "amount": "150"}),
    ("e2", "order.created", "/shop", None, {"region": "us", "amount": "20"}),
    ("e3", "order.paid", "/test/x", "b", {"amount": "500"}),
    ("e4", "user.created", "/shop", "c", {}),
    ("e5", "order.created", "/shop", "z", {"region": "eu", "amount": "0"}),
    ("e6", "order.created", "/test", None, {"region": "EU", "amount": "99"}),
]

# Worked out by hand from the expressions above. AND/OR short-circuit, so a missing
# attribute on the right of a decided AND is no error; an error anywhere means no match.
EXPECTED = {
    "eu-orders": {"e1", "e5"},
    "big": {"e1", "e3"},
    "not-test": {"e1", "e4", "e5"},  # EXISTS subject is false (not an error) for e2, e6
    "in-set": {"e1", "e3"},  # e2, e4, e6 have no subject: missingAttribute, no match
    "divide": {"e2", "e6"},  # 1000/150=6, 1000/500=2; e4 has no amount; e5 divides by 0
}


def manifests(url: str) -> str:
    docs = ["apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: default}\n"]
    for name, expression in EXPRESSIONS.items():
        docs.append(f"""apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: {name}}}
spec:
  broker: default
  filters: [{{cesql: "{expression}"}}]
  subscriber: {{uri: "{url}/{name}"}}
""")
    return "---\n".join(docs)


async def test_cesql_triggers_deliver_exactly_what_they_select(
    system: SystemFactory, subscriber: RecordingSubscriber
) -> None:
    running = await system(manifests(subscriber.url))
    async with aiohttp.ClientSession() as http:
        for event_id, type_, source, subject, extensions in EVENTS:
            headers = {
                "ce-specversion": "1.0",
                "ce-id": event_id,
                "ce-source": source,
                "ce-type": type_,
                **{f"ce-{k}": v for k, v in extensions.items()},
            }
            if subject is not None:
                headers["ce-subject"] = subject
            async with http.post(
                f"{running.ingress_url}/default/default", data=b"", headers=headers
            ) as r:
                assert r.status == 202
        # A sentinel every trigger matches marks the end of each trigger's stream.
        async with http.post(
            f"{running.ingress_url}/default/default",
            data=b"",
            headers={
                "ce-specversion": "1.0",
                "ce-id": "end",
                "ce-source": "/shop",
                "ce-type": "order.created",
                "ce-subject": "a",
                "ce-region": "eu",
                "ce-amount": "100",
            },
        ) as r:
            assert r.status == 202
    await subscriber.wait_for(
        lambda rs: all(
            "end" in {x.event.id for x in rs if x.event and x.path == f"/{name}"}
            for name in EXPRESSIONS
        )
    )
    for name, expected in EXPECTED.items():
        got = set(subscriber.ids(f"/{name}")) - {"end"}
        assert got == expected, name
    drops = running.system.brokers["default/default"].drops()
    assert drops[("default/divide", "cesql:math")] == 1
    assert drops[("default/in-set", "cesql:missingAttribute")] == 3
    assert ("default/eu-orders", "cesql:missingAttribute") not in drops
