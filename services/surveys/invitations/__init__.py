"""Inviting people to answer: `definitions` (what to ask whom, how often), `eligibility` (who may be
invited now, pure), `inviting` (queue one under the person's lock), `scheduler` and `ticket_csat`
(what queues them), `sender` (the SMTP outbox) and `links` (the signed links they carry).
"""
