"""How read commands print: ``--output table|json|yaml`` (``--json`` is short for
``--output json``), the same on every read command, and colour only on a terminal.

Colour follows the usual conventions: never when standard output is not a TTY (a
pipe, a file, a test), never when ``NO_COLOR`` is set, always with
``FORCE_COLOR`` set, whatever the terminal.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

import yaml

FORMATS = ("table", "json", "yaml")
_CODES = {"green": "32", "red": "31", "yellow": "33", "dim": "2", "bold": "1", "cyan": "36"}


def add_output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o",
        "--output",
        choices=FORMATS,
        help="how to print: table (for people, the default), json or yaml",
    )
    parser.add_argument("--json", action="store_true", help="short for --output json")


def output_format(args: argparse.Namespace) -> str:
    value = getattr(args, "output", None)
    if value in FORMATS:
        return str(value)
    return "json" if getattr(args, "json", False) else "table"


def render(args: argparse.Namespace, payload: Any, table: Callable[[Any], None]) -> None:
    """Print ``payload`` as the user asked; ``table`` prints it for people."""
    fmt = output_format(args)
    if fmt == "json":
        print(json.dumps(payload, indent=2))
    elif fmt == "yaml":
        print(yaml.safe_dump(payload, sort_keys=False, allow_unicode=True), end="")
    else:
        table(payload)


def colour_enabled(stream: Any = None) -> bool:
    stream = sys.stdout if stream is None else stream
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def paint(text: str, colour: str, *, enabled: bool | None = None) -> str:
    """``text`` in ``colour`` on a terminal, unchanged otherwise."""
    if not (colour_enabled() if enabled is None else enabled):
        return text
    return f"\x1b[{_CODES[colour]}m{text}\x1b[0m"
