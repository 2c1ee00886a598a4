"""Delivery targets: HTTP subscribers, the built-in dead-letter store, workloads."""
