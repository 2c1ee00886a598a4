"""ISO-8601 durations (``PT0.2S``, ``PT1M30S``, ``P1DT2H``) as Knative's delivery spec uses.

Years and months are rejected: their length in seconds is not fixed, and a retry
backoff measured in months is a mistake worth telling the user about.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator

_DURATION = re.compile(
    r"P(?:(?P<w>\d+(?:\.\d+)?)W)?(?:(?P<d>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?\Z"
)
_UNITS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(text: str) -> float:
    """Seconds in an ISO-8601 duration; raises ``ValueError`` with the allowed forms."""
    match = _DURATION.match(text.strip().upper()) if isinstance(text, str) else None
    if match is None or text.strip().upper() in ("P", "PT") or text.strip().endswith("T"):
        raise ValueError(
            f"{text!r} is not an ISO-8601 duration: use forms like PT0.2S, PT30S, PT1M, P1DT2H"
            " (years and months are not allowed)"
        )
    return sum(float(v) * _UNITS[k] for k, v in match.groupdict().items() if v is not None)


def format_duration(seconds: float) -> str:
    """The shortest ``PT..S`` form of a number of seconds (for display)."""
    return f"PT{seconds:g}S"


def _to_seconds(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError("expected an ISO-8601 duration such as PT1S")
    if isinstance(value, int | float):
        raise ValueError(f"{value!r} is a number: write an ISO-8601 duration such as PT{value}S")
    if not isinstance(value, str):
        raise ValueError("expected an ISO-8601 duration such as PT1S")
    return parse_duration(value)


#: A field written as an ISO-8601 duration in YAML and held as seconds.
Duration = Annotated[float, BeforeValidator(_to_seconds)]
