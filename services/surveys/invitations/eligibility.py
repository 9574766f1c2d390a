"""Who may be invited now: audience, unsubscribes, the quiet period and the cadence. Pure.

- Unsubscribed: never again, whatever the survey.
- Quiet period: nobody is surveyed twice within CHURNWATCH_SURVEY_QUIET_PERIOD_DAYS, across
  all surveys. "Surveyed" is the latest invitation to that email (unless it was cancelled
  before sending) or the latest response from that person, whichever tool it came through:
  a customer who just answered a Typeform NPS is not asked again by us next week.
- Cadence: a relationship survey with `cadence_days` invites the same person again only
  that long after its previous invitation to them; without a cadence, once ever.
- A ticket's CSAT goes out once per ticket (the store's unique key holds that), only for a
  ticket solved recently (CHURNWATCH_SURVEY_TICKET_MAX_AGE_HOURS): a replay of old ticket
  events must not mail customers about last year's tickets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from services.surveys.invitations.definitions import Audience
from services.surveys.segments import Segment


class Skip(StrEnum):
    """Why a contact is not invited (a metric label)."""

    UNSUBSCRIBED = "unsubscribed"
    NO_EMAIL = "no_email"
    ROLE = "role"
    AUDIENCE = "audience"
    QUIET_PERIOD = "quiet_period"
    CADENCE = "cadence"
    ALREADY_INVITED = "already_invited"
    TICKET_TOO_OLD = "ticket_too_old"
    NO_DEFINITION = "no_definition"


@dataclass(frozen=True)
class History:
    unsubscribed: bool = False
    last_surveyed_at: datetime | None = None  # any survey, any tool
    last_invited_by_definition_at: datetime | None = None  # this survey


@dataclass(frozen=True)
class Membership:
    account_id: str
    segment: Segment
    joined_at: datetime


def timing_skip(history: History, *, now: datetime, quiet_period: timedelta,
                cadence_days: int | None, recurring: bool) -> Skip | None:
    """None when the contact may be invited now; else the first rule that stops it."""
    if history.unsubscribed:
        return Skip.UNSUBSCRIBED
    if history.last_surveyed_at is not None and history.last_surveyed_at > now - quiet_period:
        return Skip.QUIET_PERIOD
    previous = history.last_invited_by_definition_at
    if recurring and previous is not None:
        if cadence_days is None:
            return Skip.ALREADY_INVITED
        if previous > now - timedelta(days=cadence_days):
            return Skip.CADENCE
    return None


def audience_account(audience: Audience, role: str | None,
                     memberships: Sequence[Membership]) -> str | Skip | None:
    """The account the contact would answer for (their most recent one in the audience).

    None: no account is known and the audience does not ask for one (a solved ticket from a
    requester no `group` call has placed yet); the answer is then mapped like any other.
    """
    if not audience.includes_role(role):
        return Skip.ROLE
    if not memberships and not audience.restricts_accounts:
        return None
    matching = [m for m in memberships if audience.includes_account(m.account_id, m.segment)]
    if not matching:
        return Skip.AUDIENCE
    return max(matching, key=lambda m: (m.joined_at, m.account_id)).account_id


def ticket_too_old(solved_at: datetime, *, now: datetime, max_age: timedelta) -> bool:
    return solved_at < now - max_age
