"""Surveys-specific metrics (the shared ones cover HTTP requests and produce latency)."""

from prometheus_client import Counter

RESPONSES = Counter(
    "churnwatch_surveys_responses_total",
    "Responses acknowledged to a client, by survey type and what they did to the stored response "
    "(new, amended, unchanged, stale = older than the stored revision, so not applied).",
    ["survey_type", "status"],
)
REJECTIONS = Counter(
    "churnwatch_surveys_rejections_total",
    "Requests refused with nothing stored or published, by reason code "
    "(invalid_json, invalid_request, payload_too_large, invalid_write_key, response_conflict, "
    "kafka_unavailable, ...).",
    ["reason"],
)
