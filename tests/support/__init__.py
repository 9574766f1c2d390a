"""Test helpers: real infrastructure, service processes, and local Slack/SMTP receivers."""
