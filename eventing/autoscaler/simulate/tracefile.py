"""Reading an arrival trace from a file, with errors that say which line is wrong.

Format: one event per line, its arrival time in seconds from the start of the trace;
optionally a comma and that event's service time in seconds. Blank lines and lines
starting with ``#`` are ignored; arrival times need not be sorted (they are sorted on
load, keeping each event's service time with it). Either every event has a service
time or none has. Example::

    # arrival_s,service_s
    0.0,0.25
    0.7,0.31
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from pathlib import Path

from eventing.autoscaler.simulate.traces import Trace
from eventing.errors import ConfigError


class TraceFileError(ConfigError):
    """A trace file cannot be used; the message names the file and line."""


def _number(text: str, what: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise TraceFileError(f"{where}: {what} {text.strip()!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise TraceFileError(f"{where}: {what} must be a finite number >= 0, got {text.strip()}")
    return value


def parse_trace_lines(lines: Iterable[str], name: str) -> Trace:
    """Parse trace lines; ``name`` is used in error messages and as the trace name.

    The trace's random streams are seeded by a digest of its events, not by ``name``
    (a path), so the same file gives the same numbers wherever it is."""
    rows: list[tuple[float, float | None]] = []
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{name}:{number}"
        fields = line.split(",")
        if len(fields) > 2:
            raise TraceFileError(
                f"{where}: expected 'arrival_seconds[,service_seconds]', got {line!r}"
            )
        arrival = _number(fields[0], "arrival time", where)
        service = _number(fields[1], "service time", where) if len(fields) == 2 else None
        if rows and (rows[0][1] is None) != (service is None):
            raise TraceFileError(
                f"{where}: service time given on some lines but not others "
                f"(line {number} differs from the first event)"
            )
        rows.append((arrival, service))
    if not rows:
        raise TraceFileError(f"{name}: no events")
    rows.sort(key=lambda row: row[0])
    arrivals = tuple(a for a, _ in rows)
    services = None if rows[0][1] is None else tuple(s or 0.0 for _, s in rows)
    duration = math.ceil(arrivals[-1]) + 1.0
    digest = hashlib.sha256(repr((arrivals, services)).encode()).hexdigest()[:16]
    return Trace(
        name=name,
        description=f"{len(arrivals)} events from file",
        arrivals=arrivals,
        service_times=services,
        duration=duration,
        key=f"file:{digest}",
    )


def load_trace_file(path: str | Path) -> Trace:
    """Read and parse a trace file (see the module docstring for the format)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise TraceFileError(f"{p}: cannot read trace file: {exc.strerror}") from exc
    return parse_trace_lines(text.splitlines(), str(p))
