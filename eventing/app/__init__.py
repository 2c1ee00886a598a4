"""The composition root: the CLI and the runtime that wire every part together.

This is the only part of :mod:`eventing` allowed to import ``sources``, ``triggers``
and ``sinks``; it fills the core's registries with them.
"""
