"""PingSource: the adapter and its cron schedule."""
