"""The ``RabbitMQBroker`` class (Knative's class name): an exchange per broker, a
queue per trigger, queue depth as the backlog. See docs/brokers.md."""
