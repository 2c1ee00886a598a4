"""Delivery: the retry policy (pure functions), the sink protocol, and the per-trigger
dispatcher that takes events from a subscription and delivers them."""
