"""What the webhook adapters (WebhookSource, GitHubSource, GitLabSource) share: the
fields the ingress routes by (``name``, ``path``, ``broker``, ``max_body_bytes``), the
health and drop counters, and ``handle`` = bounds, then the adapter's own
authenticate-and-map (:meth:`WebhookAdapterBase.make_event`), then store and answer
(:func:`sources.support.webhook_http.serve`).

Why a base class: the three differ only in where the path and the body bound come
from, in how a sender proves itself and in how a request becomes an event.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Generic, TypeVar

from eventing.events import Event
from eventing.resources.base import Destination, Resource
from sources.support.base import Emit, SourceHealth, WebhookRequest, WebhookResponse
from sources.support.webhook_fields import broker_key
from sources.support.webhook_http import serve

R = TypeVar("R", bound=Resource)


class WebhookAdapterBase(Generic[R]):
    """One webhook source's adapter; subclasses add ``authenticate`` and
    :meth:`make_event`."""

    def __init__(
        self,
        resource: R,
        *,
        path: str,
        sink: Destination,
        max_body_bytes: int,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.resource = resource
        self.name = resource.key
        self.path = path
        self.broker = broker_key(sink, resource.namespace)
        self.max_body_bytes = max_body_bytes
        self.health = SourceHealth(name=self.name, kind=resource.KIND, state="connected")
        self.drops: Counter[str] = Counter()
        self._now = now or (lambda: datetime.now(UTC))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, path={self.path!r})"

    def make_event(self, request: WebhookRequest) -> Event:
        """Authenticate ``request`` (the body is read by now) and map it to the event,
        raising :class:`~sources.support.webhook_http.Rejected` or
        :class:`~sources.support.webhook_http.Ignored`."""
        raise NotImplementedError

    async def handle(self, request: WebhookRequest, emit: Emit) -> WebhookResponse:
        return await serve(
            request,
            emit,
            health=self.health,
            drops=self.drops,
            max_body_bytes=self.max_body_bytes,
            make_event=lambda: self.make_event(request),
        )
