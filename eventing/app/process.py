"""A stable id for this data-plane process.

Several ``eventing run`` processes may serve one Kafka or RabbitMQ broker; logs,
``/metrics`` (``eventing_process_info``), the Kafka client id and the RabbitMQ
connection name carry this id so one can tell them apart. It is stable across
restarts: by default the host name and a short digest of the data directory's
absolute path (each process has its own data directory: the lock enforces it), or
``--process-id`` / ``EVENTING_PROCESS_ID`` when given.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from pathlib import Path

_SAFE = re.compile(r"[^A-Za-z0-9._-]")
MAX_LENGTH = 63


def process_id(data_dir: Path, given: str | None = None) -> str:
    raw = given or os.environ.get("EVENTING_PROCESS_ID")
    if not raw:
        digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:8]
        raw = f"{socket.gethostname()}-{digest}"
    return _SAFE.sub("-", raw)[:MAX_LENGTH] or "eventing"
