"""Names of the resources the loader makes (internal brokers and triggers)."""

from __future__ import annotations

import hashlib
from typing import Final

MAX_NAME: Final = 63


def child_name(parent: str, suffix: str) -> str:
    """``parent`` + ``suffix`` as a DNS label of at most 63 characters (a hash of the
    parent replaces its tail when too long), as Knative names its children."""
    name = f"{parent}{suffix}"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(parent.encode()).hexdigest()[:8]
    keep = MAX_NAME - len(suffix) - len(digest)
    return f"{parent[:keep]}{digest}{suffix}"
