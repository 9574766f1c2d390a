"""Surveys' persistence, one module per aggregate: `responses`, `campaigns` (definitions, invitations,
unsubscribes), `contacts` (who can be surveyed) and `tickets` (solved tickets awaiting a contact).
"""
