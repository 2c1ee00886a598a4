"""Loader for the CESQL TCK copied (unmodified) into ../shared/testdata/cesql-tck.

YAML traps handled here (see ../shared/testdata/README.md):

* ``expression: TRUE`` / ``0`` / ``-10`` and several ``name:`` values load as
  bool/int with PyYAML's ``safe_load``: names and expressions are taken from a
  second load with ``BaseLoader``, which keeps every scalar as written.
* Unquoted timestamps (``time: 2018-04-26T14:48:09+02:00``, and the expected
  ``result`` of the same case) load as ``datetime``: CESQL represents
  Timestamps as Strings, so those are replaced by their source text.

When a case has no ``event``, the input is sdk-java's minimal valid event (it
has no extensions, which cases such as ``myext LIKE ...`` rely on) with the
``eventOverrides`` applied, keeping their YAML types (str, int, bool).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

TESTDATA = Path(__file__).resolve().parents[3].parent / "shared" / "testdata"
TCK_DIR = TESTDATA / "cesql-tck"
UDF_FILE = TCK_DIR / "extras" / "sdk-go-user_defined_functions.yaml"

MINIMAL_EVENT: dict[str, object] = {
    "specversion": "1.0",
    "id": "1",
    "type": "mock.test",
    "source": "http://localhost/source",
}


@dataclass(frozen=True)
class TckCase:
    file: str  # file stem, e.g. "like_expression"
    name: str
    expression: str
    has_result: bool
    result: object
    error: str | None
    event: dict[str, object] | None = None
    overrides: dict[str, object] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.file}::{self.name}"

    def attributes(self) -> dict[str, object]:
        base = dict(self.event) if self.event is not None else dict(MINIMAL_EVENT)
        base.update(self.overrides)
        return base


def _restore_timestamps(typed: Any, raw: Any) -> Any:
    """Replace values YAML turned into date/datetime by their source text."""
    if isinstance(typed, datetime.date):
        return raw
    if isinstance(typed, dict):
        return {key: _restore_timestamps(value, raw[key]) for key, value in typed.items()}
    return typed


def load_file(path: Path) -> list[TckCase]:
    text = path.read_text(encoding="utf-8")
    typed = yaml.safe_load(text)
    raw = yaml.load(text, Loader=yaml.BaseLoader)  # BaseLoader: every scalar stays a str
    cases = []
    for typed_case, raw_case in zip(typed["tests"], raw["tests"], strict=True):
        case = _restore_timestamps(typed_case, raw_case)
        cases.append(
            TckCase(
                file=path.stem,
                name=raw_case["name"],
                expression=raw_case["expression"],
                has_result="result" in case,
                result=case.get("result"),
                error=case.get("error"),
                event=case.get("event"),
                overrides=case.get("eventOverrides") or {},
            )
        )
    return cases


def tck_files() -> list[Path]:
    return sorted(TCK_DIR.glob("*.yaml"))


def load_tck() -> list[TckCase]:
    return [case for path in tck_files() for case in load_file(path)]
