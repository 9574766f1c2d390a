"""What a survey-tool delivery turns out to be: a response, an unsubscribe, or nothing for us."""

from __future__ import annotations

from dataclasses import dataclass

from services.surveys.responses.revisions import IncomingResponse


@dataclass(frozen=True)
class Ignored:
    """Signed and readable, but not an NPS/CSAT/CES answer: acknowledged so it is not retried."""

    reason: str


@dataclass(frozen=True)
class Unsubscribed:
    email: str


WebhookResult = IncomingResponse | Ignored | Unsubscribed
