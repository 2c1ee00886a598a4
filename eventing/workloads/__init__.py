"""The local process runtime for workloads: replicas as subprocesses, the pool that
scales and routes to them, the guardian that leaves no orphans, and the scaler loop
that runs :func:`eventing.autoscaler.decide.decide` for each workload."""
