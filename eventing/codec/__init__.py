"""Wire formats: the CloudEvents HTTP binding (binary, structured, batched) and the JSON
event format, written against the spec's rules directly so the broker's hot path
never builds an SDK event (see :mod:`eventing.events`)."""
