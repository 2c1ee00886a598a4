"""The project's own exception tree.

Why our own tree: callers decide what to do by the *kind* of failure (answer 400 or
503, retry or not), never by which library raised it. Library errors are chained as
``__cause__``, and messages never carry secrets (tokens, passwords, signatures).

::

    EventingError
    ├── ConfigError              a manifest or setting is wrong; the message names where
    ├── InvalidEventError        not a valid CloudEvent (ingress answers 400)
    │   └── PayloadTooLargeError body over the configured limit (413)
    ├── StoreError               the broker could not store (503 + Retry-After)
    │   ├── StoreFullError       the store is at its bound; it never evicts
    │   └── StoreClosedError     the store is shutting down or gone
    └── SourceError              a source adapter failed (``retriable``)
"""

from __future__ import annotations


class EventingError(Exception):
    """Root of every error this project raises on purpose."""


class ConfigError(EventingError):
    """A resource manifest or a setting is invalid."""


class InvalidEventError(EventingError, ValueError):
    """The input is not a valid CloudEvent."""


class PayloadTooLargeError(InvalidEventError):
    """The request body is larger than the configured limit."""


class StoreError(EventingError):
    """The broker could not durably store an event; the sender should retry later."""

    retry_after: float = 1.0


class StoreFullError(StoreError):
    """The store reached its configured bound. Stored events are never evicted."""


class StoreClosedError(StoreError):
    """The store is closed (shutting down)."""


class SourceError(EventingError):
    """A source adapter failed; ``retriable`` says whether a restart may help."""

    def __init__(self, message: str, *, retriable: bool = True) -> None:
        super().__init__(message)
        self.retriable = retriable
