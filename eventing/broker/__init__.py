"""Broker classes behind one protocol (:mod:`eventing.broker.base`): the embedded
durable class (SQLite in WAL mode with group commit, the default) and the in-memory
class, both built on a :class:`~eventing.broker.store.Store`."""
