"""One ``eventing run`` per data directory: two processes appending to the same store
would each believe they own every pending event and deliver them twice over."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from eventing.errors import ConfigError


class DataDirLock:
    """An exclusive ``flock`` on ``<data dir>/lock``, released on exit or by the kernel
    when the process dies (so a ``kill -9`` never leaves a stale lock)."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / "lock"
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            self._fd = None
            raise ConfigError(
                f"another eventing process is using the data directory {data_dir} "
                "(give this one its own --data-dir)"
            ) from None
        os.ftruncate(self._fd, 0)
        os.write(self._fd, str(os.getpid()).encode())

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
