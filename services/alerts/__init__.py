"""Alerts: turns risk signals into Slack and email notifications, each sent once per dedupe key."""
