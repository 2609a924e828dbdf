"""Moderation: the pre-publish scan (SentinelNet, or the built-in scanner behind the same webhook), the CommandPad
review queue and its decisions, takedowns and legal holds."""
