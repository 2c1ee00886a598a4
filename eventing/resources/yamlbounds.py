"""Bounds on a YAML file checked before it is composed or constructed.

Why a separate pass over the parser's events: PyYAML's parser is a state machine (no
recursion, memory proportional to the depth), but its composer and constructor recurse
per nesting level and expand every alias when the value is walked. A hostile or broken
file could otherwise cost minutes and gigabytes (a "billion laughs" of nested aliases
is a few hundred bytes and expands to 10^9 nodes; ``repr`` of such a value in an error
message or pydantic walking it does the expansion), or end in a ``RecursionError``
(100 000 levels of ``[``). One pass over the events measures, per document, the
nesting depth and the number of nodes *after* alias expansion (an alias counts as the
size of what it names), and the number of documents, and stops at the first bound
passed with an error that says which bound and where.
"""

from __future__ import annotations

from typing import Final

import yaml

#: Deepest nesting of mappings and sequences in one document. Real manifests use
#: fewer than 20 (a Trigger's nested ``all``/``any``/``not`` filters are the deepest).
MAX_DEPTH: Final = 64
#: Nodes in one document once every alias is expanded (a large manifest has a few
#: thousand).
MAX_NODES: Final = 100_000
#: Aliases in one document (``*name``); manifests rarely use any.
MAX_ALIASES: Final = 1_000


class BoundExceeded(Exception):
    """A bound was passed: ``line`` (1-based) is where, ``message`` says which."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def check_bounds(text: str, max_documents: int) -> int:
    """Walk the parser's events of ``text``; return the number of documents.

    Raises :class:`BoundExceeded` at the first bound passed, and lets
    ``yaml.YAMLError`` through for a file that does not parse."""
    documents = 0
    depth = 0
    aliases = 0
    # sizes[i]: nodes counted so far in the i-th open collection (index 0: the document)
    sizes: list[int] = [0]
    anchors_open: list[str | None] = []
    anchored: dict[str, int] = {}
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        line = event.start_mark.line + 1 if event.start_mark is not None else 0
        if isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if documents > max_documents:
                raise BoundExceeded(
                    line,
                    f"more than {max_documents} documents: split the manifests into "
                    "several files or directories",
                )
            depth, aliases, sizes, anchored = 0, 0, [0], {}
            anchors_open = []
        elif isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise BoundExceeded(
                    line, f"nested deeper than {MAX_DEPTH} levels (mappings and sequences)"
                )
            sizes.append(1)
            anchors_open.append(event.anchor)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
            size = sizes.pop()
            anchor = anchors_open.pop()
            if anchor is not None:
                anchored[anchor] = size
            _add(sizes, size, line)
        elif isinstance(event, yaml.ScalarEvent):
            if event.anchor is not None:
                anchored[event.anchor] = 1
            _add(sizes, 1, line)
        elif isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES:
                raise BoundExceeded(line, f"more than {MAX_ALIASES} aliases in one document")
            _add(sizes, anchored.get(event.anchor or "", 1), line)
    return documents


def _add(sizes: list[int], size: int, line: int) -> None:
    sizes[-1] += size
    if sum(sizes) > MAX_NODES:
        raise BoundExceeded(
            line,
            f"more than {MAX_NODES} values once aliases are expanded (a YAML alias bomb?)",
        )
