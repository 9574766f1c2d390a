"""Which risk signals an event raises. Pure.

Each signal carries a stable dedupe key derived from what caused it, so a replay after a
crash raises the same key and the alerts service notifies once. Summaries leave out the
account's name: whoever shows them (alerts) puts the name in front.
"""

from __future__ import annotations

from services.scoring.scorecard import Health
from services.scoring.state import AccountState, remember_signalled
from shared.events import (
    Band,
    Envelope,
    EventType,
    RiskSignalPayload,
    Severity,
    SurveyResponsePayload,
    SurveyType,
)

DETRACTOR_MAX = 6
COMMENT_PREVIEW = 200


def entered_red(account_id: str, event: Envelope, previous: Health | None,
                current: Health | None) -> RiskSignalPayload | None:
    if current is None or current.band is not Band.RED:
        return None
    if previous is not None and previous.band is Band.RED:
        return None
    worst = current.factors[0].detail if current.factors else "no factors"
    before = f" (was {previous.band.value}, {previous.score:g})" if previous else ""
    return RiskSignalPayload(
        signal_type="entered_red",
        severity=Severity.HIGH,
        dedupe_key=f"entered_red:{account_id}:{event.event_id}",
        summary=f"turned red: health {current.score:g}{before}; {worst}",
        score=current.score,
        band=current.band,
        previous_band=previous.band if previous else None,
        factors=current.factors,
        evidence={"caused_by_event_id": event.event_id, "caused_by_type": event.type.value},
    )


def detractor_response(account_id: str, state: AccountState, event: Envelope,
                       current: Health | None) -> RiskSignalPayload | None:
    """A detractor NPS answer, once per response id however often it is amended."""
    if event.type is not EventType.SURVEY_RESPONSE:
        return None
    response = event.payload_as(SurveyResponsePayload)
    if response.survey_type is not SurveyType.NPS or response.score > DETRACTOR_MAX:
        return None
    if response.response_id in state.signalled_responses:
        return None
    remember_signalled(state, response.response_id)
    comment = (response.comment or "").strip()
    if len(comment) > COMMENT_PREVIEW:
        comment = comment[:COMMENT_PREVIEW] + "…"
    quoted = f': "{comment}"' if comment else ""
    return RiskSignalPayload(
        signal_type="detractor_response",
        severity=Severity.HIGH if response.score <= 4 else Severity.MEDIUM,
        dedupe_key=f"detractor:{account_id}:{response.response_id}",
        summary=f"NPS detractor (score {response.score}){quoted}",
        score=current.score if current else None,
        band=current.band if current else None,
        factors=current.factors if current else [],
        evidence={"comment": response.comment, "score": response.score,
                  "respondent": event.user_id, "response_id": response.response_id},
    )
