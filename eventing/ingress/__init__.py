"""The broker ingress: the HTTP door (:mod:`eventing.ingress.server`), who may send
(:mod:`eventing.ingress.auth`), and the worker processes that run the door on more
than one core (:mod:`eventing.ingress.worker`, :mod:`eventing.ingress.pool`,
:mod:`eventing.ingress.ipc`)."""
