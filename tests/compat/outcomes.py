"""Load one upstream manifest file alone (as ``eventing validate --partial FILE`` does)
and say, per document, whether it loaded or why it was refused."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from eventing.app.registry import kind_registry
from eventing.resources.loader import LoadError, load_resources

MANIFESTS = Path(__file__).parent / "manifests"


@dataclass(frozen=True)
class Outcome:
    kind: str
    name: str
    errors: tuple[str, ...]
    """Empty when the document loaded."""

    @property
    def loaded(self) -> bool:
        return not self.errors


def documents(path: Path) -> list[tuple[int, str, str]]:
    """(start line, kind, name) of each non-empty document."""
    out = []
    for node in yaml.compose_all(path.read_text(), Loader=yaml.SafeLoader):
        if node is None or (isinstance(node, yaml.ScalarNode) and node.value in ("", "~", "null")):
            continue
        fields = {k.value: v for k, v in node.value} if isinstance(node, yaml.MappingNode) else {}
        kind = getattr(fields.get("kind"), "value", "?")
        meta = fields.get("metadata")
        meta_fields = (
            {k.value: v for k, v in meta.value} if isinstance(meta, yaml.MappingNode) else {}
        )
        name = getattr(meta_fields.get("name"), "value", "?")
        out.append((node.start_mark.line + 1, str(kind), str(name)))
    return out


def outcomes(path: Path) -> list[Outcome]:
    docs = documents(path)
    try:
        load_resources(path, kind_registry(), partial=True)
    except LoadError as exc:
        errors = exc.errors
    else:
        errors = []
    result = []
    for i, (line, kind, name) in enumerate(docs):
        end = docs[i + 1][0] if i + 1 < len(docs) else 1 << 30
        mine = tuple(
            e.message
            for e in errors
            if e.line is None or line <= e.line < end or e.resource == f"{kind}/{name}"
        )
        result.append(Outcome(kind, name, mine))
    return result


def all_files() -> list[Path]:
    return sorted(MANIFESTS.rglob("*.yaml"))
