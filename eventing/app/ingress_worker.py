"""The ingress worker process's composition root: :mod:`eventing.ingress.worker` with
the broker classes whose topic a worker produces to itself
(:mod:`eventing.ingress.direct`), and which of the running brokers do.

Why here: only the composition root imports plugins (the first import-linter
contract), and the worker is a process of its own, started as
``python -m eventing.app.ingress_worker``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from brokers.kafka.broker import KafkaBroker
from brokers.kafka.ingress import KIND as KAFKA_KIND
from brokers.kafka.ingress import IngressProducer
from eventing.ingress import worker
from eventing.ingress.direct import DirectFactory

MODULE = "eventing.app.ingress_worker"

FACTORIES: Mapping[str, DirectFactory] = {KAFKA_KIND: IngressProducer.from_spec}
"""Spec kind -> the worker-side publisher of that broker class."""


def direct_specs(brokers: Mapping[str, object]) -> list[dict[str, Any]]:
    """The specs of the brokers whose HTTP events the workers produce themselves: the
    Kafka class's, unless it deduplicates ingress events (one window, in this
    process). Such a broker then counts filter drops at consume (the main process no
    longer sees those events at publish)."""
    out: list[dict[str, Any]] = []
    for broker in brokers.values():
        if isinstance(broker, KafkaBroker):
            spec = broker.worker_spec()
            if spec is not None:
                broker.filtered_at_consume = True
                out.append(spec)
    return out


if __name__ == "__main__":
    worker.main(FACTORIES)
    sys.exit(0)
