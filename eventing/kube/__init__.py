"""Kubernetes: the API facade (the only importer of the ``kubernetes`` client), the
scale-subresource actuator and the Service router for workloads that run on a cluster."""
