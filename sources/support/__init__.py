"""What more than one source adapter uses: the adapter contract (:mod:`sources.support.base`),
the resource fields every source shares, emitting in order, reconnecting, secrets,
signatures, the CloudEvents binding helpers and the webhook request plumbing."""
