"""What every source adapter is: ``run(emit)`` until cancelled, or a webhook handler.

The definitions live in :mod:`eventing.sourcing` (the core serves webhook sources on
its ingress without importing this package); adapters import them from here.
"""

from eventing.sourcing import (
    Emit,
    Recall,
    Source,
    SourceHealth,
    SourceState,
    WebhookRequest,
    WebhookResponse,
    WebhookSource,
)

__all__ = [
    "Emit",
    "Recall",
    "Source",
    "SourceHealth",
    "SourceState",
    "WebhookRequest",
    "WebhookResponse",
    "WebhookSource",
]
