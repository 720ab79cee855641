"""Notification records (filled in by the notifications issue)."""
