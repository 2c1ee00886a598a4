"""KafkaSource: the adapter (aiokafka), the record binding, the resource model and the
consumer lag a workload scales on."""
