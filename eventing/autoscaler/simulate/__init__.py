"""A deterministic, trace-driven simulator comparing our policy with KEDA and Knative.

Why it exists: "scales better than KEDA" must be a measurement against the real
algorithms with their real defaults, on the same arrivals and the same service times,
reported as cost (replica-seconds, scale events) next to latency (queueing delay, cold
starts). Our policy runs the production :func:`eventing.autoscaler.decide` fed by the
production :class:`eventing.autoscaler.measure.ObservationRecorder`.

Modules: ``traces`` (built-in generators) and ``tracefile`` (``--trace FILE``),
``profiles`` (startup and service-time distributions), ``engine`` (the event loop),
``ours`` (our policy behind the simulator contract), ``runner`` (traces x policies),
``results`` and ``report`` (metrics, table, acceptance checks), ``cli``
(``eventing simulate``).
"""
