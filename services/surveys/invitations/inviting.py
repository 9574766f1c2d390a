"""Queue one invitation if the rules allow it, under the person's lock (scheduler and ticket
trigger alike, any number of instances): check and insert happen in one transaction while
no other decision about the same email can run, so the quiet period holds under races."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from services.surveys.invitations.definitions import Definition, Trigger
from services.surveys.invitations.eligibility import History, Skip, timing_skip
from services.surveys.invitations.links import new_invitation_id
from services.surveys.store import campaigns as campaign_store
from services.surveys.store import responses as store


@dataclass(frozen=True)
class Timing:
    quiet_period: timedelta
    link_ttl: timedelta


async def try_invite(conn: AsyncConnection, *, definition: Definition, email: str, user_id: str | None,
                     account_id: str | None, ticket_id: str | None, now: datetime,
                     timing: Timing) -> str | Skip:
    """The new invitation's id, or why there is none. The caller commits."""
    await campaign_store.lock_person(conn, email)
    recurring = definition.trigger is Trigger.RELATIONSHIP
    invited = await campaign_store.last_invited_at(conn, email)
    answered = await store.last_response_at(conn, email, user_id)
    history = History(
        unsubscribed=await campaign_store.is_unsubscribed(conn, email),
        last_surveyed_at=max((t for t in (invited, answered) if t is not None), default=None),
        last_invited_by_definition_at=(await campaign_store.last_invited_at(conn, email, definition.id)
                                       if recurring else None),
    )
    skip = timing_skip(history, now=now, quiet_period=timing.quiet_period,
                       cadence_days=definition.cadence_days, recurring=recurring)
    if skip is not None:
        return skip
    invitation_id = new_invitation_id()
    created = await campaign_store.create_invitation(
        conn, invitation_id=invitation_id, definition_id=definition.id, email=email, user_id=user_id,
        account_id=account_id, ticket_id=ticket_id, now=now, expires_at=now + timing.link_ttl)
    return invitation_id if created else Skip.ALREADY_INVITED
