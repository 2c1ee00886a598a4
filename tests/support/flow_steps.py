"""A recording subscriber's answers that play the services of a flow: steps that
transform, filters that let through, a step that fails once."""

from __future__ import annotations

from eventing.events import Event
from tests.support.subscriber import Answer, Received


def transform(received: Received, n: int) -> Answer:
    """/step/<name>: reply with the event's type + '.<name>'; /drop: no reply;
    /fail-once/<name>: 500 the first time a given event id is seen, then as /step."""
    event = received.event
    path = received.path
    if event is None or path.startswith(("/final", "/notify", "/log")):
        return Answer(202)
    if path == "/drop":
        return Answer(202)
    if path.startswith("/pass-if/"):  # a Parallel filter: let through a given subject
        return (
            Answer(200, reply=event) if event.attributes.get("subject") == path[9:] else Answer(202)
        )
    if path.startswith("/fail-once/"):
        seen = [r for r in FAILED if r == event.id + path]
        if not seen:
            FAILED.append(event.id + path)
            return Answer(500)
        path = "/step/" + path[len("/fail-once/") :]
    name = path.rsplit("/", 1)[-1]
    attributes = dict(event.attributes)
    attributes["type"] = f"{attributes['type']}.{name}"
    attributes["id"] = f"{event.id}-{name}"
    for drop in ("knativearrivaltime", "knativebrokerttl"):
        attributes.pop(drop, None)
    return Answer(200, reply=Event(attributes, event.data))


FAILED: list[str] = []
