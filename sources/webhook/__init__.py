"""WebhookSource (generic HTTP): the adapter and how it reads a request body."""
