"""Alerts' HTTP API, one module per resource:
`alerts` (history, actions, feedback, preferences, signed links) and `account_owners` (the CSM book
the console reads).
"""
