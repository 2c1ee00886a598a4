"""Broker classes that live in a server (Kafka, RabbitMQ), one package each.

They implement :class:`eventing.broker.base.Broker`; the composition root
(``eventing.app.broker_classes``) is the only code that imports them, and each client
library is imported only by its own class's modules (import-linter contracts).
"""
