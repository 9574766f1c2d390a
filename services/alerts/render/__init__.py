"""What a CSM reads:
`messages` (Slack and email), `reasons`, `playbook` (the suggested next step) and `pages` (behind
action links).
"""
