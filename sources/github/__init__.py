"""GitHubSource: the adapter and the event types GitHub sends."""
