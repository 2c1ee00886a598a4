"""Readers for the cloudevents/conformance material in the shared testdata: the YAML
events (``yaml/**``) and the Gherkin HTTP feature (``features/*.feature``).

YAML traps (testdata README): unquoted ``specversion: 1.0`` loads as a float and
unquoted ``time: 2018-04-05T03:56:24Z`` as a ``datetime`` with ``safe_load``, so the
events are read with ``yaml.BaseLoader``, which keeps every scalar as the string
written. ``|`` block scalars end with a newline: kept for ``Data`` (it is part of the
body the conformance tool sends) and removed from extension values (see
:func:`extension_value`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import TESTDATA
from tests.support.wire import is_json_type, percent_encode

CONFORMANCE = TESTDATA / "cloudevents-conformance"


@dataclass
class YamlEvent:
    """One event of the conformance tool's YAML format."""

    origin: str
    """``<file>#<index>`` for test ids."""
    mode: str | None
    attributes: dict[str, str]
    """Context attributes and extensions, all strings (extensions normalised)."""
    transport: dict[str, str]
    data: str | None

    @property
    def datacontenttype(self) -> str | None:
        return self.attributes.get("datacontenttype")

    @property
    def data_bytes(self) -> bytes | None:
        return None if self.data is None else self.data.encode("utf-8")


def extension_value(raw: str) -> str:
    """An extension value from the YAML, minus the newline a ``|`` block scalar adds.

    ``comexampleextension2: |`` yields ``'{"othervalue": 5}\\n'``. A raw line feed is
    a control character, which the CloudEvents String type forbids (spec §3.1.1), so
    the event as literally loaded is invalid; the conformance tool's intent is the
    one-line JSON text, so the trailing newline is stripped here (and a separate test
    asserts that an extension with an embedded newline is rejected).
    """
    return raw[:-1] if raw.endswith("\n") else raw


def load_yaml_events() -> list[YamlEvent]:
    events: list[YamlEvent] = []
    for path in sorted((CONFORMANCE / "yaml").rglob("*.yaml")):
        rel = path.relative_to(CONFORMANCE / "yaml").as_posix()
        docs = list(yaml.load_all(path.read_text(encoding="utf-8"), Loader=yaml.BaseLoader))
        for index, doc in enumerate(docs):
            if not doc:
                continue
            context: dict[str, Any] = dict(doc["ContextAttributes"])
            extensions = context.pop("Extensions", {}) or {}
            attributes = {k: str(v) for k, v in context.items()}
            attributes.update({k: extension_value(str(v)) for k, v in extensions.items()})
            events.append(
                YamlEvent(
                    origin=f"{rel}#{index}",
                    mode=doc.get("Mode"),
                    attributes=attributes,
                    transport={
                        k: str(v) for k, v in (doc.get("TransportExtensions") or {}).items()
                    },
                    data=doc.get("Data"),
                )
            )
    return events


def binary_request(event: YamlEvent) -> tuple[dict[str, str], bytes]:
    """Headers and body of the binary-mode request the conformance tool would send."""
    headers: dict[str, str] = dict(event.transport)
    for name, value in event.attributes.items():
        if name == "datacontenttype":
            headers["Content-Type"] = value
        else:
            headers[f"ce-{name}"] = percent_encode(value)
    return headers, event.data_bytes or b""


def structured_request(event: YamlEvent) -> tuple[dict[str, str], bytes]:
    """Headers and body of the structured-mode request: JSON data (content type JSON or
    absent) goes in ``data`` as the JSON value, anything else as a string."""
    obj: dict[str, Any] = dict(event.attributes)
    if event.data is not None:
        content_type = event.datacontenttype
        if content_type is None or is_json_type(content_type):
            obj["data"] = json.loads(event.data)
        else:
            obj["data"] = event.data
    headers = dict(event.transport)
    headers["Content-Type"] = "application/cloudevents+json"
    return headers, json.dumps(obj).encode("utf-8")


# -- Gherkin ----------------------------------------------------------------------


@dataclass
class Scenario:
    """One expanded row of a scenario outline of the HTTP feature."""

    name: str
    request: str
    """The docstring HTTP request, dedented, with placeholders filled in."""
    attributes: dict[str, str]
    data_json: Any
    examples: dict[str, str] = field(default_factory=dict)


_PLACEHOLDER = re.compile(r"<([A-Za-z0-9_]+)>")


def parse_feature(path: Path) -> list[Scenario]:
    """A small parser for the shape of the conformance features: ``Scenario Outline``
    with an ``an HTTP request`` docstring, a ``the attributes are:`` table, a ``the
    data is equal to the following JSON:`` docstring and an ``Examples:`` table."""
    lines = path.read_text(encoding="utf-8").splitlines()
    outlines: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    expecting: str | None = None
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        if stripped.startswith(("Scenario Outline:", "Scenario:")):
            current = {
                "name": stripped.split(":", 1)[1].strip(),
                "request": "",
                "attributes": [],
                "data": "",
                "examples": [],
            }
            outlines.append(current)
            expecting = None
        elif current is None:
            pass
        elif stripped == '"""':
            block, i = _docstring(lines, i)
            if expecting in ("request", "data"):
                current[expecting] = block
        elif stripped.startswith("Given an HTTP request"):
            expecting = "request"
        elif stripped.startswith("Then the attributes are"):
            expecting = "attributes"
        elif stripped.startswith("And the data is equal to the following JSON"):
            expecting = "data"
        elif stripped.startswith("Examples:"):
            expecting = "examples"
        elif stripped.startswith("|") and expecting in ("attributes", "examples"):
            current[expecting].append([c.strip() for c in stripped.strip("|").split("|")])
        i += 1
    scenarios: list[Scenario] = []
    for outline in outlines:
        table = outline["attributes"][1:]  # first row is the header (key | value)
        header, *rows = outline["examples"] or [[]]
        for row in rows or [[]]:
            values = dict(zip(header, row, strict=True))

            def fill(text: str, values: dict[str, str] = values) -> str:
                return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)

            scenarios.append(
                Scenario(
                    name=fill(outline["name"]),
                    request=fill(outline["request"]),
                    attributes={k: fill(v) for k, v in table},
                    data_json=json.loads(fill(outline["data"])),
                    examples=values,
                )
            )
    return scenarios


def _docstring(lines: list[str], start: int) -> tuple[str, int]:
    """The docstring opening at ``start``: its lines with the delimiter's indent
    removed (Gherkin's rule); returns the text and the closing line's index."""
    indent = len(lines[start]) - len(lines[start].lstrip())
    body: list[str] = []
    i = start + 1
    while lines[i].strip() != '"""':
        body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
        i += 1
    return "\n".join(body), i


def http_request_for(scenario: Scenario, url: str) -> bytes:
    """The scenario's raw request aimed at ``url``: request target and ``Host``
    rewritten, ``Content-Length`` recomputed (the upstream structured example's 266
    does not match its body), CRLF line ends in the head."""
    from urllib.parse import urlsplit

    head, _, body = scenario.request.partition("\n\n")
    head_lines = head.split("\n")
    method, _target, version = head_lines[0].split(" ")
    parts = urlsplit(url)
    out = [f"{method} {parts.path} {version}"]
    for line in head_lines[1:]:
        name = line.split(":", 1)[0].strip().lower()
        if name == "host":
            out.append(f"Host: {parts.netloc}")
        elif name == "content-length":
            continue
        else:
            out.append(line)
    payload = body.encode("utf-8")
    out.append(f"Content-Length: {len(payload)}")
    return ("\r\n".join(out) + "\r\n\r\n").encode("utf-8") + payload
