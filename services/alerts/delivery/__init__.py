"""Getting queued messages out:
`outbox` (plan to rows, pure), `dispatcher` (lease, claim, send, record), `senders` (Slack and SMTP)
and `policy` (retry or give up, pure).
"""
