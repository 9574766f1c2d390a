"""Surveys-specific metrics (the shared ones cover HTTP requests, produce latency and consumers)."""

from prometheus_client import Counter, Gauge

RESPONSES = Counter(
    "churnwatch_surveys_responses_total",
    "Responses recorded, by survey type, what they did to the stored response (new, amended, "
    "mapped = attributed to an account later, unchanged, stale = older than the stored revision) "
    "and channel (api, email_invitation, delighted, typeform).",
    ["survey_type", "status", "channel"],
)
UNMAPPED = Counter(
    "churnwatch_surveys_unmapped_responses_total",
    "New responses stored without an account (kept, counted in insight, published once mapped).",
    ["channel"],
)
REJECTIONS = Counter(
    "churnwatch_surveys_rejections_total",
    "Requests refused with nothing stored or published, by reason code "
    "(invalid_json, invalid_request, payload_too_large, invalid_write_key, response_conflict, "
    "kafka_unavailable, invalid_signature, ...).",
    ["reason"],
)
WEBHOOKS_IGNORED = Counter(
    "churnwatch_surveys_webhooks_ignored_total",
    "Signed survey-tool deliveries acknowledged without a response (not NPS/CSAT/CES, other events).",
    ["source"],
)
INVITATIONS_CREATED = Counter(
    "churnwatch_surveys_invitations_created_total",
    "Invitations queued for sending, by trigger (relationship, ticket_solved).",
    ["trigger"],
)
INVITATIONS_SKIPPED = Counter(
    "churnwatch_surveys_invitations_skipped_total",
    "Solved tickets whose requester was not invited to a ticket_solved survey, by the rule that "
    "stopped it (quiet_period, unsubscribed, audience, role, ticket_too_old, already_invited). "
    "The scheduler logs its own skips per pass instead.",
    ["reason"],
)
UNMATCHED_TICKETS = Counter(
    "churnwatch_surveys_unmatched_tickets_total",
    "Solved tickets kept without a CSAT invitation because no contact with an email matches the "
    "requester, by help desk and reason (unknown_requester, ambiguous_requester, no_email); "
    "invited later if a contact mapping arrives while the solve is recent.",
    ["source", "reason"],
)
UNMATCHED_TICKETS_MATCHED = Counter(
    "churnwatch_surveys_unmatched_tickets_matched_total",
    "Kept solved tickets that a later contact mapping matched (then invited as usual).",
    ["source"],
)
INVITATION_SENDS = Counter(
    "churnwatch_surveys_invitation_sends_total",
    "Invitation email attempts, by outcome (sent, retry, failed, cancelled) and reason.",
    ["outcome", "reason"],
)
INVITATION_QUEUE = Gauge(
    "churnwatch_surveys_invitation_queue",
    "Invitations waiting to be sent (pending or being sent).",
)
PAGE_SUBMISSIONS = Counter(
    "churnwatch_surveys_page_submissions_total",
    "Answers posted on the public response page, by outcome (recorded, invalid, used, expired, "
    "not_found).",
    ["outcome"],
)
UNSUBSCRIBES = Counter(
    "churnwatch_surveys_unsubscribes_total",
    "People unsubscribed from surveys, by how (link, one_click, delighted, admin).",
    ["via"],
)
