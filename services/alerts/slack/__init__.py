"""The Slack app:
`endpoints` (interactions and slash commands), `payloads` (what Slack sends, read), `command` (the
answer to /churnwatch) and `edits` (in-place edits of a first message).
"""
