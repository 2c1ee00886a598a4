"""Source adapters: one module per upstream system, each turning what arrives into
CloudEvents and handing them to ``emit`` (see :mod:`sources.support.base`)."""
