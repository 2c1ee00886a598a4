"""The ``Kafka`` broker class (Knative's class name): a topic per broker, a consumer
group per trigger, lag as the backlog. See docs/brokers.md."""
