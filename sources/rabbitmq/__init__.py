"""RabbitmqSource: the adapter (aio-pika), the message binding, the resource model and the
queue depth a workload scales on."""
