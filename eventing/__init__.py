"""eventing: a Knative-style event mesh with queue-depth autoscaling, in one process.

The core package. ``sources``, ``triggers`` and ``sinks`` build on it; it never imports
them, except in :mod:`eventing.app`, the composition root (see ``pyproject.toml``'s
import-linter contracts).
"""
